"""The Cortex-M4F harness (cm4/ + micropeft.eval.cm4), checked against facts that do
not come from QEMU: the instruction set (a subs/bne loop is two instructions
per iteration), arm-none-eabi-size's own Berkeley totals, and the linker's
256 KB limit."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from micropeft.eval import cm4
from micropeft.files import folder_lock

pytestmark = pytest.mark.skipif(
    bool(cm4.missing_tools()), reason=f"missing tools: {cm4.missing_tools()}"
)


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cm4")


def test_plugin_builds_as_a_shared_object(build_dir):
    plugin = cm4.build_plugin(build_dir)
    symbols = subprocess.run(["nm", "-D", plugin], capture_output=True, text=True).stdout
    assert "qemu_plugin_install" in symbols and "qemu_plugin_version" in symbols


def test_loop_counts_two_instructions_per_iteration(build_dir):
    small = cm4.calibrate(10, build_dir)
    large = cm4.calibrate(5010, build_dir)
    # subs + bne per iteration: the difference is exact, the rest (the mark
    # call and loop set-up) is a small constant.
    assert large - small == 2 * 5000
    assert 0 < small - 2 * 10 < 40


def test_cycle_estimate_of_the_loop_follows_the_trm(build_dir):
    """subs (1 cycle) + taken bne (1 + a refill of 1 onto the 16-bit subs) per
    iteration, hand-counted from the Cortex-M4 TRM's timings; the last bne is not
    taken (1 cycle), which cancels out of the difference of two loop lengths. The
    model sees one refill more over thousands of iterations (QEMU re-enters its
    translated code now and then), so the check allows 0.05% over 5000 iterations;
    the estimate itself repeats exactly (test_counts_repeat_exactly)."""
    runs = []
    for loops in (10, 5010):
        elf = cm4.link_firmware(
            build_dir / "cyc" / f"calibrate_{loops}.elf",
            [cm4.FW_DIR / "calibrate.c"],
            [f"PEFT_CM4_LOOPS={loops}"],
        )
        run = cm4.run_firmware(elf, build_dir=build_dir)
        runs.append(cm4.phase_deltas(run.cycle_marks, cm4.REGION, cm4.REGION_END)[0])
    assert abs((runs[1] - runs[0]) - 3 * 5000) <= 7


def test_counts_repeat_exactly(build_dir):
    elf = cm4.link_firmware(
        build_dir / "rep" / "calibrate.elf", [cm4.FW_DIR / "calibrate.c"], ["PEFT_CM4_LOOPS=777"]
    )
    first = cm4.run_firmware(elf, build_dir=build_dir)
    second = cm4.run_firmware(elf, build_dir=build_dir)
    assert first.marks == second.marks and first.total == second.total
    assert first.cycle_marks == second.cycle_marks and first.total_cycles == second.total_cycles
    assert [phase for phase, _ in first.marks] == [cm4.REGION, cm4.REGION_END]
    assert first.total > first.marks[-1][1]


def test_profile_puts_the_loop_in_main_and_adds_up_to_the_count(build_dir, tmp_path):
    """The plugin's per-block profile: over the whole run its blocks add up to the
    instruction count (every block runs whole: the firmware takes no interrupt); between
    the two marks, main executes the loop's 2 x 5010 instructions and the functions
    together what the marks count."""
    elf = cm4.link_firmware(
        build_dir / "prof" / "calibrate.elf", [cm4.FW_DIR / "calibrate.c"], ["PEFT_CM4_LOOPS=5010"]
    )
    whole = cm4.run_firmware(elf, build_dir=build_dir, profile=tmp_path / "whole.txt")
    functions = cm4.profile_functions(elf, tmp_path / "whole.txt")
    assert sum(f.instructions for f in functions) == whole.total
    assert sum(f.est_cycles for f in functions) == whole.total_cycles

    window = cm4.run_firmware(
        elf, build_dir=build_dir, profile=tmp_path / "window.txt", profile_marks=(1, 2)
    )
    counted = cm4.phase_deltas(window.marks, cm4.REGION, cm4.REGION_END)[0]
    functions = {f.name: f for f in cm4.profile_functions(elf, tmp_path / "window.txt")}
    assert 2 * 5010 <= functions["main"].instructions <= 2 * 5010 + 8
    assert abs(sum(f.instructions for f in functions.values()) - counted) <= 8


def test_code_size_matches_berkeley_format(build_dir):
    elf = cm4.calibrate(1, build_dir) and build_dir / "calibrate" / "calibrate_1.elf"
    size = cm4.code_size(elf)
    berkeley = (
        subprocess.run(
            ["arm-none-eabi-size", "-B", "-d", elf], capture_output=True, text=True, check=True
        )
        .stdout.splitlines()[1]
        .split()
    )
    text, data, bss = map(int, berkeley[:3])
    # Berkeley's text counts every allocated read-only section, blobs included.
    assert size.text + size.blobs == text
    assert size.data == data
    assert size.bss == bss
    assert size.text > 1000  # start-up, newlib's printf and semihosting


def test_parse_size_sysv():
    out = """fw.elf  :
section              size         addr
.isr_vector            64            0
.text                1000           64
.peft_blobs          5000         1064
.data                 100    536870912
.bss                  200    536871012
.heap                   0    536871212
.comment               30            0
Total                6394
"""
    size = cm4.parse_size_sysv(out)
    assert (size.text, size.blobs, size.data, size.bss) == (1064, 5000, 100, 200)
    assert size.flash == 1064 + 5000 + 100
    assert size.ram == 100 + 200 + cm4.STACK_BYTES


def test_ram_overflow_is_reported_not_raised(build_dir, tmp_path):
    # An arena of 300 KB cannot fit 256 KB of RAM: the linker's ASSERT fires.
    blobs = cm4.write_blobs_asm(
        tmp_path, b"\0" * 16, b"\0" * 16, np.zeros((1, 4), np.int8), np.zeros(1), 300 * 1024
    )
    with pytest.raises(cm4.DoesNotFit) as info:
        cm4.link_firmware(tmp_path / "big.elf", [cm4.FW_DIR / "calibrate.c", blobs])
    assert "256 KB RAM" in str(info.value)
    # The same blobs with a small arena link, and the blobs land in their own section.
    blobs = cm4.write_blobs_asm(
        tmp_path, b"\1" * 1000, b"\2" * 24, np.zeros((2, 4), np.int8), np.zeros(2), 1024
    )
    elf = cm4.link_firmware(tmp_path / "small.elf", [cm4.FW_DIR / "calibrate.c", blobs])
    size = cm4.code_size(elf)
    assert size.blobs >= 1000 + 24 + 8 + 8
    assert size.bss >= 1024


def test_runtime_library_compiles_for_cortex_m4(build_dir):
    library = cm4.build_runtime(build_dir)
    assert library.archive.is_file()
    sizes = cm4.library_code_size(library)
    assert sizes["text"] > 0
    # Hard-float ABI: the objects carry the VFP attribute.
    attrs = subprocess.run(
        ["arm-none-eabi-readelf", "-A", library.objects[0]], capture_output=True, text=True
    ).stdout
    assert "Tag_ABI_VFP_args: VFP registers" in attrs


def test_runtime_build_waits_for_another_process_building_it(tmp_path):
    """bench's workers build the same cached archive at once: a second build must wait for
    the first (it once archived objects the other was still writing: 'file format not
    recognized' at link time)."""
    key_dir = cm4.build_runtime(tmp_path / "first").archive.parent.name
    shared = tmp_path / "shared"
    builder = [
        sys.executable,
        "-c",
        f"from pathlib import Path; from micropeft.eval import cm4; "
        f"cm4.build_runtime(Path({str(shared)!r}))",
    ]
    with folder_lock(shared / key_dir):
        process = subprocess.Popen(builder)
        time.sleep(3.0)
        started = list((shared / key_dir).glob("*.o"))
        still_waiting = process.poll() is None
    assert process.wait(timeout=600) == 0
    assert still_waiting and not started
    members = subprocess.run(
        ["arm-none-eabi-ar", "t", shared / key_dir / "libpeft.a"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert len(members) == len(cm4.runtime_sources())


def test_int8_path_smlad_equals_plain_c_on_the_m4(build_dir):
    """The optimized backend's SMLAD variant (dsp/) and its plain-C one (portable/)
    give bit-identical int8-path results on the Cortex-M4 (exact integer sums)."""
    checksums = []
    for dsp in (True, False):
        sources = cm4.kernel_sources(cm4.LIB_DIR, "optimized", dsp=dsp)
        elf = cm4.link_firmware(
            build_dir / f"s8s8_{dsp}" / "check.elf", [cm4.FW_DIR / "s8s8_check.c", *sources]
        )
        run = cm4.run_firmware(elf, build_dir=build_dir)
        assert run.values["status"] == "0"
        checksums.append(run.values["checksum"])
    assert any("dsp" in str(s) for s in cm4.kernel_sources(cm4.LIB_DIR, "optimized", dsp=True))
    assert checksums[0] == checksums[1]


def test_a_plan_with_a_batch_capacity_trains_its_samples_in_one_call(tmp_path):
    """The driver takes the samples of a plan of batch capacity 2 in one forward_batch and
    one backward: each sample's phases are half the call's, the phases add up to the step,
    and the losses are the host runtime's for the same call (float32, same kernels)."""
    from micropeft.host.runtime import Trainer
    from micropeft.planning.plan import OptimizerConfig, build_plan
    from micropeft.prep.graph import Activation, Method
    from runtime_fixtures import GraphBuilder, mark

    gb = GraphBuilder(5, (8, 8, 2))
    x = gb.conv(gb.input, 4, k=3, s=2, act=Activation.RELU6)
    x = gb.conv(x, 6, k=1, s=1, act=Activation.RELU)
    graph, model = gb.graph(gb.fc(gb.mean(x), 3))
    for layer in graph.layers[:2]:
        mark(layer, Method.BITFIT)
    mark(graph.layers[-1], Method.LAST_LAYER)
    the_plan = build_plan(graph, model, OptimizerConfig("sgd"), batch=2)
    samples = np.random.default_rng(0).integers(-128, 128, (2, 8, 8, 2)).astype(np.int8)
    labels = np.array([1, 2], np.int32)
    blob = the_plan.to_bytes()
    cost = cm4.measure_training(
        model, blob, samples, labels, the_plan.arena_bytes("train"), tmp_path
    )
    assert cost.fits and cost.samples_per_step == 2
    assert cost.forward_each[0] == cost.forward_each[1] > 0
    assert cost.backward_each[0] == cost.backward_each[1] > 0
    assert sum(cost.forward_each) + sum(cost.backward_each) + cost.optimizer == cost.step
    host = Trainer(model, blob)
    np.testing.assert_allclose(cost.losses, host.forward_batch(samples, labels), atol=2e-6)
