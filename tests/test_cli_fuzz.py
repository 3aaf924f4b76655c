"""Every script's parser, fed bad values: exit code 2 and one line naming the flag, never a traceback.

The cases are drawn from the parsers themselves (every flag with a checked type or choices),
so a flag added later is fuzzed too; a numeric flag added with a bare `type=int` fails
`test_numeric_flags_use_checked_types`.
"""
import argparse
import importlib
import subprocess
import sys

import pytest
import torch

from common import cli
from conftest import REPO
from Unets.segmentation import crop_size

SCRIPTS = {
    "Unets/train.py": ("Unets.train", ()),
    "Unets/inference.py": ("Unets.inference", ()),
    "Unets/inference_val_with_reconstructor.py": ("Unets.inference", ("val", "reconstructor")),
    "Unets/inference_hidden_without_reconstructor.py": ("Unets.inference", ("hidden", "frame10_baseline")),
    "SSL_convLSTM_Reconstructor/train_reconstructor.py": ("SSL_convLSTM_Reconstructor.train_reconstructor", ()),
    "SSL_convLSTM_Reconstructor/train_mask_predictor.py": ("SSL_convLSTM_Reconstructor.train_mask_predictor", ()),
    "SSL_convLSTM_Reconstructor/pseudo_labels.py": ("SSL_convLSTM_Reconstructor.pseudo_labels", ()),
    "SSL_convLSTM_Reconstructor/train_mask_hybrid.py": ("SSL_convLSTM_Reconstructor.train_mask_hybrid", ()),
    "Data/generate.py": ("Data.generate", ()),
    "Data/build_cache.py": ("Data.build_cache", ()),
    "Data/check_dataset.py": ("Data.check_dataset", ()),
    "Data/stats.py": ("Data.stats", ()),
    "Data/contact_sheet.py": ("Data.contact_sheet", ()),
    "tools/fit_lighting.py": ("tools.fit_lighting", ()),
    "demo.py": ("demo", ()),
    "benchmarks/bench_accuracy.py": ("benchmarks.bench_accuracy", ()),
    "benchmarks/bench_generator.py": ("benchmarks.bench_generator", ()),
    "benchmarks/bench_models.py": ("benchmarks.bench_models", ()),
    "benchmarks/bench_readers.py": ("benchmarks.bench_readers", ()),
    "benchmarks/bench_realism.py": ("benchmarks.bench_realism", ()),
    "benchmarks/bench_reconstructor.py": ("benchmarks.bench_reconstructor", ()),
    "benchmarks/bench_extrapolation.py": ("benchmarks.bench_extrapolation", ()),
    "benchmarks/object_gate.py": ("benchmarks.object_gate", ()),
    "benchmarks/gate_candidates.py": ("benchmarks.gate_candidates", ()),
    "benchmarks/bench_min_area.py": ("benchmarks.bench_min_area", ()),
    "SSL_convLSTM_Reconstructor/fit_extrapolation.py": ("SSL_convLSTM_Reconstructor.fit_extrapolation", ()),
}

BAD_VALUES = {
    cli.positive_int: ["0", "-1", "2.5", "many"],
    cli.non_negative_int: ["-1", "1.5"],
    cli.int_at_least_two: ["1", "0", "2.5"],
    cli.positive_float: ["0", "-1", "nan", "inf"],
    cli.non_negative_float: ["-1", "-0.5", "inf"],
    cli.fraction: ["0", "1", "-0.1"],
    cli.probability: ["-0.1", "1.5", "nan"],
    cli.ratio_at_least_one: ["0.5", "nan"],
    crop_size: ["0x128", "-96x128", "96x-1", "200x128", "96"],
    cli.device_name: ["tpu", "cuda:x"] + ([] if torch.cuda.is_available() else ["cuda", "cuda:0"]),
}
CHECKED_TYPES = set(BAD_VALUES)

# The probes of issue 20, spelled out, beside what the parsers yield on their own.
ISSUE_PROBES = [
    ("Unets/train.py", ["--epochs", "0"]),
    ("Unets/train.py", ["--budget_minutes", "-1"]),
    ("Unets/train.py", ["--crop", "0x128"]),
    ("Unets/train.py", ["--crop", "-96x128"]),
    ("Unets/train.py", ["--lr", "-1"]),
    ("Unets/train.py", ["--workers", "-1"]),
    ("Unets/train.py", ["--train_split", "vall"]),
    ("Unets/train.py", ["--batch_size", "0"]),
    ("Unets/inference.py", ["--batch_size", "-4"]),
    ("SSL_convLSTM_Reconstructor/train_reconstructor.py", ["--batch_size", "0"]),
    ("SSL_convLSTM_Reconstructor/train_mask_predictor.py", ["--batch_size", "-1"]),
    ("SSL_convLSTM_Reconstructor/pseudo_labels.py", ["--batch_size", "0"]),
    ("Unets/inference.py", ["--device", "tpu"]),
    ("Unets/train.py", ["--device", "tpu"]),
]


def parser_of(script: str) -> argparse.ArgumentParser:
    module, preset = SCRIPTS[script]
    return importlib.import_module(module).build_parser(*preset)


def generated_cases() -> list[tuple[str, list[str]]]:
    cases = []
    for script in SCRIPTS:
        for action in parser_of(script)._actions:
            if not action.option_strings or action.nargs == 0:
                continue
            flag = action.option_strings[0]
            if action.type in BAD_VALUES:
                cases += [(script, [flag, bad]) for bad in BAD_VALUES[action.type]]
            if action.choices is not None:
                cases.append((script, [flag, "bogus"]))
            if isinstance(action, cli.DistinctValues):
                cases.append((script, [flag, "3", "3"]))
    return cases


def assert_usage_error(capsys, parser: argparse.ArgumentParser, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2, (argv, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"error: argument {argv[0]}"), err


@pytest.mark.parametrize("script,argv", ISSUE_PROBES, ids=[f"{s}{' '.join(a)}" for s, a in ISSUE_PROBES])
def test_issue_probes_are_usage_errors(capsys, script, argv):
    assert_usage_error(capsys, parser_of(script), argv)


def test_every_checked_flag_refuses_bad_values(capsys):
    cases = generated_cases()
    assert len(cases) > 100 and {s for s, _ in cases} == set(SCRIPTS)
    for script, argv in cases:
        assert_usage_error(capsys, parser_of(script), argv)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_numeric_flags_use_checked_types(script):
    bare = [a.option_strings[0] for a in parser_of(script)._actions if a.type in (int, float)]
    assert not bare, f"{script}: {bare} take a bare int/float; use a checked type from common/cli.py"
    device = [a for a in parser_of(script)._actions if "--device" in a.option_strings]
    assert all(a.type is cli.device_name for a in device)


@pytest.mark.slow
def test_the_real_command_lines_say_one_line():
    """The same through `python <script>` from the repo root and from the script's folder."""
    runs = [(["Unets/train.py", "--epochs", "0"], REPO),
            (["inference_val_without_reconstructor.py", "--workers", "-1"], REPO / "Unets"),
            (["Unets/inference.py", "--device", "tpu"], REPO),
            (["Data/generate.py", "--workers", "0"], REPO),
            (["demo.py", "--minutes_per_model", "-1"], REPO)]
    procs = [subprocess.Popen([sys.executable, *argv], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for argv, cwd in runs]
    for (argv, _), proc in zip(runs, procs):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, (argv, err)
        assert len(err.strip().splitlines()) == 1 and err.startswith(f"error: argument {argv[1]}"), (argv, err)
