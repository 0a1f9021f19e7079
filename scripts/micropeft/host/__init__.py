"""Stage 3, running on the host: the C runtime built for this machine (native.py) and
bound through ctypes (runtime.py), and the TensorFlow reference trainer it is checked
against (reference.py)."""
