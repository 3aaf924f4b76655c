"""Shared fixtures: small data roots written by the tests themselves."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from Data.layout import FRAMES_PER_SPLIT, HEIGHT, ID_RANGES, LABELED_SPLITS, WIDTH, frame_name  # noqa: E402

REAL_SAMPLE = REPO.parent / "shared" / "real_sample"


def write_fake_root(root: Path, counts: dict[str, int], padded: bool = False, seed: int = 0) -> Path:
    """A root in the competition layout with random frames and blocky masks (not realistic)."""
    rng = np.random.default_rng(seed)
    for split, n in counts.items():
        start = ID_RANGES[split][0]
        for k in range(n):
            vid = start + k
            vdir = root / split / (f"video_{vid:05d}" if padded else f"video_{vid}")
            vdir.mkdir(parents=True)
            for t in range(FRAMES_PER_SPLIT[split]):
                img = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
                Image.fromarray(img).save(vdir / frame_name(t), compress_level=1)
            if split in LABELED_SPLITS:
                mask = np.zeros((22, HEIGHT, WIDTH), np.uint8)
                mask[:, 10:30, 20:40] = 1 + k % 48
                np.save(vdir / "mask.npy", mask)
    return root


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    return write_fake_root(tmp_path / "data", {"train": 3, "val": 2, "unlabeled": 2, "hidden": 2})


@pytest.fixture
def real_sample() -> Path:
    if not REAL_SAMPLE.is_dir():
        pytest.skip("../shared/real_sample not present")
    return REAL_SAMPLE
