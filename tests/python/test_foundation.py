"""The repository is a valid Zephyr module with a west workspace, and the CLI
behaves on bad input. References: west's own manifest parser, kconfiglib
(Zephyr's Kconfig implementation), CMake."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import kconfiglib
import pytest
import yaml
from west.manifest import ImportFlag, Manifest

from micropeft import formats

REPO = Path(__file__).resolve().parents[2]


def test_manifest_parses_with_west_and_pins_a_release_tag():
    manifest = Manifest.from_data((REPO / "west.yml").read_text(), import_flags=ImportFlag.IGNORE)
    zephyr = next(p for p in manifest.projects if p.name == "zephyr")
    assert re.fullmatch(r"v\d+\.\d+\.\d+", zephyr.revision), zephyr.revision
    # A supported release: the 3.7 LTS (until 2029) or the latest stable 4.4.
    assert re.fullmatch(r"v(3\.7|4\.4)\.\d+", zephyr.revision), zephyr.revision
    assert zephyr.revision in (REPO / "README.md").read_text()
    raw = yaml.safe_load((REPO / "west.yml").read_text())
    # tflite-micro sits in Zephyr's "optional" group, which Zephyr disables.
    assert "+optional" in raw["manifest"]["group-filter"]
    allow = raw["manifest"]["projects"][0]["import"]["name-allowlist"]
    for module in ("cmsis", "cmsis-nn", "hal_nordic", "tflite-micro"):
        assert module in allow
    assert raw["manifest"]["self"]["path"] == "micropeft"


def test_west_commands_file_is_listed_and_exists():
    raw = yaml.safe_load((REPO / "west.yml").read_text())
    commands = REPO / raw["manifest"]["self"]["west-commands"]
    assert commands.is_file()
    # West resolves `file:` from the project's root (see test_west_command.py).
    for entry in yaml.safe_load(commands.read_text())["west-commands"]:
        assert (REPO / entry["file"]).is_file()


def test_module_yml_points_at_root_cmake_and_kconfig():
    module = yaml.safe_load((REPO / "zephyr" / "module.yml").read_text())
    assert module["build"]["cmake"] == "."
    assert module["build"]["kconfig"] == "Kconfig"
    assert (REPO / "CMakeLists.txt").is_file() and (REPO / "Kconfig").is_file()
    for folder in module.get("samples", []) + module.get("tests", []):
        assert (REPO / folder).is_dir()


# Zephyr symbols that micropeft's Kconfig depends on or selects.
ZEPHYR_STAND_INS = (
    "CPU_CORTEX_M",
    "CPU_CORTEX_M4",
    "CPU_CORTEX_M7",
    "ARMV8_M_DSP",
    "CPP",
    "REQUIRES_FULL_LIBC",
    "TENSORFLOW_LITE_MICRO",
    "TENSORFLOW_LITE_MICRO_CMSIS_NN_KERNELS",
    "FLASH_MAP",
    "FLASH_PAGE_LAYOUT",
)


def load_kconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> kconfiglib.Kconfig:
    # Stand-ins for the Zephyr symbols micropeft depends on.
    stand_ins = "".join(f'config {name}\n\tbool "stand-in"\n' for name in ZEPHYR_STAND_INS)
    (tmp_path / "Kconfig").write_text(stand_ins + f'source "{REPO / "Kconfig"}"\n')
    monkeypatch.setenv("srctree", str(tmp_path))
    return kconfiglib.Kconfig(str(tmp_path / "Kconfig"), warn_to_stderr=False)


def test_kconfig_is_valid_and_every_symbol_is_prefixed(tmp_path, monkeypatch):
    kconf = load_kconfig(tmp_path, monkeypatch)
    assert kconf.warnings == []
    ours = {
        name
        for name, sym in kconf.syms.items()
        if any(
            str(REPO) in node.filename or not Path(node.filename).is_absolute()
            for node in sym.nodes
        )
        and name not in ZEPHYR_STAND_INS
    }
    assert ours, "no symbols loaded"
    assert all(name.startswith("PEFT") for name in ours), sorted(ours)
    for name in (
        "PEFT_METHOD_FULL",
        "PEFT_METHOD_LAST_LAYER",
        "PEFT_METHOD_BITFIT",
        "PEFT_METHOD_SCALE_SHIFT",
        "PEFT_METHOD_LORA",
        "PEFT_METHOD_SPARSE",
        "PEFT_OPTIMIZER_SGD",
        "PEFT_OPTIMIZER_ADAM",
        "PEFT_ARENA_SIZE",
        "PEFT_BACKEND_REFERENCE",
        "PEFT_BACKEND_OPTIMIZED",
        "PEFT_KERNELS_DSP",
        "PEFT_TFLM",
        "PEFT_STORAGE",
        "PEFT_STORAGE_FLASH_MAP",
    ):
        assert name in kconf.syms, name


def test_every_kconfig_option_is_read_somewhere(tmp_path, monkeypatch):
    # an option nothing reads (C, CMake, .conf, YAML, Python) and that selects nothing
    # is dead configuration
    kconf = load_kconfig(tmp_path, monkeypatch)
    ours = [
        n for n, sym in kconf.syms.items() if n.startswith("PEFT") and sym.nodes and not sym.selects
    ]
    files = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    text = "\n".join(
        (REPO / f).read_text(errors="replace")
        for f in files
        if not Path(f).name.startswith("Kconfig")
        and Path(f).suffix in {".c", ".cpp", ".h", ".txt", ".cmake", ".conf", ".yaml", ".py"}
        and (REPO / f).is_file()
    )
    methods = {f"PEFT_METHOD_{m.upper()}" for m in formats.METHOD_NAMES}  # CMake builds the name
    unread = [
        name for name in ours if f"CONFIG_{name}" not in text and name not in methods | {"PEFT"}
    ]
    assert not unread, f"Kconfig options that nothing reads: {unread}"


def test_kconfig_defaults_when_enabled(tmp_path, monkeypatch):
    kconf = load_kconfig(tmp_path, monkeypatch)
    assert kconf.syms["PEFT_METHOD_LORA"].str_value == "n"  # hidden while PEFT is off
    kconf.syms["PEFT"].set_value(2)
    assert kconf.syms["PEFT_METHOD_LORA"].str_value == "y"
    # The optimized kernels are the default backend; the TFLM glue needs TFLM.
    assert kconf.syms["PEFT_BACKEND_OPTIMIZED"].str_value == "y"
    assert "PEFT_BACKEND_CMSIS_NN" not in kconf.syms
    # The SMLAD int8 path needs a core with the DSP extension.
    assert kconf.syms["PEFT_KERNELS_DSP"].str_value == "n"
    kconf.syms["CPU_CORTEX_M4"].set_value(2)
    assert kconf.syms["PEFT_KERNELS_DSP"].str_value == "y"
    assert kconf.syms["PEFT_TFLM"].str_value == "n"
    kconf.syms["TENSORFLOW_LITE_MICRO"].set_value(2)
    kconf.syms["CPP"].set_value(2)
    assert kconf.syms["PEFT_TFLM"].str_value == "y"
    assert kconf.syms["REQUIRES_FULL_LIBC"].str_value == "y"  # selected: libm for expf/sqrtf
    # The storage library's flash_map adapter needs Zephyr's flash map.
    kconf.syms["PEFT_STORAGE"].set_value(2)
    assert kconf.syms["PEFT_STORAGE_FLASH_MAP"].str_value == "n"
    kconf.syms["FLASH_MAP"].set_value(2)
    kconf.syms["FLASH_PAGE_LAYOUT"].set_value(2)
    assert kconf.syms["PEFT_STORAGE_FLASH_MAP"].str_value == "y"


def test_host_build_compiles_with_warnings_as_errors(tmp_path):
    for step in (
        ["cmake", "-S", str(REPO), "-B", str(tmp_path), "-DCMAKE_BUILD_TYPE=Release"],
        ["cmake", "--build", str(tmp_path), "--parallel", "2"],
    ):
        result = subprocess.run(step, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "lib" / "peft" / "libpeft.so").is_file()
    flags = (tmp_path / "CMakeCache.txt").read_text()
    assert "micropeft" in flags
    assert "-Werror" in (REPO / "CMakeLists.txt").read_text()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "micropeft", *args], capture_output=True, text=True
    )


def test_cli_help():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "usage: micropeft" in result.stdout


@pytest.mark.parametrize(
    "args",
    [("no-such-command",), ("--no-such-option",), ("build-host", "--bogus")],
)
def test_cli_rejects_bad_usage_with_one_line(args):
    result = run_cli(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("micropeft")
    assert "Traceback" not in result.stderr
