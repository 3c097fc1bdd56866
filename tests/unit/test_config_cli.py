"""``sweepcast validate``: exit codes, the FILE:LINE: path: message format, light imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import main

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart.yaml"


def run(*args: str):
    return CliRunner().invoke(main, ["validate", *args])


def test_valid_exits_0():
    r = run(str(QUICKSTART))
    assert r.exit_code == 0, r.output
    assert "valid" in r.output and "quickstart" in r.output


def test_invalid_exits_2_with_one_line_per_problem(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text(
        QUICKSTART.read_text()
        .replace("mode: max", "mode: highest")
        .replace("grace_epochs: 3", "grace_epochs: 3\n  min_samples_required: 4")
    )
    r = run(str(f))
    assert r.exit_code == 2
    lines = [ln for ln in r.output.splitlines() if ln.startswith(str(f) + ":")]
    text = QUICKSTART.read_text().splitlines()
    mode_line = next(i for i, ln in enumerate(text, 1) if ln.startswith("mode:"))
    assert f"{f}:{mode_line}: mode: must be 'min' or 'max' (got 'highest')" in lines
    assert any(
        ": pruning.min_samples_required: scheduler 'curve' does not accept option" in ln
        and ln.endswith("(got 4)")
        for ln in lines
    ), lines
    assert "invalid (2 problems)" in r.output


@pytest.mark.parametrize(
    "content,expect",
    [
        (None, "no such file"),
        ("", "the file is empty"),
        ("name: [unclosed\n", "YAML syntax error"),
    ],
)
def test_file_problems_exit_2(tmp_path, content, expect):
    f = tmp_path / "c.yaml"
    if content is not None:
        f.write_text(content)
    r = run(str(f))
    assert r.exit_code == 2
    assert expect in r.output and str(f) in r.output


def test_trainable_problem_exit_2(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(QUICKSTART.read_text().replace("trials.examples.mlp:train", "trials.nope:train"))
    r = run(str(f))
    assert r.exit_code == 2
    assert "trainable: cannot import module 'trials.nope'" in r.output
    r = run("--no-import", str(f))
    assert r.exit_code == 0


def test_help_and_validate_do_not_import_torch_or_ray():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from orchestrator.cli import main\n"
        "assert CliRunner().invoke(main, ['--help']).exit_code == 0\n"
        f"r = CliRunner().invoke(main, ['validate', {str(QUICKSTART)!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = [m for m in ('torch', 'ray', 'mlflow', 'optuna', 'sklearn') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
