"""`micropeft bench`: fine-tune with every method, C runtime against TensorFlow, and
write results.json, results.csv and the report."""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

from micropeft.commands import input_range_beside, output_folder, read_tflite, whole_model
from micropeft.errors import UserError
from micropeft.eval import tasks
from micropeft.eval.results import load_settings
from micropeft.eval.run import run_bench, run_grid
from micropeft.eval.sweep import run_sweep
from micropeft.planning.methods import LR_SCHEDULES


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"expected comma-separated integers, not {text!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:

    parser = subparsers.add_parser(
        "bench",
        help="benchmark every PEFT method (C runtime vs TensorFlow, RAM, flash, Cortex-M4F "
        "instructions) and write the report",
        description="Pretrain (cached), fine-tune with every method in the C runtime and in "
        "TensorFlow on the same data, measure memory, flash, MACs and Cortex-M4F instruction "
        "counts, and write results.json, results.csv, report.md and report.html. Finished "
        "runs are kept: running the same command again resumes.",
    )
    parser.add_argument(
        "--task",
        default=tasks.DEFAULT_TASK,
        help=f"built-in task: {', '.join(tasks.TASKS)} (default {tasks.DEFAULT_TASK})",
    )
    parser.add_argument(
        "--suite",
        help=f"run a grid of settings into one results file: {', '.join(tasks.SUITES)}, or "
        "a task name (that task over the full grid's models and sizes); see README",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        help="parallel worker processes (default: the CPU count)",
    )
    parser.add_argument(
        "--model",
        help="instead of a task: prepare-model's --out folder (its full.tflite) or a whole "
        "int8 .tflite (needs --dataset)",
    )
    parser.add_argument(
        "--dataset",
        help="the dataset for --model: prepare-dataset's --out folder (or its dataset.bin, "
        "split as prepared), a built-in name, a .npz or a folder of class folders",
    )
    parser.add_argument(
        "--input-range",
        help="float range of --model's input for pixels 0..1 (default: from summary.json "
        "beside the model, else 0,1)",
    )
    parser.add_argument(
        "--methods",
        help=f"comma-separated subset of: {', '.join(tasks.METHODS)} (default: all but the "
        "*_lean variants)",
    )
    parser.add_argument("--seeds", type=int, help="number of seeds (default 3)")
    d = tasks.BenchConfig()
    parser.add_argument("--epochs", type=int, help=f"fine-tuning epochs (default {d.epochs})")
    parser.add_argument("--batch-size", type=int, help=f"samples per step (default {d.batch_size})")
    parser.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        help=f"every method's learning-rate schedule (default {d.lr_schedule}: to 0 over the "
        "run, HF Trainer's default)",
    )
    parser.add_argument(
        "--quantized-forward",
        action="store_true",
        default=None,
        help="every method with the quantized forward (prepare-model --quantized-forward: "
        "activations fake-quantized to int8 in training and inference, so that the merged "
        "int8 model computes what the runtime trained)",
    )
    parser.add_argument(
        "--train-samples", type=int, help=f"target training samples (default {d.train_samples})"
    )
    parser.add_argument(
        "--test-samples", type=int, help=f"target test samples (default {d.test_samples})"
    )
    parser.add_argument(
        "--pretrain-epochs",
        type=int,
        help=f"source pretraining epochs (default {d.pretrain_epochs})",
    )
    parser.add_argument("--no-cm4", action="store_true", help="skip the Cortex-M4F measurement")
    parser.add_argument("--no-scratch", action="store_true", help="skip training from scratch")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tiny smoke run (1 seed, 3 methods, 2 epochs, 1 pretraining epoch)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("out/bench"), help="output folder (default out/bench)"
    )
    parser.add_argument("--no-report", action="store_true", help="do not write the report")
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="instead of the benchmark: the learning-rate sweep (each method in the C runtime "
        "with every optimizer and rate of eval/sweep.py's grid, scored on a validation split "
        "of the training samples; seeds 0 and 1 unless --seeds), written to <out>/sweep.md; "
        "a later bench into the same --out cites it",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import warnings

    from micropeft.prep.convert import start_tensorflow_quietly

    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    output_folder(args.out)
    cfg = tasks.quick_config() if args.quick else tasks.BenchConfig()
    if args.dataset is not None and args.model is None:
        raise UserError(
            "--dataset needs --model (prepare-model's folder or the int8 .tflite the data is "
            "for); a built-in --task brings its own data"
        )
    if args.model is not None and args.dataset is None:
        raise UserError(
            "--model needs --dataset (prepare-dataset's folder, a built-in name, a .npz or a "
            "folder of class folders)"
        )
    if args.model is not None:
        model_path = whole_model(args.model)
        read_tflite(model_path, parse="whole")
        cfg.model_path = str(model_path)
        cfg.dataset = args.dataset
        cfg.task = "user"
        cfg.input_range = input_range_beside(model_path, args.input_range)
    else:
        cfg.task = args.task
    if args.methods:
        cfg.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.seeds is not None:
        if args.seeds < 1:
            raise UserError("--seeds must be at least 1")
        cfg.seeds = list(range(args.seeds))
    elif args.sweep and not args.quick:
        cfg.seeds = [0, 1]
    for name in (
        "epochs",
        "batch_size",
        "lr_schedule",
        "quantized_forward",
        "train_samples",
        "test_samples",
        "pretrain_epochs",
    ):
        value = getattr(args, name)
        if value is not None:
            setattr(cfg, name, value)
    cfg.cm4 = not args.no_cm4
    cfg.scratch = not args.no_scratch
    # Bad input above answers at once; TensorFlow starts here, its start-up chatter muted.
    start_tensorflow_quietly()
    start = time.perf_counter()
    jobs = args.jobs if args.jobs is not None else os.cpu_count() or 1
    if args.suite:
        if args.model or args.dataset:
            raise UserError("--suite runs built-in tasks: drop --model and --dataset")
        configs = tasks.suite_configs(args.suite, cfg)
        path = run_grid(configs, args.out, report=not args.no_report, jobs=jobs)
        print(f"wrote {path}: {len(configs)} settings ({time.perf_counter() - start:.0f} s)")
        return _report_failures(path)
    existed = args.out.exists()
    try:
        if args.sweep:
            table = run_sweep(cfg, args.out)
            print(f"wrote {table} ({time.perf_counter() - start:.0f} s)")
            return 0
        path = run_bench(cfg, args.out, report=not args.no_report, jobs=jobs)
    except UserError:
        # Bad input found during the set-up: leave nothing behind, but never
        # remove a folder that holds results (a later run resumes them).
        if not existed and not any((args.out / f).exists() for f in ("results.json", "sweep.json")):
            shutil.rmtree(args.out, ignore_errors=True)
        raise
    print(f"wrote {path} ({time.perf_counter() - start:.0f} s)")
    if not args.no_report:
        print(f"report: {args.out / 'report.md'} and {args.out / 'report.html'}")
    return _report_failures(path)


def _report_failures(path: Path) -> int:
    """Exit status 1 when a run failed (its error is in the results and the report)."""
    failed = [
        (setting_id, s)
        for setting_id, setting in load_settings(path)
        for s in setting.get("skipped", [])
        if s.get("kind") == "error"
    ]
    for setting_id, s in failed:
        seed = "" if s.get("seed") is None else f" seed {s['seed']}"
        print(f"bench: {setting_id}: {s.get('method')}{seed} failed: {s.get('reason')}")
    return 1 if failed else 0
