"""benchmarks/plot_training.py: bad arguments are one-line usage errors; good ones draw a PNG."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "plot_training.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120
    )


def write_run(directory: Path) -> Path:
    directory.mkdir()
    records = [
        {"epoch": epoch, "train_loss": 2.0 / epoch, "test_top1": 50.0 + 10 * epoch}
        for epoch in (1, 2, 3)
    ]
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return directory


def test_reference_that_is_not_a_number_is_a_usage_error(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "a")
    result = run(f"a={run_dir}", "--reference", "ensemble=high", "--out", str(tmp_path / "x.png"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "expected LABEL=TOP1 (a number), got 'ensemble=high'" in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_run_without_metrics_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run(f"a={tmp_path / 'empty'}", "--out", str(tmp_path / "x.png"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{tmp_path / 'empty' / 'metrics.jsonl'}: no such file" in result.stderr


def test_good_arguments_draw_a_png(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "a")
    out = tmp_path / "curves.png"
    result = run(f"a={run_dir}", "--target", "89.5", "--reference", "e=89.86", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
