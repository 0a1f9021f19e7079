"""Stage 4, deploying: flash images for a board (pack.py, boards.py) and the trained
adapters merged back into a plain TFLite model (merge.py)."""
