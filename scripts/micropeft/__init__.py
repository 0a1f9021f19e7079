"""micropeft: parameter-efficient fine-tuning for microcontrollers (tooling).

The command-line interface is `micropeft` (or `python -m micropeft`); the
library modules below are its public API.
"""

__version__ = "0.1.0"
