"""Stage 1, preparing inputs: Keras models to int8 TFLite, the TFLite flatbuffer read into
the graph description (graph.py) the planner works on, and datasets quantized to the
model's input."""
