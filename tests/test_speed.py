"""The fast paths give the same bytes as the plain ones: segment's batch and threads, worker
processes for forecasting and pseudo-labels, the reading thread; and the benchmark's projection."""
import json
import threading

import numpy as np
import pytest
import torch
from torch import nn

from benchmarks.bench_pipeline import FULL, Table, Usage, sample_root
from common.prefetch import prefetch
from conftest import write_fake_root
from Data.datasets import ForecastVideos
from Data.reading import SplitReader, preprocess_frames
from SSL_convLSTM_Reconstructor.pseudo_labels import MODEL_FRAMES, load_pseudo_labels, make_pseudo_labels
from Unets.inference import build_parser, load_segmenter, run
from Unets.segmentation import SEGMENT_BATCH, for_inference, segment, segment_batch
from Unets.unet_model import UNet


def old_segment(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """segment before issue 21: chunks of 32 frames, argmax."""
    with torch.inference_mode():
        return torch.cat([model(images[i:i + 32]).argmax(1).to(torch.uint8) for i in range(0, len(images), 32)])


@pytest.fixture(scope="module")
def frames(session_root) -> torch.Tensor:
    reader = SplitReader(session_root, "hidden", use_cache=False)
    # 12 frames of two videos: enough for chunks of several sizes and a short last chunk
    return torch.cat([preprocess_frames(reader.frames(i, range(11))) for i in range(2)])[:12]


def test_segment_same_bytes_for_any_batch_and_thread_count(frames, tiny_unet):
    torch.manual_seed(0)
    models = [load_segmenter(tiny_unet, torch.device("cpu")), UNet(base_width=4, depth=3).eval(),
              UNet(base_width=8, depth=3, head="factorized").eval()]
    with torch.no_grad():
        models[2].outc.conv.weight.normal_(0, 1000)   # an untrained head says one class: spread them
    threads = torch.get_num_threads()
    try:
        for model in models:
            expected = old_segment(model, frames)
            assert expected.shape == (12, 160, 240) and len(expected.unique()) > 1
            for n_threads in (1, 2):
                torch.set_num_threads(n_threads)
                for batch in (None, 1, 5, 32):     # 5: a last chunk shorter than the others
                    got = segment(model, frames, batch)
                    assert got.dtype == torch.uint8 and torch.equal(got, expected), (n_threads, batch)
    finally:
        torch.set_num_threads(threads)
    assert segment(models[1], frames[:0]).shape == (0, 160, 240)


def _with_running_stats(model: nn.Module) -> nn.Module:
    """BatchNorms with statistics far from (0, 1), so that folding them is not a no-op."""
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


@pytest.mark.parametrize("head", ["plain", "factorized"])
def test_for_inference_copy_segments_as_the_model(frames, tiny_unet, head):
    torch.manual_seed(0)
    model = (load_segmenter(tiny_unet, torch.device("cpu")) if head == "plain"
             else _with_running_stats(UNet(base_width=8, depth=3, head=head)))
    if head == "factorized":
        with torch.no_grad():
            model.outc.conv.weight.normal_(0, 30)   # an untrained head says one class: spread them
    before = {k: v.clone() for k, v in model.state_dict().items()}
    expected = old_segment(model, frames)
    assert len(expected.unique()) > 2
    fast = for_inference(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert torch.equal(segment(fast, frames), expected)
    # The model itself is untouched (it may still be trained).
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())

    half = for_inference(model, "bf16")
    assert half.inc.double_conv[0].weight.dtype == torch.bfloat16 and half.outc.conv.weight.dtype == torch.float32
    got = segment(half, frames)
    assert got.dtype == torch.uint8 and (got != expected).float().mean() < 0.01
    with pytest.raises(ValueError, match="precision"):
        for_inference(model, "fp16")


def test_inference_and_pseudo_labels_take_the_precision(session_root, tiny_unet, tmp_path):
    out = tmp_path / "bf16"
    run(build_parser().parse_args(["--split", "hidden", "--predictor", "frame10_baseline", "--root_dir",
                                   str(session_root), "--saved_seg_model_dir", str(tiny_unet), "--out_dir", str(out),
                                   "--precision", "bf16", "--no_cache"]), progress=False)
    half = load_segmenter(tiny_unet, torch.device("cpu"), "bf16")
    expected = torch.stack([segment(half, item["inputs"][-1:])[0]
                            for item in ForecastVideos(session_root, "hidden", use_cache=False)])
    assert torch.equal(torch.load(out / "submission.pt"), expected)

    root = write_fake_root(tmp_path / "data", {"unlabeled": 2})
    label_dir = make_pseudo_labels(root, "unlabeled", tiny_unet, MODEL_FRAMES, progress=False)
    assert json.loads((label_dir / "manifest.json").read_text())["precision"] == "fp32"
    make_pseudo_labels(root, "unlabeled", tiny_unet, MODEL_FRAMES, progress=False, precision="bf16")
    assert json.loads((label_dir / "manifest.json").read_text())["precision"] == "bf16"   # rebuilt
    frames1 = preprocess_frames(SplitReader(root, "unlabeled").frames(1, MODEL_FRAMES))
    assert np.array_equal(load_pseudo_labels(root, "unlabeled")[1, MODEL_FRAMES], segment(half, frames1).numpy())


class FixedLogits(nn.Module):
    """Returns the same logits whatever the input: ties where the test puts them."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = nn.Parameter(logits, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(len(x), -1, -1, -1)


def test_segment_breaks_ties_like_argmax_first_maximum():
    logits = torch.zeros(49, 2, 3)
    logits[7, 0, 0] = logits[30, 0, 0] = 5.0      # a tie: the first maximum (7) wins
    logits[48, 1, 2] = 1.0
    got = segment(FixedLogits(logits), torch.zeros(2, 3, 2, 3))
    assert got[0, 0, 0] == 7 and got[1, 1, 2] == 48 and got[0, 0, 1] == 0
    assert torch.equal(got[0].long(), logits.argmax(0))


def test_segment_batch_is_per_device():
    assert segment_batch("cpu") == SEGMENT_BATCH["cpu"] < segment_batch("cuda") == SEGMENT_BATCH["cuda"]
    assert segment_batch(torch.device("cuda", 1)) == SEGMENT_BATCH["cuda"]


def test_prefetch_keeps_order_raises_at_the_failing_item_and_stops_early():
    assert list(prefetch(iter(range(50)), depth=3)) == list(range(50))

    def failing():
        yield 1
        yield 2
        raise KeyError("item 3 is broken")
    got = []
    with pytest.raises(KeyError, match="item 3"):
        for item in prefetch(failing()):
            got.append(item)
    assert got == [1, 2]
    produced = []

    def endless():
        k = 0
        while True:
            produced.append(k)
            yield k
            k += 1
    before = threading.active_count()
    for item in prefetch(endless(), depth=2):
        if item == 5:
            break
    assert threading.active_count() == before and len(produced) <= 5 + 1 + 2 + 1
    with pytest.raises(ValueError, match="depth"):
        next(prefetch([1], depth=0))


@pytest.mark.parametrize("split,predictor", [("hidden", "frame10_baseline"), ("val", "frame10_baseline")])
def test_worker_processes_give_the_same_predictions(session_root, tiny_unet, tmp_path, split, predictor):
    outputs = {}
    for workers in ("0", "2"):
        out = tmp_path / workers
        results = run(build_parser().parse_args(
            ["--split", split, "--predictor", predictor, "--root_dir", str(session_root), "--saved_seg_model_dir",
             str(tiny_unet), "--out_dir", str(out), "--workers", workers, "--batch_size", "2", "--no_cache"]),
            progress=False)
        name = "submission.pt" if split == "hidden" else "predictions.pt"
        outputs[workers] = (torch.load(out / name), results.get("jaccard"))
        if split == "val":
            outputs[workers] += (torch.load(out / "predictions_oracle.pt"),)
    expected = torch.stack([segment(load_segmenter(tiny_unet, torch.device("cpu")), item["inputs"][-1:])[0]
                            for item in ForecastVideos(session_root, split, use_cache=False)])
    assert torch.equal(outputs["0"][0], expected)
    for a, b in zip(outputs["0"], outputs["2"]):
        assert torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b


def test_pseudo_labels_from_worker_processes_equal_segment(tmp_path, tiny_unet):
    root = write_fake_root(tmp_path / "data", {"unlabeled": 11})   # 2 chunks of 8 videos, one short
    make_pseudo_labels(root, "unlabeled", tiny_unet, MODEL_FRAMES, progress=False, workers=2)
    masks = load_pseudo_labels(root, "unlabeled")
    model = load_segmenter(tiny_unet, torch.device("cpu"))
    reader = SplitReader(root, "unlabeled")
    for i in (0, 7, 8, 10):
        expected = old_segment(model, preprocess_frames(reader.frames(i, MODEL_FRAMES))).numpy()
        assert np.array_equal(masks[i, MODEL_FRAMES], expected)
    assert not masks[:, 12:21].any()       # frames not asked for stay empty


def test_benchmark_projects_per_video_times_to_full_size(tmp_path):
    table = Table(cores=2)
    table.add("step", {"hidden": 4.0}, Usage(100.0, 150.0, 8.0), {"hidden": 8}, fixed=3.0)
    table.add("two splits", {"train": 1.0, "unlabeled": 2.0}, Usage(50.0, 60.0, 6.0), {"train": 2, "unlabeled": 4},
              workers=2)
    table.add("broken", {"error": "boom"}, Usage(10.0, 10.0, 1.0), {"hidden": 8})
    # wall: fixed + s/video x 2,000; CPU: 8 CPU-s / 8 videos x 2,000 / 2 cores
    assert table.rows[0][2:] == ("0.500", "2,000", f"{(3 + 0.5 * FULL['hidden']) / 60:.1f}",
                                 f"{1.0 * 2000 / 2 / 60:.1f}", "100", "150")
    assert table.rows[1][4] == f"{(0.5 * 1000 + 0.5 * 13000) / 2 / 60:.1f}"
    # CPU split 1:2 between the splits like their wall time: train 2 CPU-s / 2 videos, unlabeled 4 / 4
    assert table.rows[1][5] == f"{(1.0 * 1000 + 1.0 * 13000) / 2 / 60:.1f}"
    assert "failed: boom" in table.rows[2][4]
    root = write_fake_root(tmp_path / "data", {"val": 5, "hidden": 2})
    counts = sample_root(root, tmp_path / "sample", 2)
    assert counts == {"val": 2, "hidden": 2}
    linked = sorted(p.name for p in (tmp_path / "sample" / "val").iterdir())
    assert linked == ["video_1000", "video_1002"] and (tmp_path / "sample" / "val" / "video_1000").is_symlink()
