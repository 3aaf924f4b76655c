import json
import os
import shutil
import time

import numpy as np
import pytest
import torch

from common.metrics import jaccard_index
from Data.layout import NUM_CLASSES
from common.errors import UserInputError
from conftest import write_fake_root
from Data.reading import DatasetError
from SSL_convLSTM_Reconstructor import fit_extrapolation, train_mask_predictor
from SSL_convLSTM_Reconstructor.mask_simvp import MaskSimVP
from SSL_convLSTM_Reconstructor.pseudo_labels import (MODEL_FRAMES, MaskSequences, load_pseudo_labels,
                                                       make_pseudo_labels)
from Unets.inference import build_parser, run
from Unets.segmentation import segment
from Data.datasets import EvalVideos, ForecastVideos
from models import load_model, load_segmenter


@pytest.fixture(scope="module")
def root(session_root, tmp_path_factory):
    # a private copy: these tests write pseudo-labels into the root
    return shutil.copytree(session_root, tmp_path_factory.mktemp("mask") / "data")


@pytest.fixture(scope="module")
def labelled(root, tiny_unet):
    for split in ("unlabeled", "val"):
        make_pseudo_labels(root, split, tiny_unet, MODEL_FRAMES, progress=False)
    return root


@pytest.mark.slow
def test_pseudo_labels_equal_the_unets_masks(labelled, tiny_unet):
    masks = load_pseudo_labels(labelled, "val")
    model = load_segmenter(tiny_unet, torch.device("cpu"))
    item = ForecastVideos(labelled, "val")[1]
    expected = segment(model, item["inputs"]).numpy()
    assert masks.dtype == np.uint8 and masks.shape == (3, 22, 160, 240)
    assert np.array_equal(masks[1, :11], expected)
    with pytest.raises(DatasetError, match="unfinished"):
        load_pseudo_labels(labelled, "val", frames=[15])


@pytest.mark.slow
def test_pseudo_labels_resume_and_invalidation(labelled, tiny_unet, tmp_path):
    out = labelled / "pseudo_labels" / "unlabeled"
    stamp = (out / "masks.npy").stat().st_mtime_ns
    make_pseudo_labels(labelled, "unlabeled", tiny_unet, MODEL_FRAMES, progress=False)
    assert (out / "masks.npy").stat().st_mtime_ns == stamp  # fresh: nothing redone

    # an interrupted run: one video not done -> only it is filled in, the result is the same
    full = np.array(load_pseudo_labels(labelled, "unlabeled"))
    done = np.load(out / "done.npy")
    done[2] = False
    np.save(out / "done.npy", done)
    arr = np.load(out / "masks.npy", mmap_mode="r+")
    arr[2] = 0
    arr.flush()
    del arr
    with pytest.raises(DatasetError, match="unfinished"):
        load_pseudo_labels(labelled, "unlabeled")
    make_pseudo_labels(labelled, "unlabeled", tiny_unet, MODEL_FRAMES, progress=False)
    assert np.array_equal(load_pseudo_labels(labelled, "unlabeled"), full)

    # another U-Net checkpoint: rebuilt
    other = tmp_path / "other.pt"
    ckpt = torch.load(tiny_unet / "best.pt", weights_only=False)
    ckpt["model"] = {k: (v + 0.01 if v.is_floating_point() else v) for k, v in ckpt["model"].items()}
    torch.save(ckpt, other)
    make_pseudo_labels(labelled, "unlabeled", other, MODEL_FRAMES, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["unet_sha1"] != json.loads((labelled / "pseudo_labels" / "val" / "manifest.json").read_text())["unet_sha1"]
    make_pseudo_labels(labelled, "unlabeled", tiny_unet, MODEL_FRAMES, progress=False)
    assert np.array_equal(load_pseudo_labels(labelled, "unlabeled"), full)


@pytest.mark.slow
def test_pseudo_labels_rebuilt_when_a_video_changes(tiny_unet, tmp_path):
    root = write_fake_root(tmp_path, {"unlabeled": 2})
    make_pseudo_labels(root, "unlabeled", tiny_unet, MODEL_FRAMES, progress=False)
    png = root / "unlabeled" / "video_2001" / "image_3.png"
    os.utime(png, ns=(time.time_ns() + 10**9,) * 2)
    stamp = (root / "pseudo_labels" / "unlabeled" / "manifest.json").stat().st_mtime_ns
    make_pseudo_labels(root, "unlabeled", tiny_unet, MODEL_FRAMES, progress=False)
    assert (root / "pseudo_labels" / "unlabeled" / "manifest.json").stat().st_mtime_ns != stamp


def test_missing_pseudo_labels_say_how_to_make_them(tmp_path):
    root = write_fake_root(tmp_path, {"val": 1})
    with pytest.raises(DatasetError, match="pseudo_labels.py"):
        MaskSequences(root, "val", "pseudo", "true")


@pytest.mark.slow
def test_mask_predictor_trains_and_every_predictor_is_scored(labelled, tiny_unet, tmp_path):
    out = tmp_path / "simvp"
    train_mask_predictor.main(["--root_dir", str(labelled), "--out_dir", str(out), "--epochs", "3",
                               "--max_steps_per_epoch", "8", "--batch_size", "2", "--hid_s", "8", "--hid_t", "16",
                               "--n_t", "1", "--embed_dim", "4", "--lr", "0.01", "--workers", "0", "--no_progress"])
    history = json.loads((out / "history.json").read_text())
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert {"val_jaccard", "copy10_jaccard"} <= history[0].keys()
    model = load_model(out)
    assert isinstance(model, MaskSimVP)
    assert model.config["hid_s"] == 8

    fit_extrapolation.main(["--root_dir", str(labelled), "--out_dir", str(tmp_path / "fit"), "--workers", "1"])
    argv = ["--root_dir", str(labelled), "--split", "val", "--predictor", "mask_simvp", "--compare",
            "mask_extrapolation", "--saved_seg_model_dir", str(tiny_unet), "--saved_mask_model_dir", str(out),
            "--saved_extrapolation_dir", str(tmp_path / "fit"), "--out_dir", str(tmp_path / "val")]
    results = run(build_parser().parse_args(argv), progress=False)
    assert set(results["jaccard"]) == {"mask_simvp", "mask_extrapolation", "frame10_baseline", "oracle"}
    truth = EvalVideos(labelled).target_masks()
    extrapolated = torch.load(tmp_path / "val" / "predictions_mask_extrapolation.pt")
    assert results["jaccard"]["mask_extrapolation"] == pytest.approx(jaccard_index(extrapolated, truth, NUM_CLASSES), abs=1e-6)
    # The squares move 44 px between frames 10 and 21, farther than their 24 px side: copying
    # frame 10's mask misses them, forecasting their motion (or segmenting frame 21) does not.
    jac = results["jaccard"]
    assert jac["mask_extrapolation"] > jac["frame10_baseline"] and jac["oracle"] > jac["frame10_baseline"], jac
    assert set(results["per_class_iou"]) == set(results["jaccard"])
    saved = json.loads((tmp_path / "val" / "results.json").read_text())
    assert saved["jaccard"] == results["jaccard"]
    assert torch.load(tmp_path / "val" / "predictions_mask_extrapolation.pt").shape == (3, 160, 240)

    with pytest.raises(UserInputError, match="holds a 'unet' model, expected 'mask_simvp'"):
        run(build_parser().parse_args([*argv[:-2], "--out_dir", str(tmp_path / "x"), "--saved_mask_model_dir",
                                       str(tiny_unet)]), progress=False)


@pytest.mark.slow
def test_extrapolation_fits_on_pseudo_labels(root, tiny_unet, tmp_path, capsys):
    argv = ["--root_dir", str(root), "--split", "unlabeled", "--labels", "pseudo", "--workers", "1"]
    with pytest.raises(SystemExit) as err:                  # only frames 0..10 and 21 are labelled yet
        fit_extrapolation.run_cli(fit_extrapolation.main, [*argv, "--out_dir", str(tmp_path / "early")])
    assert err.value.code == 2 and "pseudo_labels.py" in capsys.readouterr().err
    make_pseudo_labels(root, "unlabeled", tiny_unet, range(22), progress=False)
    record = fit_extrapolation.main([*argv, "--out_dir", str(tmp_path / "fit")])
    assert record["fit"]["data"]["labels"] == "pseudo" and record["fit"]["data"]["split"] == "unlabeled"
    assert record["fit"]["data"]["videos"] == 6 and record["params"]["drag"]
