import json
import math
import subprocess
import sys

import pytest
import torch

from common.checkpoint import read_checkpoint
from common.metrics import jaccard_index
from conftest import REPO
from SSL_convLSTM_Reconstructor import train_reconstructor
from SSL_convLSTM_Reconstructor.reconstructor_model import Reconstructor
from Data.datasets import EvalVideos
from Data.layout import NUM_CLASSES
from models import load_model

pytestmark = pytest.mark.slow     # every test trains a reconstructor or a U-Net

TINY_RECON = ["--base_width", "4", "--hidden", "8", "--batch_size", "2", "--workers", "0", "--no_progress",
              "--holdout", "0.34", "--lr", "0.01", "--samples", "2"]


@pytest.fixture(scope="module")
def recon(session_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("recon")
    train_reconstructor.main(["--root_dir", str(session_root), "--out_dir", str(out), "--epochs", "3",
                              "--max_steps_per_epoch", "4", *TINY_RECON])
    return out


def test_training_writes_history_samples_and_checkpoints(recon):
    history = json.loads((recon / "history.json").read_text())
    assert len(history) == 3
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert {"val_psnr", "val_ssim", "copy10_psnr", "copy10_ssim"} <= history[0].keys()
    assert sorted(p.name for p in (recon / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png", "epoch_003.png"]
    model, ckpt = load_model(recon / "best.pt"), read_checkpoint(recon / "best.pt")
    assert isinstance(model, Reconstructor)
    assert ckpt["config"]["hidden_channels"] == [8] and ckpt["data"]["splits"] == ["unlabeled"]
    x = torch.rand(1, 11, 3, 160, 240)
    again = load_model(recon / "best.pt", "reconstructor")
    with torch.no_grad():
        assert torch.equal(model.predict_last_frame(x), again.predict_last_frame(x))


def test_rollout_mode_trains(session_root, tmp_path):
    """A rollout run trains on its 11 fed-back predictions: it logs finite losses and held-out
    scores, and the saved model predicts frames 11..21, no longer a copy of frame 10 (what the
    untrained model outputs)."""
    train_reconstructor.main(["--root_dir", str(session_root), "--out_dir", str(tmp_path), "--epochs", "2",
                              "--max_steps_per_epoch", "1", "--mode", "rollout", *TINY_RECON])
    history = json.loads((tmp_path / "history.json").read_text())
    assert [row["steps"] for row in history] == [1, 1]
    assert all(math.isfinite(row["train_loss"]) and math.isfinite(row["val_psnr"]) for row in history)
    model = load_model(tmp_path / "last.pt", "reconstructor")
    ckpt = read_checkpoint(tmp_path / "last.pt")
    assert ckpt["config"]["mode"] == "rollout" and model.target_frames == list(range(11, 22))
    untrained = Reconstructor.from_config(ckpt["config"]).eval()
    frames = torch.rand(1, 11, 3, 160, 240)
    with torch.no_grad():
        assert torch.equal(untrained.predict_last_frame(frames), frames[:, -1])
        out = model(frames)
        assert out.shape == (1, 11, 3, 160, 240)
        assert (out[:, -1] - frames[:, -1]).abs().max() > 1e-3
        assert torch.equal(model.predict_last_frame(frames), out[:, -1])


def test_chained_val_inference_reproducible_and_recomputable(session_root, tiny_unet, recon, tmp_path):
    def run(out):
        res = subprocess.run([sys.executable, "Unets/inference_val_with_reconstructor.py", "--root_dir",
                              str(session_root), "--saved_seg_model_dir", str(tiny_unet),
                              "--saved_recon_model_dir", str(recon), "--out_dir", str(out)],
                             cwd=REPO, capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        return json.loads((out / "results.json").read_text()), torch.load(out / "predictions.pt")

    (r1, p1), (r2, p2) = run(tmp_path / "a"), run(tmp_path / "b")
    assert set(r1["jaccard"]) == {"reconstructor", "frame10_baseline", "oracle"}
    assert r1["jaccard"] == r2["jaccard"] and torch.equal(p1, p2)
    truth = EvalVideos(session_root).target_masks()
    assert r1["jaccard"]["reconstructor"] == pytest.approx(jaccard_index(p1, truth, NUM_CLASSES), abs=1e-6)


def test_missing_reconstructor_names_training_command(session_root, tiny_unet, tmp_path):
    res = subprocess.run([sys.executable, "inference_hidden_with_reconstructor.py", "--root_dir", str(session_root),
                          "--saved_seg_model_dir", str(tiny_unet), "--saved_recon_model_dir", str(tmp_path / "none"),
                          "--out_dir", str(tmp_path / "o")], cwd=REPO / "Unets", capture_output=True, text=True)
    assert res.returncode == 2
    assert "checkpoint not found (train one with: python SSL_convLSTM_Reconstructor/train_reconstructor.py)" in res.stderr
    assert not (tmp_path / "o").exists()


def test_wrong_model_kind_for_reconstructor(session_root, tiny_unet, tmp_path):
    res = subprocess.run([sys.executable, "Unets/inference_val_with_reconstructor.py", "--root_dir", str(session_root),
                          "--saved_seg_model_dir", str(tiny_unet), "--saved_recon_model_dir", str(tiny_unet),
                          "--out_dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 2 and "holds a 'unet' model, expected 'reconstructor'" in res.stderr


def test_finetune_on_reconstructed_frames_reads_the_chain(session_root, tiny_unet, recon, tmp_path):
    from Unets import train
    from Unets.inference import build_parser, run
    from conftest import TINY_UNET
    out = tmp_path / "ft"
    train.main(["--root_dir", str(session_root), "--out_dir", str(out), "--epochs", "2", "--max_steps_per_epoch",
                "3", "--init_from", str(tiny_unet), "--finetune_recon", str(recon), *TINY_UNET])
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 2 and "val_jaccard" in history[0]
    tuned, base = load_model(out, "unet"), load_model(tiny_unet, "unet")
    assert tuned.config == base.config
    assert any(not torch.equal(a, b) for a, b in zip(tuned.state_dict().values(), base.state_dict().values()))

    argv = ["--root_dir", str(session_root), "--saved_seg_model_dir", str(tiny_unet), "--saved_recon_model_dir",
            str(recon), "--saved_chain_seg_model_dir", str(out), "--out_dir", str(tmp_path / "val")]
    results = run(build_parser("val", "reconstructor").parse_args(argv), progress=False)
    preds = torch.load(tmp_path / "val" / "predictions.pt")
    truth = EvalVideos(session_root).target_masks()
    assert results["jaccard"]["reconstructor"] == pytest.approx(jaccard_index(preds, truth, NUM_CLASSES), abs=1e-6)
    # the chain's segmenter changes the chain's row only
    plain = run(build_parser("val", "reconstructor").parse_args([*argv[:-4], "--out_dir", str(tmp_path / "p")]),
                progress=False)
    assert plain["jaccard"]["oracle"] == results["jaccard"]["oracle"]
    assert plain["jaccard"]["frame10_baseline"] == results["jaccard"]["frame10_baseline"]


def test_finetune_recon_rejects_a_checkpoint_of_another_model(session_root, tiny_unet, tmp_path):
    out = tmp_path / "ft"
    res = subprocess.run([sys.executable, "Unets/train.py", "--root_dir", str(session_root), "--out_dir", str(out),
                          "--init_from", str(tiny_unet), "--finetune_recon", str(tiny_unet), "--epochs", "1"],
                         cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 2 and "holds a 'unet' model, expected 'reconstructor'" in res.stderr
    assert not out.exists() or not any(out.iterdir())
