"""The probes of issue 20 (a hostile but fair new user), kept as tests so they stay fixed.

Each test names the probe it keeps; docs/reliability.md lists them by promise.
"""
import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import demo
from common.checkpoint import make_checkpoint, read_checkpoint
from common.errors import UserInputError, run_cli
from common.io import atomic_torch_save
from common.runtime import pick_device
from conftest import REPO, TINY_UNET, write_fake_root
from Data import build_cache
from Data.check_dataset import check_root
from Data.datasets import LabeledFrames
from Data.reading import DatasetError, SplitReader, read_png
from Unets import train
from Unets.inference import build_parser, run
from Unets.unet_model import UNet


def run_script(*argv: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], cwd=cwd, capture_output=True, text=True, timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, no traceback, and the last stderr line is the project's one-line error."""
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), proc.stderr[-2000:]
    for needle in needles:
        assert needle in last, last
    return last


class _Payload:
    """Pickles as a call to open(marker, 'w'): loading it fully would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def write_malicious_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"kind": "unet", "config": {}, "model": {}, "payload": _Payload(marker)}, path)
    return path


# --- 1. security --------------------------------------------------------------------------------

@pytest.mark.slow
def test_malicious_checkpoint_is_refused_and_its_code_does_not_run(session_root, tmp_path):
    marker = tmp_path / "code_ran"
    evil = write_malicious_checkpoint(tmp_path / "evil.pt", marker)
    proc = run_script("Unets/inference.py", "--split", "val", "--predictor", "frame10_baseline",
                      "--root_dir", str(session_root), "--saved_seg_model_dir", str(evil),
                      "--out_dir", str(tmp_path / "out"))
    assert_one_line_error(proc, str(evil), "refused")
    assert not marker.exists()
    # --init_from, --finetune_recon, --resume and the demo read through the same loader
    for load in (lambda: read_checkpoint(evil),
                 lambda: train.main(["--root_dir", str(session_root), "--init_from", str(evil),
                                     "--out_dir", str(tmp_path / "init"), *TINY_UNET])):
        with pytest.raises(UserInputError, match="refused"):
            load()
    shutil.copyfile(evil, tmp_path / "last.pt")
    with pytest.raises(UserInputError, match="refused"):
        demo.train_if_needed("U-Net", train.main, tmp_path, [], 1)
    assert not marker.exists()


@dataclasses.dataclass
class _Settings:
    crop: tuple
    where: Path


@pytest.mark.slow
def test_checkpoints_hold_only_plain_types(tiny_unet, tmp_path):
    extras = {"data": _Settings((96, 128), tmp_path), "score": np.float32(0.5), "ids": (1, 2)}
    atomic_torch_save(make_checkpoint(UNet(base_width=4, depth=2), None, np.int64(3), np.float64(0.25), **extras),
                      tmp_path / "c.pt")
    ckpt = torch.load(tmp_path / "c.pt", weights_only=True)
    assert ckpt["data"] == {"crop": [96, 128], "where": str(tmp_path)} and ckpt["score"] == 0.5
    assert ckpt["epoch"] == 3 and ckpt["ids"] == [1, 2]
    for name in ("best.pt", "last.pt"):   # what the trainers write loads without trusting the file
        assert torch.load(tiny_unet / name, weights_only=True)["kind"] == "unet"


# --- 2, 3. wrong results that exited 0 ----------------------------------------------------------

@pytest.mark.parametrize("names", [("video_2", "video_02"), ("video_15001", "video_015001")])
def test_duplicate_video_ids_are_refused_naming_both_folders(tmp_path, names):
    root = write_fake_root(tmp_path / "data", {"hidden": 1})
    split = root / "hidden"
    shutil.copytree(split / "video_15000", split / names[0])
    shutil.copytree(split / "video_15000", split / names[1])
    with pytest.raises(UserInputError, match=f"{names[0]} and {names[1]}|{names[1]} and {names[0]}"):
        SplitReader(root, "hidden", use_cache=False)
    problems = check_root(root, ["hidden"], progress=False)
    assert any(names[0] in p and names[1] in p for p in problems)


def test_grayscale_frames_are_refused(fake_root):
    png = fake_root / "train" / "video_0" / "image_3.png"
    Image.open(png).convert("L").save(png)
    with pytest.raises(DatasetError, match="image_3.png: grayscale"):
        read_png(png)
    assert any("image_3.png: grayscale" in p for p in check_root(fake_root, ["train"], progress=False))


def test_build_cache_on_a_missing_root_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_cli(build_cache.main, ["--root_dir", str(tmp_path / "nothing")])
    assert exit_.value.code == 2
    assert "nothing: data root not found" in capsys.readouterr().err


# --- 4. --force leaves no stale rows ------------------------------------------------------------

@pytest.mark.slow
def test_force_removes_predictions_of_an_earlier_run(session_root, tiny_unet, tmp_path):
    argv = ["--split", "val", "--predictor", "frame10_baseline", "--root_dir", str(session_root),
            "--saved_seg_model_dir", str(tiny_unet), "--out_dir", str(tmp_path)]
    torch.save(torch.zeros(3, 160, 240, dtype=torch.uint8), tmp_path / "predictions_reconstructor.pt")
    with pytest.raises(UserInputError, match="predictions_reconstructor.pt: already exists"):
        run(build_parser().parse_args(argv), progress=False)
    run(build_parser().parse_args([*argv, "--force"]), progress=False)
    assert not (tmp_path / "predictions_reconstructor.pt").exists()
    assert sorted(p.name for p in tmp_path.glob("predictions*.pt")) == ["predictions.pt", "predictions_oracle.pt"]


# --- 5. inference.py without --split or --predictor ---------------------------------------------

def test_inference_defaults_apply_without_split_or_predictor():
    args = build_parser().parse_args([])
    assert args.split == "val" and args.predictor == "mask_extrapolation"
    preset = build_parser("hidden", "reconstructor").parse_args([])
    assert preset.split == "hidden" and preset.predictor == "reconstructor"


# --- 7. devices ---------------------------------------------------------------------------------

def test_unknown_or_absent_device_is_one_line():
    with pytest.raises(UserInputError, match="unknown device"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserInputError, match="CUDA is not available"):
            pick_device("cuda")
    assert pick_device("cpu") == torch.device("cpu")


# --- 8. --resume --------------------------------------------------------------------------------

@pytest.mark.slow
def test_resume_rebuilds_the_runs_model_whatever_the_flags(session_root, tmp_path, caplog):
    common = ["--root_dir", str(session_root), "--out_dir", str(tmp_path), "--max_steps_per_epoch", "2", *TINY_UNET]
    train.main([*common, "--epochs", "1"])
    # a run made with another width (e.g. the GPU default 64 resumed on a CPU, where 0 means 16)
    train.main([*common, "--epochs", "2", "--resume", "--base_width", "4", "--bilinear"])
    ckpt = read_checkpoint(tmp_path / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["config"]["base_width"] == 8 and not ckpt["config"]["bilinear"]
    assert "base_width 4 -> 8" in caplog.text


def test_resume_of_a_last_pt_missing_a_key_is_one_line(session_root, tmp_path):
    common = ["--root_dir", str(session_root), "--out_dir", str(tmp_path), "--max_steps_per_epoch", "1", *TINY_UNET]
    train.main([*common, "--epochs", "1"])
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    del ckpt["scheduler"]
    atomic_torch_save(ckpt, tmp_path / "last.pt")
    with pytest.raises(UserInputError, match="last.pt: cannot be resumed, it lacks scheduler"):
        train.main([*common, "--epochs", "2", "--resume"])


# --- 9. a data root where the cache cannot be written --------------------------------------------

def test_unwritable_cache_falls_back_to_pngs(fake_root, caplog):
    # Tests run as root here, so a read-only chmod would not stop a write; a file where the
    # cache folder goes fails the same way (an OSError on creating the cache).
    (fake_root / ".cache").write_text("not a folder")
    frames = LabeledFrames(fake_root, "train", frames=[0], use_cache=True, build_cache=True)
    assert not frames.reader.cached and frames[0][0].shape == (3, 160, 240)
    assert "cannot write the frame cache" in caplog.text


@pytest.mark.slow
def test_unwritable_pseudo_label_folder_is_one_line(fake_root, tiny_unet):
    from SSL_convLSTM_Reconstructor.pseudo_labels import make_pseudo_labels
    (fake_root / "pseudo_labels").write_text("not a folder")
    with pytest.raises(DatasetError, match="cannot write the pseudo-labels here"):
        make_pseudo_labels(fake_root, "val", tiny_unet, progress=False)


# --- 10. worker errors, output folders, the demo's checkpoint reader ------------------------------

@pytest.mark.slow
def test_error_in_a_dataloader_worker_is_one_line(session_root, tmp_path):
    root = shutil.copytree(session_root, tmp_path / "data", ignore=shutil.ignore_patterns(".cache", "pseudo_labels"))
    for png in (root / "train" / "video_0").glob("*.png"):
        png.unlink()
    proc = run_script("Unets/train.py", "--root_dir", str(root), "--out_dir", str(tmp_path / "o"), "--epochs", "1",
                      "--no_cache", *TINY_UNET, "--workers", "1")
    assert_one_line_error(proc, "video_0/image_", "frame missing")
    assert "Original Traceback" not in proc.stderr


@pytest.mark.slow
def test_out_dir_that_is_a_file_fails_before_any_work(session_root, tmp_path):
    a_file = tmp_path / "taken"
    a_file.write_text("")
    # the checkpoint does not exist either: the output folder must be the first thing checked
    proc = run_script("Unets/inference.py", "--root_dir", str(session_root), "--out_dir", str(a_file),
                      "--saved_seg_model_dir", str(tmp_path / "nowhere"))
    assert_one_line_error(proc, "--out_dir is a file")
    with pytest.raises(UserInputError, match="--out_dir is a file"):
        train.main(["--root_dir", str(tmp_path / "no_data"), "--out_dir", str(a_file), *TINY_UNET])
    with pytest.raises(UserInputError, match="--out_dir is a file"):
        demo.run_demo(tmp_path / "no_data", a_file)
    # a trainer whose data is missing leaves no empty --out_dir behind
    with pytest.raises(UserInputError, match="no_data"):
        train.main(["--root_dir", str(tmp_path / "no_data"), "--out_dir", str(tmp_path / "new" / "run"), *TINY_UNET])
    assert not (tmp_path / "new").exists()


@pytest.mark.slow
def test_demo_reports_a_truncated_last_pt_in_one_line(tiny_unet, tmp_path):
    data = (tiny_unet / "last.pt").read_bytes()
    (tmp_path / "last.pt").write_bytes(data[:len(data) // 2])
    with pytest.raises(UserInputError, match="last.pt: not a readable checkpoint"):
        demo.train_if_needed("U-Net", train.main, tmp_path, [], 1)
