"""The quick benchmarks in turn (minutes): the speed of the readers, the generator and the
models, and the extrapolation's accuracy from true masks on the real sample. Each takes its own
defaults; run one alone to pass it flags. The accuracy table of every predictor is separate and
takes about 1.5 hours on a 2-core CPU: `python benchmarks/bench_accuracy.py`.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Sequence

from common.cli import ArgumentParser
from common.errors import UserInputError, run_cli

HERE = Path(__file__).resolve().parent
SCRIPTS = ("bench_readers.py", "bench_generator.py", "bench_models.py", "bench_extrapolation.py")


def main(argv: Sequence[str] | None = None) -> None:
    ArgumentParser(description=__doc__).parse_args(argv)
    for k, script in enumerate(SCRIPTS):
        print(f"\n## {script}", flush=True)
        code = subprocess.run([sys.executable, str(HERE / script)]).returncode
        if code:        # its own error line is above
            rest = f"; not run: {', '.join(SCRIPTS[k + 1:])}" if k + 1 < len(SCRIPTS) else ""
            raise UserInputError(f"{HERE / script}: failed with exit code {code}{rest}")


if __name__ == "__main__":
    run_cli(main)
