"""ctypes bindings of the C runtime (lib/peft) for tests and tools."""
