import json
import shutil
from dataclasses import replace

import pytest
import torch
from PIL import Image

import demo
from common.errors import UserInputError
from common.metrics import jaccard_index
from Data.datasets import EvalVideos
from Data.layout import NUM_CLASSES
from SSL_convLSTM_Reconstructor.pseudo_labels import load_pseudo_labels

pytestmark = pytest.mark.slow     # the whole pipeline, every model trained
# The pytest worker's share of the cores (conftest), not the demo's 2: two workers with two torch
# threads each on two cores run several times slower.
THREADS = torch.get_num_threads()


def test_demo_code_path_on_a_minimal_budget(session_root, tmp_path):
    root = shutil.copytree(session_root, tmp_path / "data")
    out = tmp_path / "demo"
    # The demo's models at their narrowest and smallest batches (later flags win): the code path,
    # not the learning.
    small_simvp = ["--batch_size", "2", "--hid_s", "4", "--hid_t", "8"]
    profile = replace(demo.DEMO, steps={**demo.DEMO.steps, "finetune": 4},
                      unet=[*demo.DEMO.unet, "--base_width", "4", "--batch_size", "2"],
                      mask_simvp=[*demo.DEMO.mask_simvp, *small_simvp], mask_hybrid=[*demo.DEMO.mask_hybrid, *small_simvp, "--train_inputs", "both"],
                      reconstructor=[*demo.DEMO.reconstructor, "--batch_size", "1", "--base_width", "4", "--hidden", "8"],
                      finetune=(*demo.DEMO.finetune, "--batch_size", "2"))
    results = demo.run_demo(root, out, profile, quick=True, threads=THREADS)
    saved = json.loads((out / "results.json").read_text())
    assert saved["jaccard"] == results["jaccard"]
    # the hybrid read the U-Net's masks of the train videos, so the demo labelled them
    assert load_pseudo_labels(root, "train").shape[0] == 4
    assert "--train_inputs both" in (out / "report.md").read_text()
    assert set(saved["jaccard"]) == {"frame10_baseline", "reconstructor", "mask_simvp", "mask_extrapolation",
                                     "mask_hybrid", "oracle"}
    # Every row is the competition metric of the masks saved beside it, against the true frame 21.
    truth = EvalVideos(root).target_masks()
    val = out / "val"
    for name, value in saved["jaccard"].items():
        path = val / ("predictions.pt" if name == demo.DEFAULT_PREDICTOR else f"predictions_{name}.pt")
        assert value == pytest.approx(jaccard_index(torch.load(path), truth, NUM_CLASSES), abs=1e-6), name
    sub = torch.load(out / "submission.pt")
    ids = json.loads((out / "video_ids.json").read_text())
    assert sub.dtype == torch.uint8 and sub.shape == (3, 160, 240) and ids == [15000, 15001, 15002]
    fig = Image.open(out / "figure.png")
    assert fig.width == 11 * 244 and fig.height > 3 * 160
    report = (out / "report.md").read_text()
    assert "| mask_simvp |" in report and "figure.png" in report
    assert f"- data: `{root} (4 train, 3 val, 6 unlabeled, 3 hidden videos)`" in report
    assert "| **mask_hybrid** (submitted) | the U-Net segments frames 0..10" in report

    # a second run reuses every finished model
    stamp = (out / "checkpoints" / "unet" / "last.pt").stat().st_mtime_ns
    demo.run_demo(root, out, profile, quick=True, threads=THREADS)
    assert (out / "checkpoints" / "unet" / "last.pt").stat().st_mtime_ns == stamp
    # the chain's fine-tuned segmenter was trained and named in the report
    assert (out / "checkpoints" / "unet_recon" / "best.pt").exists() and "--finetune_recon" in report

    # the same folder asked for another seed: refused, rather than reporting seed 0's models as seed 1's
    with pytest.raises(UserInputError, match=r"unet/last.pt: was trained with --seed 0 \(asked 1\)"):
        demo.run_demo(root, out, profile, seed=1, quick=True, threads=THREADS)


def test_the_demo_labels_the_train_videos_only_when_the_hybrid_reads_them():
    # the hybrid's object gate learns from the U-Net's masks of the train videos (on by default)
    assert demo.pseudo_label_splits(demo.DEMO) == ("unlabeled", "val", "train")
    for inputs, splits in (("true", ("unlabeled", "val")), ("pseudo", ("unlabeled", "val", "train")),
                           ("both", ("unlabeled", "val", "train"))):
        profile = replace(demo.DEMO, mask_hybrid=[*demo.DEMO.mask_hybrid, "--train_inputs", inputs,
                                                  "--gate_epochs", "0"])
        assert demo.pseudo_label_splits(profile) == splits, inputs


def test_demo_generates_its_preset_with_the_profile_counts(tmp_path, monkeypatch):
    from Data import generate
    calls = []
    monkeypatch.setattr(generate, "main", calls.append)
    demo.ensure_data(tmp_path / "data", "tiny", 3, 2, {"unlabeled": 64})
    assert calls == [["--root_dir", str(tmp_path / "data"), "--preset", "tiny", "--seed", "3", "--workers", "2",
                      "--unlabeled", "64"]]
    # the count overrides reach the generator as its own flags
    args = generate.build_parser().parse_args(calls[0])
    assert args.unlabeled == 64 and args.preset == "tiny"
