"""The hybrid mask predictor: a learned correction that starts as the physics forecast."""
import json
import re
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from common.checkpoint import make_checkpoint
from common.errors import UserInputError
from common.io import atomic_write_json
from Data.reading import DatasetError, SplitReader
from models import load_checkpointed, load_model
from SSL_convLSTM_Reconstructor import physics_forecasts as pf
from SSL_convLSTM_Reconstructor import train_mask_hybrid
from SSL_convLSTM_Reconstructor.extrapolation import ExtrapolationParams, extrapolate_mask, params_record
from SSL_convLSTM_Reconstructor.mask_hybrid import MaskHybrid
from SSL_convLSTM_Reconstructor.pseudo_labels import MODEL_FRAMES, load_pseudo_labels, make_pseudo_labels
from SSL_convLSTM_Reconstructor.train_mask_predictor import mask_loss
from Unets.inference import build_parser, run

SMALL = {"embed_dim": 4, "hid_s": 8, "hid_t": 16, "n_t": 1}
# A physics of the fake videos' squares, written by hand (no fit needed): straight lines, no drag.
PARAMS = ExtrapolationParams(horizon_y=-400.0, depth_px=400.0, drag=(1.0, 1.0, 1.0), friction=(0.0, 0.0, 0.0),
                             radius=(0.3, 0.3, 0.3), collide=False, window=4)


@pytest.fixture(scope="module")
def root(session_root, tiny_unet, tmp_path_factory):
    # a private copy: pseudo-labels and physics forecasts are written into the root
    root = shutil.copytree(session_root, tmp_path_factory.mktemp("hybrid") / "data")
    for split in ("unlabeled", "val"):
        make_pseudo_labels(root, split, tiny_unet, MODEL_FRAMES, progress=False)
    return root


@pytest.fixture(scope="module")
def fit_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("fit")
    atomic_write_json(params_record(PARAMS), out / "extrapolation.json")
    return out


def random_masks(b=2, h=32, w=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 49, (b, 11, h, w), generator=g), torch.randint(0, 49, (b, h, w), generator=g)


def test_the_untrained_model_is_the_physics_forecast():
    torch.manual_seed(0)
    model = MaskHybrid(**SMALL).eval()
    masks, physics = random_masks()
    with torch.no_grad():
        assert torch.equal(model(masks, physics).argmax(1), physics)


def test_one_training_step_lowers_the_loss():
    torch.manual_seed(0)
    model = MaskHybrid(**SMALL)
    masks, physics = random_masks(seed=1)
    target = physics.clone()
    target[:, 8:24, 8:24] = 7            # what the physics missed: a square of another class
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    before = mask_loss(model(masks, physics), target, 0.5)
    before.backward()
    opt.step()
    with torch.no_grad():
        after = mask_loss(model(masks, physics), target, 0.5)
    assert after < before


def test_a_checkpoint_reloads_to_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = MaskHybrid(**SMALL)
    with torch.no_grad():                # a trained-like readout, so the network's part counts
        model.net.readout.weight.normal_()
    torch.save(make_checkpoint(model, None, 1, 0.5), tmp_path / "best.pt")
    loaded = load_model(tmp_path, "mask_hybrid")
    masks, physics = random_masks(seed=2)
    with torch.no_grad():
        assert torch.equal(loaded(masks, physics), model.eval()(masks, physics))
    assert isinstance(loaded, MaskHybrid) and loaded.config == model.config
    with pytest.raises(UserInputError, match="holds a 'mask_hybrid' model, expected 'mask_simvp'"):
        load_model(tmp_path, "mask_simvp")


def test_a_checkpoint_with_a_gate_reloads_it_and_an_old_config_has_none(tmp_path):
    torch.manual_seed(0)
    model = MaskHybrid(**SMALL, gate_hidden=8, gate_threshold=0.3, gate_windows=[2, 5])
    with torch.no_grad():
        model.gate.net[-1].weight.normal_()
        model.gate.mean.fill_(2.0)
    torch.save(make_checkpoint(model, None, 1, 0.5), tmp_path / "best.pt")
    loaded = load_model(tmp_path, "mask_hybrid")
    feats = np.random.default_rng(0).normal(size=(5, loaded.gate.mean.numel()))
    assert np.array_equal(loaded.gate.share(feats), model.gate.share(feats)) and loaded.gate.threshold == 0.3
    assert loaded.gate.windows == (2, 5) and loaded.gate.share(feats).shape == (5, 3)
    old = {k: v for k, v in model.config.items() if not k.startswith("gate_")}   # written before the gate
    assert MaskHybrid.from_config(old).gate is None
    keep_or_leave = {k: v for k, v in model.config.items() if k != "gate_windows"}   # before the windows
    assert MaskHybrid.from_config(keep_or_leave).gate.windows == ()


def test_bad_inputs_are_refused():
    model = MaskHybrid(**SMALL)
    masks, physics = random_masks()
    with pytest.raises(ValueError, match="physics forecast"):
        model(masks, physics[:, None])
    with pytest.raises(ValueError, match=r"masks \(B, 11, H, W\)"):
        model(masks[:, :10], physics)
    with pytest.raises(ValueError, match="class ids must lie in"):
        model(masks, physics + 49)
    with pytest.raises(ValueError, match="unknown keys"):
        MaskHybrid.from_config({**SMALL, "depth": 3})


def test_physics_forecasts_are_computed_once_per_fit(root, monkeypatch):
    got = pf.physics_forecasts(root, "train", "true", PARAMS, progress=False)
    reader = SplitReader(root, "train")
    expected = np.stack([extrapolate_mask(reader.masks(i)[:11], PARAMS) for i in range(len(reader))])
    assert got.dtype == np.uint8 and np.array_equal(got, expected)

    def fail(*args, **kwargs):
        raise AssertionError("recomputed")
    monkeypatch.setattr(pf, "extrapolate_mask", fail)
    assert np.array_equal(pf.physics_forecasts(root, "train", "true", PARAMS, progress=False), got)
    with pytest.raises(AssertionError, match="recomputed"):   # another fit: made again
        pf.physics_forecasts(root, "train", "true", ExtrapolationParams(**{**PARAMS.to_dict(), "window": 3}))
    manifest = json.loads((root / "physics_forecasts" / "train_true.json").read_text())
    assert manifest["params"]["window"] == PARAMS.window     # the failed run left the old pair intact
    monkeypatch.undo()
    # A cut array or a broken manifest (a full disk) is made again, not a traceback.
    cache = root / "physics_forecasts" / "train_true.npy"
    cache.write_bytes(cache.read_bytes()[:100])
    assert np.array_equal(pf.physics_forecasts(root, "train", "true", PARAMS, progress=False), got)
    cache.with_suffix(".json").write_text("{")
    assert np.array_equal(pf.physics_forecasts(root, "train", "true", PARAMS, progress=False), got)


def test_train_inputs_choose_the_masks_of_the_train_videos(root, fit_dir, tiny_unet):
    # The train videos' target is their true frame 21 whatever masks of frames 0..10 they give.
    parse = train_mask_hybrid.build_parser().parse_args
    argv = ["--root_dir", str(root), "--saved_extrapolation_dir", str(fit_dir), "--no_unlabeled"]
    # the module's root has pseudo-labels of unlabeled and val only: the error names the train folder
    with pytest.raises(DatasetError, match=re.escape(f"{pf.label_dir(root, 'train')}: no pseudo-labels")):
        train_mask_hybrid.make_task(parse([*argv, "--train_inputs", "pseudo"]))
    make_pseudo_labels(root, "train", tiny_unet, MODEL_FRAMES, progress=False)
    reader, pseudo = SplitReader(root, "train"), load_pseudo_labels(root, "train")
    sizes = {k: len(train_mask_hybrid.make_task(parse([*argv, "--train_inputs", k])).train_set)
             for k in ("true", "pseudo", "both")}
    assert sizes == {"true": len(reader), "pseudo": len(reader), "both": 2 * len(reader)}

    task = train_mask_hybrid.make_task(parse([*argv, "--train_inputs", "both"]))
    true = np.stack([reader.masks(i) for i in range(len(reader))])
    for i in range(len(reader)):
        (x_true, physics_true, y_true), (x_pseudo, physics_pseudo, y_pseudo) = \
            task.train_set.base[i], task.train_set.base[len(reader) + i]
        true_in, unet_in = true[i, :11], np.asarray(pseudo[i])[:11]
        assert np.array_equal(x_true.numpy(), true_in) and np.array_equal(x_pseudo.numpy(), unet_in)
        assert np.array_equal(physics_pseudo.numpy(), extrapolate_mask(unet_in, PARAMS))
        assert np.array_equal(physics_true.numpy(), extrapolate_mask(true_in, PARAMS))
        assert np.array_equal(y_pseudo.numpy(), true[i, 21]) and torch.equal(y_true, y_pseudo)
    assert not np.array_equal(np.asarray(pseudo[:, :11]), true[:, :11])
    with pytest.raises(SystemExit):
        parse([*argv, "--train_inputs", "unet"])


@pytest.mark.slow
def test_hybrid_trains_and_inference_scores_it(root, fit_dir, tiny_unet, tmp_path):
    out = tmp_path / "hybrid"
    small = [f"--{k}={v}" for k, v in SMALL.items()]
    if not pf.label_dir(root, "train").is_dir():        # the object gate learns on the train videos' U-Net masks
        make_pseudo_labels(root, "train", tiny_unet, MODEL_FRAMES, progress=False)
    train_mask_hybrid.main(["--root_dir", str(root), "--out_dir", str(out), "--epochs", "3",
                            "--max_steps_per_epoch", "6", "--batch_size", "2", "--lr", "0.01", "--workers", "0",
                            "--saved_extrapolation_dir", str(fit_dir), "--no_progress", "--gate_hidden", "8", *small])
    history = json.loads((out / "history.json").read_text())
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert {"val_jaccard", "network_jaccard", "physics_jaccard", "copy10_jaccard"} <= history[0].keys()
    trained = load_model(out, "mask_hybrid")
    assert trained.gate is not None and trained.config["gate_hidden"] == 8 and trained.gate.windows == (2, 5, 8)

    # Untrained hybrids (with and without a gate) through the whole inference path: the
    # extrapolation's masks, byte for byte.
    for name, gate in (("untrained", 0), ("untrained_gate", 8)):
        (tmp_path / name).mkdir()
        model = MaskHybrid(**SMALL, gate_hidden=gate, gate_windows=[2, 5] if gate else [])
        torch.save(make_checkpoint(model, None, 0, None), tmp_path / name / "best.pt")
    for model_dir, name in ((tmp_path / "untrained", "untrained"), (tmp_path / "untrained_gate", "untrained_gate"),
                            (out, "trained")):
        argv = ["--root_dir", str(root), "--split", "val", "--predictor", "mask_hybrid", "--compare",
                "mask_extrapolation", "--saved_seg_model_dir", str(tiny_unet), "--saved_hybrid_model_dir",
                str(model_dir), "--saved_extrapolation_dir", str(fit_dir), "--out_dir", str(tmp_path / name)]
        results = run(build_parser().parse_args(argv), progress=False)
        assert {"mask_hybrid", "mask_extrapolation", "frame10_baseline", "oracle"} == set(results["jaccard"])
        if name == "trained":       # training validates as inference scores: network and gate
            best = max(row["val_jaccard"] for row in history)
            assert results["jaccard"]["mask_hybrid"] == pytest.approx(best, abs=1e-6)
    for name in ("untrained", "untrained_gate"):
        hybrid = torch.load(tmp_path / name / "predictions.pt")
        physics = torch.load(tmp_path / name / "predictions_mask_extrapolation.pt")
        assert hybrid.shape == (3, 160, 240) and torch.equal(hybrid, physics)


def test_a_resumed_run_keeps_its_gate_whatever_the_gate_flags_say(root, fit_dir, tiny_unet, tmp_path, monkeypatch):
    out = tmp_path / "hybrid"
    if not pf.label_dir(root, "train").is_dir():
        make_pseudo_labels(root, "train", tiny_unet, MODEL_FRAMES, progress=False)
    argv = ["--root_dir", str(root), "--out_dir", str(out), "--max_steps_per_epoch", "2", "--batch_size", "2",
            "--workers", "0", "--saved_extrapolation_dir", str(fit_dir), "--no_progress", "--gate_hidden", "8",
            *[f"--{k}={v}" for k, v in SMALL.items()]]
    train_mask_hybrid.main([*argv, "--epochs", "1"])
    first = load_model(out / "last.pt", "mask_hybrid").gate.state_dict()

    def refit(*args, **kwargs):
        raise AssertionError("a resumed run refitted its gate")
    monkeypatch.setattr(train_mask_hybrid, "fit_gate", refit)
    # Other windows (another feature count) and no gate at all: the run's own gate trains on and is scored.
    train_mask_hybrid.main([*argv, "--epochs", "2", "--resume", "--gate_windows", "3"])
    train_mask_hybrid.main([*argv, "--epochs", "3", "--resume", "--gate_epochs", "0"])
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 3 and all(row["val_jaccard"] > 0 for row in history)
    gate = load_model(out / "last.pt", "mask_hybrid").gate
    assert gate.windows == (2, 5, 8)
    assert all(torch.equal(v, first[k]) for k, v in gate.state_dict().items())   # frozen, not retrained


def test_gate_videos_are_collect_s_videos_without_their_f(root):
    plain = pf.gate_videos(root, "val", "pseudo", PARAMS, (2, 5))
    scored = pf.collect(root, "val", "pseudo", "true", PARAMS, (2, 5))[2]
    assert len(plain) == len(scored) == len(SplitReader(root, "val")) and sum(len(v.rows) for v in plain) > 0
    for a, b in zip(plain, scored):
        assert np.array_equal(a.forecast, b.forecast) and a.ends == b.ends
        assert [(cid, f is None) for cid, _, f in a.rows] == [(cid, True) for cid, _, _ in b.rows]
        assert all(np.array_equal(fa, fb) for (_, fa, _), (_, fb, _) in zip(a.rows, b.rows))


def test_a_hybrid_run_on_another_fit_than_its_own_is_named_in_a_warning(tmp_path, caplog):
    from predictors.mask_hybrid import warn_other_fit
    model = MaskHybrid(**SMALL)
    torch.save(make_checkpoint(model, None, 0, None, extrapolation=PARAMS.to_dict()), tmp_path / "best.pt")
    torch.save(make_checkpoint(model, None, 0, None), tmp_path / "old.pt")
    with caplog.at_level("WARNING"):
        _, ckpt = load_checkpointed(tmp_path, "mask_hybrid")
        warn_other_fit(tmp_path, ckpt, PARAMS)
        warn_other_fit(tmp_path / "old.pt", load_checkpointed(tmp_path / "old.pt")[1],
                       replace(PARAMS, window=3))     # no fit recorded: nothing to say
        assert caplog.records == []
        warn_other_fit(tmp_path, ckpt, replace(PARAMS, window=3, collide=True))
    [record] = caplog.records
    assert str(tmp_path / "best.pt") in record.getMessage()
    assert "collide False -> True; " in record.getMessage() and "window 4 -> 3" in record.getMessage()


def test_compare_rows_sorts_objects_by_what_the_base_row_did():
    from benchmarks.compare_rows import compare
    truth = torch.zeros(1, 40, 60, dtype=torch.uint8)
    truth[0, 0:10, 0:10], truth[0, 20:30, 0:10], truth[0, 20:30, 30:40] = 1, 2, 3
    base = torch.zeros_like(truth)
    base[0, 0:10, 40:50] = 2              # object 2 placed away from its true place, object 1 missing
    base[0, 20:30, 30:40] = 3
    base[0, 30:35, 50:55] = 9             # a ghost: class 9 is in no true mask
    kinds, videos = compare(base, truth.clone(), truth)
    assert kinds == {"missed by the base row": [1.0], "placed with no overlap": [1.0], "overlapped": [0.0]}
    gain, index, ghosts = videos[0]
    assert index == 0 and gain > 0 and ghosts == [25, 0]


def test_forecasts_of_pseudo_labels_depend_on_the_labels_precision(tmp_path):
    # bf16 pseudo-labels are other masks: their physics forecasts must not be read from fp32 ones.
    out = pf.label_dir(tmp_path, "unlabeled")
    out.mkdir(parents=True)
    old = {"unet_sha1": "ab", "source": "cd", "video_ids": [2000], "frames": [0]}
    (out / "manifest.json").write_text(json.dumps(old))     # written before the precision was recorded
    assert pf.masks_source(tmp_path, "unlabeled", "pseudo")["precision"] == "fp32"
    (out / "manifest.json").write_text(json.dumps({**old, "precision": "bf16"}))
    assert pf.masks_source(tmp_path, "unlabeled", "pseudo") == {"unet_sha1": "ab", "precision": "bf16",
                                                                "source": "cd", "video_ids": [2000]}


def test_bench_min_area_scores_each_value_from_both_kinds_of_masks(root, fit_dir, capsys):
    from benchmarks import bench_min_area
    table = bench_min_area.main(["--root_dir", str(root), "--saved_extrapolation_dir", str(fit_dir),
                                 "--values", "15", "100000"])
    assert set(table) == {15, 100000} and all(set(row) == {"U-Net masks", "true masks"} for row in table.values())
    # No object covers 100000 pixels: both forecasts are all background, and score alike.
    assert table[100000]["U-Net masks"] == table[100000]["true masks"] < table[15]["true masks"]
    assert "frame-10 copy" in capsys.readouterr().out


def test_bench_shape_fill_scores_each_ratio_and_refuses_one_below_1(root, fit_dir, capsys):
    from benchmarks import bench_shape_fill
    from benchmarks.bench_extrapolation import jaccard
    from SSL_convLSTM_Reconstructor.extrapolation import extrapolate_masks
    args = ["--root_dir", str(root), "--saved_extrapolation_dir", str(fit_dir), "--split", "val"]
    table = bench_shape_fill.main(args + ["--values", "1", "1.5"])
    assert set(table) == {1.0, 1.5} and all(set(row) == {"U-Net masks", "true masks"} for row in table.values())
    reader = SplitReader(root, "val")
    true = np.stack([reader.masks(i) for i in range(len(reader))])
    assert table[1.0]["true masks"] == jaccard(extrapolate_masks(true[:, :11], replace(PARAMS, fill_ratio=1.0)), true)
    assert "fill_ratio" in capsys.readouterr().out
    with pytest.raises(SystemExit) as err:
        bench_shape_fill.main(args + ["--values", "0.5"])
    assert err.value.code == 2 and "a number >= 1" in capsys.readouterr().err


def test_bench_extrapolation_scores_the_hybrids_network_from_true_masks(root):
    from benchmarks.bench_extrapolation import corrected, forecast, load_masks
    masks = load_masks(root, "val")
    physics = forecast(masks, PARAMS)
    torch.manual_seed(0)
    model = MaskHybrid(**SMALL, gate_hidden=8, gate_windows=[2]).eval()
    assert np.array_equal(corrected(masks, physics, model), physics)            # untrained: the physics
    with torch.no_grad():
        model.gate.net[-1].bias.fill_(-10.0)            # a gate that leaves out everything, not run on true masks
        model.net.readout.weight.normal_()              # a network that corrects
    with torch.no_grad():
        network = model(torch.from_numpy(masks[:, :11].astype(np.int64)),
                        torch.from_numpy(physics.astype(np.int64))).argmax(1).numpy()
    assert not np.array_equal(network, physics) and np.array_equal(corrected(masks, physics, model), network)


def test_the_gate_refuses_train_labels_of_another_unet(root, monkeypatch):
    made = {"train": {"unet_sha1": "aa", "precision": "fp32"}, "val": {"unet_sha1": "bb", "precision": "fp32"}}
    monkeypatch.setattr(train_mask_hybrid, "MaskSequences", lambda *a: None)
    monkeypatch.setattr(train_mask_hybrid, "read_manifest", lambda folder: made[folder.name])
    with pytest.raises(UserInputError, match=r"train: pseudo-labels of another U-Net"):
        train_mask_hybrid.check_gate_labels(root)
    made["val"]["unet_sha1"] = "aa"
    train_mask_hybrid.check_gate_labels(root)


def test_the_gate_benchmark_scores_the_gate_after_each_epoch(root, fit_dir, tiny_unet, capsys):
    from benchmarks.object_gate import main
    if not pf.label_dir(root, "train").is_dir():        # the gate learns on the train videos' U-Net masks
        make_pseudo_labels(root, "train", tiny_unet, MODEL_FRAMES, progress=False)
    rows = main(["--root_dir", str(root), "--extrapolation_dir", str(fit_dir), "--epochs", "1", "3", "--windows", "2"])
    assert [r["epoch"] for r in rows] == ["oracle", 0, 1, 3]
    oracle, untrained = rows[0], rows[1]
    # the untrained gate keeps every object: the physics forecast, which the oracle's picks cannot lose to
    assert untrained["moved"] == untrained["left_out"] == 0 and untrained["val_jaccard"] <= oracle["val_jaccard"]
    assert rows[-1]["train_loss"] < rows[2]["train_loss"]
    assert "candidates: the fit's window 4, then [2]" in capsys.readouterr().out


def test_gate_candidates_compares_each_window_with_the_physics(root, fit_dir, monkeypatch, capsys):
    from benchmarks import gate_candidates
    fits = []
    monkeypatch.setattr(gate_candidates, "leave_one_out_fits",
                        lambda masks, workers: fits.append(len(masks)) or [PARAMS] * len(masks))
    # The fake root's labelled train videos stand in for the real ones; window 4 is the fit's own.
    out = gate_candidates.main(["--root_dir", str(root), "--extrapolation_dir", str(fit_dir),
                                "--real_root", str(root), "--windows", "4", "2", "--margin", "0.01"])
    videos = len(SplitReader(root, "train"))
    assert fits == [videos]
    assert {"generated train, true masks", "generated val, true masks", "generated val, the U-Net's masks",
            "real, true masks, generated fit", "real, true masks, leave-one-out fits"} <= out.keys()
    for name, s in out.items():
        assert s["objects"] > 0 and len(s["mean_f"]) == 3, name
        # the fit's own window as an alternative lands every object where the physics does
        assert s["mean_f"][1] == s["mean_f"][0] and s["beats"][0] == s["loses"][0] == 0.0, name
    # the fake squares move in straight lines at constant speed: from true masks the physics lands them
    assert out["generated val, true masks"]["mean_f"][0] > 0.9
    assert out["real, true masks, generated fit"] == out["generated train, true masks"]
    assert "candidates: window 4 (physics), window 4, window 2" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        gate_candidates.build_parser().parse_args(["--root_dir", "r", "--extrapolation_dir", "f", "--windows"])
