"""Writes that never leave half a file: write to a temporary file beside the target, then rename."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, IO, Iterator

import torch

from common.errors import UserInputError


def atomic_write(path: Path | str, write: Callable[[IO[bytes]], None]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_torch_save(obj: Any, path: Path | str) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_json(obj: Any, path: Path | str) -> None:
    atomic_write(path, lambda f: f.write((json.dumps(obj, indent=2) + "\n").encode()))


@contextmanager
def atomic_dir(final: Path | str, tmp: Path | str) -> Iterator[Path]:
    """A fresh folder `tmp` (beside `final`) to fill in the block; renamed to `final`, replacing
    what was there, when the block ends, and removed if it raises. A folder is never seen half
    written under its final name."""
    final, tmp = Path(final), Path(tmp)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_out_dir(path: Path | str, flag: str = "--out_dir") -> Path:
    """Fail now, before the computing, when `path` cannot hold outputs; creates nothing, so a run
    that fails later leaves no empty folder behind."""
    path = Path(path)
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        what = f"{flag} is a file, not a folder" if existing == path else f"{existing} is a file, not a folder"
        raise UserInputError(f"{path}: {what}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserInputError(f"{path}: {flag} cannot be written ({existing} is not writable)")
    return path


def check_out_file(path: Path | str, flag: str) -> Path:
    """`check_out_dir` for a file: its folder must be able to hold it and it must not be a folder."""
    path = Path(path)
    if path.is_dir():
        raise UserInputError(f"{path}: {flag} is a folder, not a file")
    check_out_dir(path.parent, f"the folder of {flag}")
    return path


def ensure_out_dir(path: Path | str, flag: str = "--out_dir") -> Path:
    """`check_out_dir`, then create the folder."""
    path = check_out_dir(path, flag)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserInputError(f"{path}: {flag} cannot be created ({err.strerror or err})") from None
    return path
