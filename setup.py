"""Ships the C sources that micropeft builds for the host (native.py) as package data.

They live at the repository root (the root is also the Zephyr module), outside the
package folder, so build_py copies them into micropeft/csrc of the wheel. An editable
install reads them from the repository instead and copies nothing.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# What the host build (CMakeLists.txt outside Zephyr, PEFT_BUILD_TESTS off) and the
# Cortex-M4F harness (micropeft.eval.cm4) read.
C_SOURCES = ("CMakeLists.txt", "include", "lib", "subsys/storage", "cm4")


class BuildPyWithCSources(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / "micropeft" / "csrc"
        for name in C_SOURCES:
            source, dest = ROOT / name, target / name
            if source.is_dir():
                shutil.copytree(source, dest, dirs_exist_ok=True)
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, dest)


setup(cmdclass={"build_py": BuildPyWithCSources})
