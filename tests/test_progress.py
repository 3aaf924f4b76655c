"""Progress in a log: a few readable lines, not hundreds of bar redraws."""
from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from common.progress import LogProgress, tqdm
from conftest import REPO, TINY_UNET


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "progress"]


def test_log_progress_writes_a_line_per_interval_and_one_at_the_end(caplog):
    caplog.set_level(logging.INFO)
    assert list(LogProgress(range(5), desc="videos", unit="video", interval=0.0)) == list(range(5))
    lines = _lines(caplog)
    assert len(lines) == 6 and lines[0].startswith("videos: 1/5, ") and lines[-1].startswith("videos: 5/5, ")
    caplog.clear()
    with LogProgress(total=100, desc="steps", interval=3600.0) as bar:     # a long interval: the last line only
        for _ in range(100):
            bar.update(1)
        bar.set_postfix(loss="0.5000")
    assert _lines(caplog) == [_lines(caplog)[0]] and _lines(caplog)[0].startswith("steps: 100/100, ")
    assert _lines(caplog)[0].endswith("loss=0.5000")
    caplog.clear()
    for _ in LogProgress(range(3), desc="epoch 1/3", leave=False, interval=3600.0):
        pass
    assert _lines(caplog) == []                     # an epoch's bar is not left: its epoch line follows


def test_progress_off_a_terminal_is_log_lines():
    # pytest captures stderr, so it is no terminal here
    assert not sys.stderr.isatty()
    assert isinstance(tqdm(range(3), desc="x"), LogProgress)
    assert not isinstance(tqdm(range(3), desc="x", disable=True), LogProgress)


@pytest.mark.slow
def test_training_log_through_a_pipe_has_no_bar_redraws(session_root, tmp_path):
    """A tiny U-Net training with stderr to a pipe: one line per epoch and the setup lines, no
    carriage returns (the bars used to redraw ~10 times a second into the log)."""
    args = [a for a in TINY_UNET if a != "--no_progress"]
    run = subprocess.run([sys.executable, str(REPO / "Unets" / "train.py"), "--root_dir", str(session_root),
                          "--out_dir", str(tmp_path / "unet"), "--epochs", "2", "--max_steps_per_epoch", "3",
                          *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    log = run.stderr
    assert "\r" not in log
    epoch_lines = [line for line in log.splitlines() if " epoch " in line and "train_loss=" in line]
    assert len(epoch_lines) == 2
    assert len(log.splitlines()) < 30 and len(log) < 6000, log
