"""Seed corpora of the libFuzzer harnesses, made at test time.

The container, dataset and first plan seeds come from the command line as a
user runs it (prepare-model on a tiny CNN, prepare-dataset, pack); more plan
seeds from the planner on hand-built graphs of every operator and method
(tests/host/gen_plan_fixtures.py, tests/python/runtime_fixtures.py); the
state seeds from the C runtime (runtime.Trainer) on the host tests' fixtures,
which fuzz_state.c compiles in. Each seed is one flag byte (see each
harness) and the blob.

    python tests/fuzz/make_corpus.py --out build/fuzz/corpus
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "host"))
sys.path.insert(0, str(HERE.parent / "python"))

import gen_plan_fixtures  # noqa: E402

from micropeft.deploy import pack  # noqa: E402
from micropeft.host.runtime import Trainer  # noqa: E402
from micropeft.planning.plan import OptimizerConfig, build_plan  # noqa: E402
from runtime_fixtures import random_graph  # noqa: E402

FIXTURES = (gen_plan_fixtures.chain, gen_plan_fixtures.residual_s8, gen_plan_fixtures.bitfit_only)
RESIGN_PLAN, POINT_AT_MODEL = 1, 2  # fuzz_plan.c flag bits
STATE_INFER, STATE_RESIGN = 4, 8  # fuzz_state.c flag bits


def _cli(*args: object, env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "micropeft", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"make_corpus: micropeft {args[0]} failed:\n{done.stderr[-2000:]}")


def _write(folder: Path, name: str, flags: int, blob: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(bytes([flags]) + blob)


def cli_images(work: Path) -> tuple[bytes, bytes, bytes, bytes]:
    """(device model, plan, container, dataset blob) made by the command line."""
    env = dict(os.environ, MICROPEFT_CACHE=os.environ.get("MICROPEFT_CACHE", str(work / "cache")))
    model_dir, data_dir, packed = work / "model", work / "dataset", work / "packed"
    _cli(
        "prepare-model", "--arch", "tiny_cnn", "--size", "16", "--pretrain-epochs", "1",
        "--method", "lora,bitfit", "--r", "2", "--act-cache", "s8", "--out", model_dir, env=env,
    )  # fmt: skip
    _cli(
        "prepare-dataset", "--model", model_dir / "model.tflite", "--source", "digits",
        "--limit", "20", "--out", data_dir, env=env,
    )  # fmt: skip
    _cli(
        "pack", "--board", "native_sim", "--model-dir", model_dir, "--dataset",
        data_dir / "dataset.bin", "--out", packed, env=env,
    )  # fmt: skip
    return (
        (model_dir / "model.tflite").read_bytes(),
        (model_dir / "plan.bin").read_bytes(),
        (packed / "peft_model.bin").read_bytes(),
        (data_dir / "dataset.bin").read_bytes(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="corpus folder (one sub-folder per harness)")
    args = parser.parse_args()
    out = Path(args.out)
    model, plan, container, dataset = cli_images(out / "work")

    _write(out / "container", "cli", 0, container)
    _write(out / "container", "cli-resign", RESIGN_PLAN, container)
    _write(out / "dataset", "cli", 0, dataset)
    _write(out / "dataset", "cli-resign", 1, dataset)
    sign = RESIGN_PLAN | POINT_AT_MODEL
    _write(out / "plan", "cli", sign, pack.model_container(model, plan))
    for fn in FIXTURES:
        graph, fake_model, opt, cache = fn()
        blob = build_plan(graph, fake_model, opt, cache, seed=5).to_bytes()
        _write(out / "plan", fn.__name__, sign, pack.model_container(fake_model, blob))
    for seed in range(16):
        graph, fake_model = random_graph(seed)
        opt = OptimizerConfig("adam" if seed % 2 else "sgd", clip_norm=0.5 * (seed % 3))
        blob = build_plan(graph, fake_model, opt, "s8" if seed % 4 < 2 else "f32", seed).to_bytes()
        _write(
            out / "plan",
            f"random{seed}",
            sign | (seed << 2),
            pack.model_container(fake_model, blob),
        )

    for index, fn in enumerate(FIXTURES):
        graph, fake_model, opt, cache = fn()
        the_plan = build_plan(graph, fake_model, opt, cache, seed=5)
        trainer = Trainer(fake_model, the_plan)
        shape = the_plan.tensors[0].info.shape
        x = np.random.default_rng(index).integers(-128, 128, size=shape).astype(np.int8)
        trainer.train_sample(x, 0)
        trainer.step()
        state = trainer.export_state(epoch=1, sequence=2)
        _write(out / "state", f"{fn.__name__}-train", index | STATE_RESIGN, state)
        _write(out / "state", f"{fn.__name__}-infer", index | STATE_INFER | STATE_RESIGN, state)
        _write(out / "state", f"{fn.__name__}-signed", index, state)
    counts = {d.name: len(list(d.iterdir())) for d in sorted(out.iterdir()) if d.name != "work"}
    print("make_corpus: " + ", ".join(f"{name} {n} seeds" for name, n in counts.items()))


if __name__ == "__main__":
    main()
