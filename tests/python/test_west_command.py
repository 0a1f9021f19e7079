"""`west micropeft` loaded the way west loads it: a workspace whose manifest repository is
this one (west.yml names scripts/west-commands.yml), run through the `west` program, so west's
own path resolution, schema check and import of the extension file are what is tested.

West resolves the manifest's import of zephyr/west.yml before it lists extension commands, so
the workspace gets a one-commit stand-in for the zephyr repository (an empty manifest at the
`manifest-rev` ref that `west update` would have made)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from micropeft.cli import build_parser

REPO = Path(__file__).resolve().parents[2]


def subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("git") is None:
        pytest.fail("git is needed to make the west workspace (apt-get install git)")
    top = tmp_path_factory.mktemp("west-workspace")
    (top / ".west").mkdir()
    (top / ".west" / "config").write_text("[manifest]\npath = micropeft\nfile = west.yml\n")
    (top / "micropeft").symlink_to(REPO, target_is_directory=True)
    zephyr = top / "zephyr"
    zephyr.mkdir()
    (zephyr / "west.yml").write_text("manifest:\n  projects: []\n")

    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            cwd=zephyr,
            check=True,
            capture_output=True,
        )

    git("init", "-q")
    git("add", "west.yml")
    git("commit", "-qm", "stand-in")
    git("update-ref", "refs/heads/manifest-rev", "HEAD")
    return top


def west(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "west", *args], cwd=workspace, capture_output=True, text=True
    )


def test_west_lists_the_extension_command(workspace):
    result = west(workspace, "help")
    assert result.returncode == 0, result.stderr
    assert "extension commands from project manifest (path: micropeft)" in result.stdout
    assert "micropeft:" in result.stdout
    spec = yaml.safe_load((REPO / "scripts" / "west-commands.yml").read_text())
    # West resolves `file:` from the project's root, not from the yml's folder.
    for entry in spec["west-commands"]:
        assert (REPO / entry["file"]).is_file(), entry["file"]


def test_west_micropeft_help_lists_every_subcommand(workspace):
    result = west(workspace, "micropeft", "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: micropeft" in result.stdout
    for name in subcommands():
        assert name in result.stdout


@pytest.mark.parametrize("name", subcommands())
def test_every_subcommand_runs_through_west(workspace, name):
    result = west(workspace, "micropeft", name, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: micropeft {name}"), result.stdout[:200]


def test_bad_input_through_west_is_one_line_exit_2(workspace, tmp_path):
    result = west(workspace, "micropeft", "report", str(tmp_path / "missing.json"))
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("micropeft"), result.stderr
    assert "Traceback" not in result.stderr
