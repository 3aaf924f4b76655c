"""The accuracy benchmark's markdown table: what the README's results table is made of."""
from __future__ import annotations

import json

import pytest

from benchmarks import bench_accuracy


def test_markdown_table_names_its_run_and_each_models_steps(tmp_path):
    for name, steps in {"unet": [100, 50], "mask_simvp": [30], "mask_hybrid": [20], "reconstructor": [7, 8]}.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "history.json").write_text(json.dumps([{"epoch": k + 1, "steps": s}
                                                                  for k, s in enumerate(steps)]))
    steps = bench_accuracy.trained_steps(tmp_path)
    assert steps == {"unet": 150, "mask_simvp": 30, "mask_hybrid": 20, "reconstructor": 15}   # no fine-tuned U-Net
    summary = {"videos": 100, "val": {"frame10_baseline": 0.2, "reconstructor": 0.25, "mask_simvp": 0.3,
                                      "mask_extrapolation": 0.6, "mask_hybrid": 0.65, "oracle": 0.8}}
    text = bench_accuracy.markdown_table(summary, steps, "python benchmarks/bench_accuracy.py --markdown t.md",
                                         "0123456789abcdef", "2026-12-02", "synth-6")
    lines = text.splitlines()
    assert lines[0] == ("Val Jaccard on `small` generated data (synth-6, 100 val videos), measured 2026-12-02 "
                        "at commit `0123456789ab` by `python benchmarks/bench_accuracy.py --markdown t.md`:")
    rows = {line.split("|")[1].strip(" `"): [c.strip() for c in line.split("|")[2:-1]] for line in lines[4:]}
    assert list(rows) == ["frame10_baseline", "reconstructor", "mask_simvp", "mask_extrapolation", "mask_hybrid",
                          "oracle"]
    assert rows["mask_extrapolation"][1:] == ["0.600", "3.00", "0.75", "U-Net 150"]
    assert rows["reconstructor"][-1] == "reconstructor 15"
    assert rows["mask_simvp"][-1] == "U-Net 150, SimVP 30"
    assert rows["mask_hybrid"][-1] == "U-Net 150, hybrid 20"


def test_forecasting_markdown_names_its_data_and_rows(tmp_path):
    from benchmarks import bench_extrapolation
    (tmp_path / "gen" / "train").mkdir(parents=True)
    (tmp_path / "gen" / "train" / ".generator.json").write_text(json.dumps({"generator_version": "synth-9"}))
    real = {"copy mask 10": 0.348, "fitted extrapolation": 0.464}
    gen = {"copy mask 10": 0.354, "fitted extrapolation": 0.672, "without collisions": 0.617}
    table = bench_extrapolation.markdown_table(real, 3, gen, tmp_path / "gen", "python x", "abcdef0123456789", "2026-12-02")
    lines = table.splitlines()
    assert "2026-12-02" in lines[0] and "`abcdef012345`" in lines[0] and "`python x`" in lines[0]
    assert "synth-9" in lines[2] and "3 labelled videos" in lines[2]
    assert "| fitted extrapolation | 0.464 | 0.672 |" in lines
    gen["hybrid correction of the fitted extrapolation"] = 0.7
    table = bench_extrapolation.markdown_table(real, 3, gen, tmp_path / "gen", "python x", "abcdef0123456789", "2026-12-02")
    assert "| hybrid correction of the fitted extrapolation | - | 0.700 |" in table.splitlines()
    assert "| without collisions | - | 0.617 |" in lines
    assert not any(line.startswith("| constant velocity") for line in lines)     # measured nowhere: no row


def test_steps_flag_fixes_every_models_steps(capsys):
    args = bench_accuracy.build_parser().parse_args(
        ["--steps", "unet=20,mask_simvp=3,mask_hybrid=4,reconstructor=5,finetune=0"])
    assert args.steps == {"unet": 20, "mask_simvp": 3, "mask_hybrid": 4, "reconstructor": 5, "finetune": 0}
    assert bench_accuracy.build_parser().parse_args([]).steps is None          # the minutes, by default
    for bad, said in (("unet=20,mask_simvp=3,mask_hybrid=4", "no steps for reconstructor"),
                      ("unet=20,simvp=3", "'simvp=3' is not name=N"), ("unet=-1", "'unet=-1' is not name=N")):
        with pytest.raises(SystemExit) as exit_:
            bench_accuracy.build_parser().parse_args(["--steps", bad])
        assert exit_.value.code == 2 and said in capsys.readouterr().err


def test_forecasting_benchmark_checks_what_it_is_given_before_fitting(tmp_path, monkeypatch, capsys):
    from benchmarks import bench_extrapolation
    from common.errors import UserInputError

    def no_fit(*args, **kwargs):
        raise AssertionError("fitted before the inputs were checked")
    monkeypatch.setattr(bench_extrapolation, "fit_params", no_fit)
    for argv, message in ((["--root_dir", str(tmp_path / "nowhere")], "nowhere: data root not found"),
                          (["--fit_root", str(tmp_path / "nowhere")], "nowhere: data root not found"),
                          (["--real_root", str(tmp_path / "nowhere")], "nowhere: data root not found"),
                          (["--markdown", str(tmp_path)], "--markdown is a folder")):
        with pytest.raises(UserInputError, match=message):
            bench_extrapolation.main(argv)
    assert not (tmp_path / "nowhere").exists()
    # The real sample is optional: without it (and no other root) there is nothing to fit, and it says so.
    monkeypatch.setattr(bench_extrapolation, "REAL_SAMPLE", tmp_path / "no_sample")
    bench_extrapolation.main([])
    assert "no_sample: no 2 labelled real videos" in capsys.readouterr().out
