"""What the benchmarks' markdown tables carry: the command that made them, the commit and the date."""
from __future__ import annotations

import datetime
import shlex
import sys
from pathlib import Path
from typing import Sequence

from common.io import atomic_write
from SSL_convLSTM_Reconstructor.fit_extrapolation import code_version


def run_record(script: str, argv: Sequence[str] | None) -> tuple[str, str, str]:
    """(command line, commit, date) of this run of `benchmarks/<script>` (argv None: the process's)."""
    command = shlex.join(["python", f"benchmarks/{script}", *(sys.argv[1:] if argv is None else argv)])
    return command, code_version(), datetime.date.today().isoformat()


def write_table(path: Path, table: str) -> None:
    atomic_write(path, lambda f: f.write(table.encode()))
    print(f"\nwrote {path}")
