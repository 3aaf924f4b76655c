"""Adding a predictor is one class and one registration; inference, its flags and the demo's rows follow."""
import json

import pytest
import torch

from common.checkpoint import make_checkpoint
from common.errors import UserInputError
from common.io import atomic_torch_save
from common.metrics import jaccard_index
from Data.datasets import ForecastVideos
from Data.layout import NUM_CLASSES
from models import load_model
from predictors import REGISTRY, FileFlag, Predictor, register, row_order
from Unets.inference import build_parser, run
from Unets.unet_model import UNet


@pytest.fixture
def registry():
    before = dict(REGISTRY)
    yield REGISTRY
    REGISTRY.clear()
    REGISTRY.update(before)


def register_toy():
    """The toy of docs/architecture.md: the mask of frame 10 moved right by a fitted shift."""
    @register
    class ShiftedFrame10(Predictor):
        name = "shifted_frame10"
        help = "the mask of frame 10 moved right by the shift of --toy_fit"
        reads = "masks"
        files = (FileFlag("--toy_fit", None, "a JSON file {\"shift\": pixels}"),)

        def load(self, args, device):
            self.shift = json.loads(self.files[0].value(args).read_text())["shift"]

        def predict(self, batch):
            return torch.roll(batch.masks_in[:, -1], self.shift, dims=-1)
    return ShiftedFrame10


def test_a_registered_toy_predictor_is_scored_by_inference(registry, session_root, tiny_unet, tmp_path):
    register_toy()
    fit = tmp_path / "toy.json"
    fit.write_text(json.dumps({"shift": 44}))   # the fake videos' squares move 4 px per frame: 11 frames on
    assert "shifted_frame10" in row_order() and "--toy_fit" in build_parser().format_help()
    truth = ForecastVideos(session_root, "val").target_masks()

    # From the true masks the toy is exact, where copying frame 10 is not.
    out = tmp_path / "true"
    results = run(build_parser().parse_args(["--root_dir", str(session_root), "--predictor", "shifted_frame10",
                                             "--input_masks", "true", "--toy_fit", str(fit), "--out_dir", str(out)]),
                  progress=False)
    saved = json.loads((out / "results.json").read_text())
    assert list(saved["jaccard"]) == ["shifted_frame10", "copy_last"]
    assert torch.equal(torch.load(out / "predictions.pt"), truth)
    assert saved["jaccard"]["shifted_frame10"] == pytest.approx(jaccard_index(truth, truth, NUM_CLASSES))
    assert saved["jaccard"]["copy_last"] < saved["jaccard"]["shifted_frame10"]

    # From the U-Net's masks it reads the same segmentation as the frame-10 baseline, shifted.
    out = tmp_path / "unet"
    results = run(build_parser().parse_args(["--root_dir", str(session_root), "--predictor", "shifted_frame10",
                                             "--saved_seg_model_dir", str(tiny_unet), "--toy_fit", str(fit),
                                             "--out_dir", str(out)]), progress=False)
    assert list(results["jaccard"]) == ["shifted_frame10", "frame10_baseline", "oracle"]
    mine = torch.load(out / "predictions.pt")
    assert torch.equal(mine, torch.roll(torch.load(out / "predictions_frame10_baseline.pt"), 44, dims=-1))
    assert results["jaccard"]["shifted_frame10"] == pytest.approx(jaccard_index(mine, truth, NUM_CLASSES), abs=1e-6)


def test_a_predictor_is_registered_once_and_reads_what_it_declares(registry):
    toy = register_toy()
    assert register(toy) is toy                          # the same class again: a no-op
    with pytest.raises(ValueError, match="registered twice"):
        register(type("Other", (toy,), {}))
    with pytest.raises(ValueError, match="reads must be one of"):
        register(type("Odd", (Predictor,), {"name": "odd", "reads": "sounds"}))


def test_load_model_needs_no_class_and_names_an_unknown_kind(tmp_path):
    torch.manual_seed(0)
    unet = UNet(base_width=4, depth=2).eval()
    atomic_torch_save(make_checkpoint(unet, None, 1, 0.5), tmp_path / "best.pt")
    loaded = load_model(tmp_path)
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        assert isinstance(loaded, UNet) and torch.equal(loaded(x), unet(x))
    ckpt = torch.load(tmp_path / "best.pt", weights_only=True)
    atomic_torch_save({**ckpt, "kind": "transformer"}, tmp_path / "other.pt")
    with pytest.raises(UserInputError, match=r"other.pt: holds a 'transformer' model; this code builds \["):
        load_model(tmp_path / "other.pt")
    with pytest.raises(UserInputError, match="holds a 'unet' model, expected 'mask_simvp'"):
        load_model(tmp_path, "mask_simvp")
