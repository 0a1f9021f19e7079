"""The Cortex-M4F build flags of the runtime, from lib/peft/cortex_m4f.flags.

That file is the one place that says how lib/peft is compiled for the nRF52840: the Zephyr
build (lib/peft/CMakeLists.txt) and the benchmark harness (cm4.py) both read it.
"""

from __future__ import annotations

from pathlib import Path

from micropeft.errors import UserError
from micropeft.host.native import REPO_ROOT

M4F_FLAGS_FILE = REPO_ROOT / "lib" / "peft" / "cortex_m4f.flags"
KEYS = ("arch", "kconfig", "opt")


def read_flags(path: Path = M4F_FLAGS_FILE) -> dict[str, list[str]]:
    """{key: [flag, ...]} for every key of KEYS; UserError when one is missing or unknown."""
    found: dict[str, list[str]] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        key, sep, value = (part.strip() for part in text.partition("="))
        if not sep or key not in KEYS or key in found:
            raise UserError(f"{path}:{number}: expected one of {', '.join(KEYS)} = <flags>")
        found[key] = value.split()
    missing = [key for key in KEYS if key not in found]
    if missing:
        raise UserError(f"{path}: missing {', '.join(missing)}")
    return found


def kconfig_options(path: Path = M4F_FLAGS_FILE) -> dict[str, str]:
    """The `kconfig` line as {CONFIG_NAME: value}."""
    return dict(item.split("=", 1) for item in read_flags(path)["kconfig"])
