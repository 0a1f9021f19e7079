"""The firmware is built as the Cortex-M4F benchmark measures it: one flags file
(lib/peft/cortex_m4f.flags) is read by the harness (cm4.py) and by the Zephyr build
(lib/peft/CMakeLists.txt, through CMake itself here), and every Cortex-M4F board
configuration of the sample turns on the FPU with the hard-float ABI those flags name."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from micropeft.deploy import boards
from micropeft.errors import UserError
from micropeft.eval import cm4, target_flags

REPO = Path(__file__).resolve().parents[2]
SAMPLE_BOARDS = REPO / "samples" / "peft_mobilenet" / "boards"
M4F_BOARDS = [b for b in boards.BOARDS.values() if b.core == "cortex-m4f"]


def conf_options(path: Path) -> dict[str, str]:
    """CONFIG_X=value lines of a Kconfig fragment (later lines win, as in Kconfig)."""
    options = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("CONFIG_") and "=" in line:
            name, value = line.split("=", 1)
            options[name] = value
    return options


def cmake_flags(key: str, tmp_path: Path) -> list[str]:
    script = tmp_path / "read.cmake"
    script.write_text(
        f"include({REPO / 'lib' / 'peft' / 'target_flags.cmake'})\n"
        f"peft_read_target_flags({target_flags.M4F_FLAGS_FILE} {key} flags)\n"
        'message("${flags}")\n'
    )
    result = subprocess.run(["cmake", "-P", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stderr.strip().split(";")


def test_flags_file_names_the_fpu_and_the_optimisation_level():
    flags = target_flags.read_flags()
    assert "-mfloat-abi=hard" in flags["arch"] and "-mfpu=fpv4-sp-d16" in flags["arch"]
    assert "-mcpu=cortex-m4" in flags["arch"]
    # The Kconfig line is what gives those arch flags inside Zephyr.
    assert target_flags.kconfig_options() == {"CONFIG_FPU": "y", "CONFIG_FP_HARDABI": "y"}
    assert [f for f in flags["opt"] if f.startswith("-O")] == [flags["opt"][0]]
    # No fused multiply-add: the cycle estimate says VMUL + VADD beats VFMA on the M4.
    assert "-ffp-contract=off" in flags["opt"]


def test_harness_compiles_with_the_flags_file():
    flags = target_flags.read_flags()
    assert cm4.ARCH_FLAGS == flags["arch"]
    assert cm4.OPT_FLAGS[: len(flags["opt"])] == flags["opt"]
    assert not any(f.startswith("-O") for f in cm4.OPT_FLAGS[len(flags["opt"]) :])


@pytest.mark.parametrize("key", target_flags.KEYS)
def test_cmake_reads_the_same_flags_as_python(key, tmp_path):
    assert cmake_flags(key, tmp_path) == target_flags.read_flags()[key]


def test_zephyr_build_of_lib_peft_takes_its_opt_level_from_the_file():
    text = (REPO / "lib" / "peft" / "CMakeLists.txt").read_text()
    assert "peft_read_target_flags(${PEFT_LIB_DIR}/cortex_m4f.flags opt PEFT_OPT_FLAGS)" in text
    assert "zephyr_library_compile_options(${PEFT_OPT_FLAGS})" in text


@pytest.mark.parametrize("board", M4F_BOARDS, ids=lambda b: b.name)
def test_cortex_m4f_board_configuration_enables_the_fpu(board):
    conf = SAMPLE_BOARDS / f"{board.zephyr_board}.conf"
    assert conf.is_file(), conf
    options = conf_options(conf)
    for name, value in target_flags.kconfig_options().items():
        assert options.get(name) == value, f"{conf.name}: {name}={options.get(name)}"
    # The sample's common configuration does not turn it off again.
    common = conf_options(REPO / "samples" / "peft_mobilenet" / "prj.conf")
    assert common.get("CONFIG_FPU", "y") == "y" and common.get("CONFIG_FP_SOFTABI") != "y"


def test_bad_flags_file_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.flags"
    bad.write_text("arch = -mthumb\nopt = -O2\n")
    with pytest.raises(UserError, match="missing kconfig"):
        target_flags.read_flags(bad)
    bad.write_text("arch = -mthumb\nopt = -O2\nkconfig = CONFIG_FPU=y\nspeed = -O3\n")
    with pytest.raises(UserError, match="bad.flags:4"):
        target_flags.read_flags(bad)


QEMU_ARM_BOARD = "mps2/an521/cpu0"  # Cortex-M33 with FPU; Zephyr 3.4 calls it mps2_an521
QEMU_ARM_FILE = "mps2_an521"  # boards/<name>.{conf,overlay}, read under both names


def partitions(text: str) -> dict[str, tuple[int, int]]:
    found = re.findall(r"(\w+): partition@([0-9a-f]+) \{\s*label = \"\w+\";\s*reg = <(\S+) (\S+)>;",
                       text)  # fmt: skip
    return {label: (int(at, 16), int(size, 16)) for label, at, _addr, size in found}


def test_qemu_arm_board_runs_the_sample_on_a_flash_simulator():
    overlay = (SAMPLE_BOARDS / f"{QEMU_ARM_FILE}.overlay").read_text()
    assert 'compatible = "zephyr,sim-flash";' in overlay and "flash_sim@0" in overlay
    # The same partitions as native_sim's built-in images use.
    native = partitions((SAMPLE_BOARDS / "native_sim.overlay").read_text())
    assert partitions(overlay) == native and len(native) == 4
    options = conf_options(SAMPLE_BOARDS / f"{QEMU_ARM_FILE}.conf")
    for name, value in target_flags.kconfig_options().items():
        assert options.get(name) == value, name
    assert options["CONFIG_PEFT_SAMPLE_BUILTIN_IMAGES"] == "y"
    kconfig = (REPO / "samples" / "peft_mobilenet" / "Kconfig").read_text()
    builtin = kconfig[kconfig.index("config PEFT_SAMPLE_BUILTIN_IMAGES") :]
    assert "depends on FLASH_SIMULATOR" in builtin.split("\n\n")[0]


def test_sample_and_every_suite_list_the_qemu_arm_board():
    files = [REPO / "samples" / "peft_mobilenet" / "sample.yaml"]
    files += sorted((REPO / "tests").glob("*/testcase.yaml"))
    assert len(files) >= 5
    for path in files:
        spec = yaml.safe_load(path.read_text())
        allowed = [p for t in spec["tests"].values() for p in t.get("platform_allow", [])] + spec[
            "common"
        ].get("platform_allow", [])
        assert QEMU_ARM_BOARD in allowed, path
    state_overlay = (REPO / "tests" / "state" / "boards" / f"{QEMU_ARM_FILE}.overlay").read_text()
    assert set(partitions(state_overlay)) == {"peft_state0", "peft_state1"}


# Run-time helpers of the ARM EABI that do floating point in software: single (__aeabi_f*),
# double (__aeabi_d*) and the int <-> float/double conversions (__aeabi_i2f, __aeabi_ul2d...).
SOFT_FLOAT_HELPER = re.compile(r"__aeabi_(?:f\w+|d\w+|u?[il]2[fd])")


@pytest.mark.skipif(bool(cm4.missing_tools()), reason=f"missing tools: {cm4.missing_tools()}")
@pytest.mark.parametrize("backend", cm4.BACKENDS)
def test_lib_peft_calls_no_soft_float_helper_with_the_firmware_flags(backend, tmp_path):
    """lib/peft built with cortex_m4f.flags (every method, as the harness builds it)
    runs on the FPU alone: no object asks for a software float or double helper.
    A double anywhere (a double libm call, a 1.0 literal in float code, a %f)
    brings __aeabi_f2d and its kin back into the nRF52840 firmware."""
    library = cm4.build_runtime(tmp_path, backend=backend)
    undefined = subprocess.run(
        ["arm-none-eabi-nm", "-u", "-A", *library.objects],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    calls = []
    for line in undefined.splitlines():  # "<object>:         U <symbol>"
        path, _, rest = line.partition(":")
        if SOFT_FLOAT_HELPER.fullmatch(rest.split()[-1]):
            calls.append(f"{Path(path).name}: {rest.split()[-1]}")
    assert len(library.objects) > 20
    assert calls == []
