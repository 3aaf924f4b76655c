"""One exception type for every mistake a user can make, and the wrapper that turns it into one line.

A researcher who points a script at the wrong folder should read what is wrong and where,
not a traceback; the exit code is 2 like argparse's usage errors.
"""
from __future__ import annotations

import logging
import sys
from typing import Callable, Sequence


class UserInputError(Exception):
    """Bad input from the user: a missing or corrupt file, a wrong shape, a wrong checkpoint.

    The message names the file and the problem.
    """

    exit_code = 2


def run_cli(main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None) -> None:
    """Run a script's `main`, turning `UserInputError` into one line on stderr and exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
    try:
        main(argv)
    except UserInputError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(err.exit_code) from None
