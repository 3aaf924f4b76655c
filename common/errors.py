"""One exception type for every mistake a user can make, and the wrapper that turns it into one line.

A researcher who points a script at the wrong folder should read what is wrong and where,
not a traceback; the exit code is 2 like argparse's usage errors.
"""
from __future__ import annotations

import logging
import re
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
        print(f"error: {one_line(err)}", file=sys.stderr)
        raise SystemExit(err.exit_code) from None


def one_line(err: BaseException) -> str:
    """The message of `err`, without the worker traceback a DataLoader wraps around it.

    torch re-raises a worker's exception in the main process with the same type but a message
    of "Caught X in DataLoader worker process N. Original Traceback ..."; the user's line is last.
    """
    text = str(err)
    if "Original Traceback" not in text:
        return text
    last = text.rstrip().splitlines()[-1]
    return re.sub(r"^[\w.]+(Error|Exception): ", "", last)
