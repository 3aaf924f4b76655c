"""Shared fixtures: small data roots written by the tests themselves."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

from common.paths import REAL_SAMPLE
from Data.layout import FRAMES_PER_SPLIT, HEIGHT, ID_RANGES, LABELED_SPLITS, WIDTH, frame_name


def pytest_configure(config) -> None:
    # `pytest -m "not slow"`: the quick loop while editing; `make test` runs everything.
    config.addinivalue_line("markers", "slow: trains models or runs a whole pipeline (seconds to minutes)")
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        # `make test` runs one pytest worker per core: each worker, and every script it starts,
        # gets its share of the cores, or the workers' torch threads fight over them.
        import torch
        threads = max(1, (os.cpu_count() or 1) // int(workers))
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """A test that sets torch's thread count (a trainer's --threads does) leaves it as it was."""
    import torch
    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def fake_video(k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """22 noisy gray frames with one coloured square sliding right, and its masks.

    Not realistic, but learnable: the square's colour tells its class, its motion is constant.
    """
    cid = 1 + (5 * k) % 48
    colour = np.array([(cid * 37) % 256, (cid * 91) % 256, (cid * 151) % 256], np.uint8)
    frames = rng.integers(100, 140, (22, HEIGHT, WIDTH, 3), dtype=np.uint8)
    masks = np.zeros((22, HEIGHT, WIDTH), np.uint8)
    y0, x0 = 20 + (k * 23) % 100, 10 + (k * 17) % 60
    for t in range(22):
        x = x0 + 4 * t
        frames[t, y0:y0 + 24, x:x + 24] = colour
        masks[t, y0:y0 + 24, x:x + 24] = cid
    return frames, masks


def write_fake_root(root: Path, counts: dict[str, int], padded: bool = False, seed: int = 0) -> Path:
    """A root in the competition layout made of `fake_video`s."""
    rng = np.random.default_rng(seed)
    for split, n in counts.items():
        start = ID_RANGES[split][0]
        for k in range(n):
            vid = start + k
            vdir = root / split / (f"video_{vid:05d}" if padded else f"video_{vid}")
            vdir.mkdir(parents=True)
            frames, masks = fake_video(vid, rng)
            for t in range(FRAMES_PER_SPLIT[split]):
                Image.fromarray(frames[t]).save(vdir / frame_name(t), compress_level=1)
            if split in LABELED_SPLITS:
                np.save(vdir / "mask.npy", masks)
    return root


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    return write_fake_root(tmp_path / "data", {"train": 3, "val": 2, "unlabeled": 2, "hidden": 2})


@pytest.fixture
def real_sample() -> Path:
    if not REAL_SAMPLE.is_dir():
        pytest.skip("../shared/real_sample not present")
    return REAL_SAMPLE


TINY_UNET = ["--base_width", "8", "--lr", "0.01", "--depth", "3", "--batch_size", "4", "--crop", "64x96",
             "--workers", "0", "--val_frames", "0,21", "--no_progress"]


@pytest.fixture(scope="session")
def session_root(tmp_path_factory) -> Path:
    """One small fake root shared by the pipeline tests (read-only for them)."""
    return write_fake_root(tmp_path_factory.mktemp("data"), {"train": 4, "val": 3, "unlabeled": 6, "hidden": 3})


@pytest.fixture(scope="session")
def tiny_unet(session_root, tmp_path_factory) -> Path:
    """A U-Net trained for a few seconds on `session_root`: a folder with best.pt and last.pt."""
    from Unets import train
    out = tmp_path_factory.mktemp("unet")
    # The plain head: after 75 steps it labels several classes, which the tests that compare masks
    # need; the factorized head (the default) still says one class there (its tests: test_unet_model).
    train.main(["--root_dir", str(session_root), "--out_dir", str(out), "--epochs", "3",
                "--max_steps_per_epoch", "25", "--head", "plain", *TINY_UNET])
    return out
