"""Stage 2, planning: which layers train with which method (methods.py), the user's
settings (config.py), and the plan blob the C runtime reads (plan.py)."""
