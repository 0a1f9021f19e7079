"""`pip install .` (not editable) gives a package that works without the repository:
the wheel carries the C sources it builds (micropeft/csrc), and the installed package
prepares a model and builds and runs the C runtime from them, away from this checkout.
The tools that only make test data (tools/) and the tests stay out of the wheel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# What a wheel is built from (setup.py's C_SOURCES and the package); copied first, so
# that nothing else of the checkout (build/, tests/, tools/) can reach the wheel.
SOURCES = ("pyproject.toml", "setup.py", "README.md", "scripts", "CMakeLists.txt", "include")
SOURCES += ("lib", "subsys/storage", "cm4")

# Run by the installed package: its C runtime loads the plan prepare-model wrote.
CHECK_RUNTIME = """
import json, sys
from pathlib import Path
from micropeft.host import native, runtime
out = Path(sys.argv[1])
trainer = runtime.Trainer((out / "model.tflite").read_bytes(), (out / "plan.bin").read_bytes())
print(json.dumps({
    "package": str(Path(runtime.__file__).resolve()),
    "installed": native.INSTALLED,
    "library": str(native.library_path().resolve()),
    "train": trainer.plan.arena_size("train"),
    "infer": trainer.plan.arena_size("infer"),
    "params": trainer.plan.trainable_params(),
    "classes": trainer.num_classes,
    "state": len(trainer.export_state()),
}))
"""


def _run(args, cwd, env=None):
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(map(str, args))}\n{done.stdout}\n{done.stderr}"
    return done


def test_wheel_installs_and_runs_without_the_checkout(tmp_path):
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=ignore)
        else:
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", src], src)
    (wheel,) = (tmp_path / "dist").glob("micropeft-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "micropeft/csrc/lib/peft/CMakeLists.txt" in names
    assert "micropeft/csrc/include/peft/peft_formats.h" in names
    assert "micropeft/eval/kernel_bench.py" in names
    assert not [n for n in names if "golden" in n or n.startswith(("tests/", "tools/"))]

    site = tmp_path / "site"
    _run([*pip, "install", "--no-deps", "--no-build-isolation", "--target", site, wheel], tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(
        os.environ,
        PYTHONPATH=str(site),  # ahead of the editable install of this checkout
        MICROPEFT_CACHE=str(tmp_path / "cache"),  # models, and the installed package's build
    )
    env.pop("MICROPEFT_BUILD_DIR", None)
    out = elsewhere / "m"
    prepare = [sys.executable, "-m", "micropeft", "prepare-model", "--arch", "tiny_cnn"]
    prepare += ["--size", "16", "--pretrain-epochs", "1", "--method", "lora,bitfit", "--r", "2"]
    _run([*prepare, "--out", out], elsewhere, env)
    done = _run([sys.executable, "-c", CHECK_RUNTIME, out], elsewhere, env)
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(got["package"]).is_relative_to(site.resolve())
    assert got["installed"]
    assert Path(got["library"]).is_relative_to((tmp_path / "cache").resolve())
    # The C runtime built from the shipped sources agrees with the Python planner.
    summary = json.loads((out / "summary.json").read_text())
    assert got["train"] == summary["ram"]["train_arena"]
    assert got["infer"] == summary["ram"]["infer_arena"]
    assert got["params"] == summary["trainable_parameters"]
    assert got["classes"] == summary["num_classes"]
    assert got["state"] == summary["flash"]["state_slot"]
