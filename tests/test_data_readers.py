import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO, write_fake_root
from Data.datasets import Clips, EvalVideos, HiddenVideos, LabeledFrames
from Data.layout import class_attributes, class_id, list_videos
from Data.reading import DatasetError, SplitReader, build_split_cache, cache_is_fresh, preprocess_frames


def test_class_ids_match_real_sample_facts():
    # As in the real sample's masks: gray rubber sphere 25, cyan metal sphere 22, green rubber cube 12
    assert class_id(1, 1, 0) == 25 and class_id(1, 0, 5) == 22 and class_id(0, 1, 3) == 12
    assert all(class_id(*class_attributes(c)) == c for c in range(1, 49))


def test_padded_and_unpadded_ids_are_ordered_by_integer(tmp_path):
    for name in ["video_10", "video_9", "video_00002", "video_100", "notes", "video_x"]:
        (tmp_path / name).mkdir()
    assert [vid for vid, _ in list_videos(tmp_path)] == [2, 9, 10, 100]


@pytest.mark.parametrize("padded", [False, True])
def test_datasets_shapes_and_dtypes(tmp_path, padded):
    root = write_fake_root(tmp_path, {"train": 2, "val": 2, "unlabeled": 1, "hidden": 2}, padded=padded)
    frames = LabeledFrames(root, "train", use_cache=False)
    assert len(frames) == 44
    image, mask = frames[23]
    assert image.shape == (3, 160, 240) and image.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1
    assert mask.shape == (160, 240) and mask.dtype == torch.int64 and mask.max() == 1 + 5 % 48

    clips = Clips(root, ["unlabeled", "train"], use_cache=False)
    x, y = clips[0]
    assert len(clips) == 3 and x.shape == (11, 3, 160, 240) and y.shape == (1, 3, 160, 240)
    x, y = Clips(root, target_frames=range(11, 22), use_cache=False)[0]
    assert y.shape == (11, 3, 160, 240)

    val = EvalVideos(root, use_cache=False)
    item = val[1]
    assert val.video_ids == [1000, 1001] and item["video_id"] == 1001
    assert item["inputs"].shape == (11, 3, 160, 240) and item["frame21"].shape == (3, 160, 240)
    assert item["mask21"].shape == (160, 240) and item["masks_in"].shape == (11, 160, 240)

    hidden = HiddenVideos(root, use_cache=False)
    assert hidden.video_ids == [15000, 15001] and set(hidden[0]) == {"video_id", "inputs"}


def test_preprocess_converts_and_checks():
    x = preprocess_frames(np.full((2, 4, 5, 3), 255, np.uint8))
    assert x.shape == (2, 3, 4, 5) and torch.all(x == 1.0)
    with pytest.raises(ValueError):
        preprocess_frames(np.zeros((4, 5, 3), np.float32))


def test_real_sample_reads(real_sample):
    frames = LabeledFrames(real_sample, "train", use_cache=False)
    assert len(frames) == 66
    image, mask = frames[21]
    assert image.shape == (3, 160, 240) and 0 < mask.max() <= 48
    clips = Clips(real_sample, ["unlabeled"], use_cache=False)
    ids = [vid for vid, _ in clips.readers[0].videos]
    assert {2000, 2002, 2005} <= set(ids) and ids == sorted(ids)      # ordered by integer id
    assert clips[0][0].shape == (11, 3, 160, 240)


def _break(root: Path, how: str) -> tuple[Path, str]:
    vdir = root / "train" / "video_1"
    if how == "missing_frame":
        (vdir / "image_7.png").unlink()
        return vdir / "image_7.png", "frame missing"
    if how == "corrupt_png":
        (vdir / "image_7.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
        return vdir / "image_7.png", "corrupt PNG"
    if how == "wrong_size":
        Image.new("RGB", (320, 240)).save(vdir / "image_7.png")
        return vdir / "image_7.png", "320x240, expected 240x160"
    if how == "missing_mask":
        (vdir / "mask.npy").unlink()
        return vdir / "mask.npy", "mask.npy missing"
    if how == "mask_shape":
        np.save(vdir / "mask.npy", np.zeros((21, 160, 240), np.uint8))
        return vdir / "mask.npy", "shape (21, 160, 240)"
    if how == "mask_ids":
        m = np.zeros((22, 160, 240), np.uint8)
        m[3, 5, 5] = 49
        np.save(vdir / "mask.npy", m)
        return vdir / "mask.npy", "ids in 0..49"
    raise AssertionError(how)


BAD = ["missing_frame", "corrupt_png", "wrong_size", "missing_mask", "mask_shape", "mask_ids"]


@pytest.mark.parametrize("how", BAD)
def test_bad_video_gets_message_naming_file(fake_root, how):
    path, problem = _break(fake_root, how)
    frames = LabeledFrames(fake_root, "train", use_cache=False)
    frames[0]  # other videos stay readable: the check is per video, lazily
    with pytest.raises(DatasetError) as err:
        frames[22 + 7]
    assert str(path) in str(err.value) and problem in str(err.value)


@pytest.mark.parametrize("how", BAD)
def test_check_dataset_reports_each_problem(fake_root, how):
    path, problem = _break(fake_root, how)
    out = subprocess.run([sys.executable, "Data/check_dataset.py", "--root_dir", str(fake_root)],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 1
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and problem in lines[0]


def test_check_dataset_valid_and_from_own_folder(fake_root):
    out = subprocess.run([sys.executable, "check_dataset.py", "--root_dir", str(fake_root), "--workers", "2"],
                         cwd=REPO / "Data", capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "valid" in out.stdout


@pytest.mark.slow
def test_missing_split_and_empty_root(tmp_path, fake_root):
    import shutil
    shutil.rmtree(fake_root / "hidden")
    out = subprocess.run([sys.executable, "Data/check_dataset.py", "--root_dir", str(fake_root)],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 1 and "hidden: split folder missing" in out.stdout
    with pytest.raises(DatasetError, match="split folder missing"):
        SplitReader(fake_root, "hidden")
    empty = tmp_path / "empty"
    empty.mkdir()
    out = subprocess.run([sys.executable, "Data/check_dataset.py", "--root_dir", str(empty)],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 1 and "Data/generate.py" in out.stdout


def test_cache_identical_and_rebuilt_on_change(fake_root):
    plain = LabeledFrames(fake_root, "train", use_cache=False)
    cached = LabeledFrames(fake_root, "train", build_cache=True)
    assert cached.reader.cached and cache_is_fresh(fake_root, "train")
    for i in (0, 21, 40, 65):
        assert torch.equal(plain[i][0], cached[i][0]) and torch.equal(plain[i][1], cached[i][1])
    hidden = HiddenVideos(fake_root, build_cache=True)
    assert torch.equal(hidden[1]["inputs"], HiddenVideos(fake_root, use_cache=False)[1]["inputs"])

    # change a source frame: the cache goes stale, readers fall back to PNGs, then rebuild
    path = fake_root / "train" / "video_1" / "image_3.png"
    Image.fromarray(np.zeros((160, 240, 3), np.uint8)).save(path)
    os.utime(path, ns=(time.time_ns() + 10**9,) * 2)
    assert not cache_is_fresh(fake_root, "train")
    stale = LabeledFrames(fake_root, "train")
    assert not stale.reader.cached and stale[25][0].sum() == 0
    rebuilt = LabeledFrames(fake_root, "train", build_cache=True)
    assert rebuilt.reader.cached and rebuilt[25][0].sum() == 0 and rebuilt[24][0].sum() > 0


def test_cache_goes_stale_when_a_video_is_added(fake_root):
    build_split_cache(fake_root, "val", progress=False)
    assert cache_is_fresh(fake_root, "val")
    write_fake_root(fake_root / "extra", {"val": 3})
    (fake_root / "extra" / "val" / "video_1002").rename(fake_root / "val" / "video_1002")
    assert not cache_is_fresh(fake_root, "val")
    assert len(EvalVideos(fake_root)) == 3


def test_dataloader_workers_read_cache(fake_root):
    ds = LabeledFrames(fake_root, "train", build_cache=True)
    items = [ds[i] for i in range(len(ds))]
    # With the PNGs and masks gone, only the cache can give the workers the same frames.
    for f in [*(fake_root / "train").glob("video_*/image_*.png"), *(fake_root / "train").glob("video_*/mask.npy")]:
        f.unlink()
    loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2)
    batches = list(loader)
    assert torch.equal(torch.cat([x for x, _ in batches]), torch.stack([x for x, _ in items]))
    assert torch.equal(torch.cat([m for _, m in batches]), torch.stack([m for _, m in items]))
