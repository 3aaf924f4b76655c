"""Command-line pieces every script shares: checked argparse types and a parser whose errors are one line.

A flag that takes a count, a size or a rate is refused at parse time when it is out of range,
so a wrong value costs the user one line and no computing (`--epochs 0` would otherwise write
an untrained checkpoint and exit 0).
"""
from __future__ import annotations

import argparse
import math
from typing import Callable


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (exit 2), like the project's `UserInputError`s.

    The usage block of a script with thirty flags buries the one line that says what is wrong.
    """

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _number(kind: type, test: Callable[[float], bool], wanted: str) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if (kind is float and not math.isfinite(value)) or not test(value):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value
    parse.__name__ = wanted.replace(" ", "_")
    return parse


positive_int = _number(int, lambda v: v > 0, "a positive integer")
non_negative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
int_at_least_two = _number(int, lambda v: v >= 2, "an integer >= 2")
positive_float = _number(float, lambda v: v > 0, "a positive number")
non_negative_float = _number(float, lambda v: v >= 0, "a number >= 0")
fraction = _number(float, lambda v: 0 < v < 1, "a number between 0 and 1 (exclusive)")
probability = _number(float, lambda v: 0 <= v <= 1, "a number between 0 and 1")
ratio_at_least_one = _number(float, lambda v: v >= 1, "a number >= 1")


class DistinctValues(argparse.Action):
    """A list flag (nargs) whose values must differ: a repeated one is refused at parse time."""

    def __call__(self, parser, namespace, values, option_string=None):
        if len(set(values)) < len(values):
            parser.error(f"argument {option_string}: the values must differ, got {' '.join(map(str, values))}")
        setattr(namespace, self.dest, values)


def device_name(text: str) -> str:
    """A device flag checked against this machine: 'auto', 'cpu', 'cuda' or 'cuda:N'."""
    from common.errors import UserInputError
    from common.runtime import pick_device
    try:
        pick_device(text)
    except UserInputError as err:   # argparse names the flag itself
        raise argparse.ArgumentTypeError(str(err).split(": ", 1)[-1]) from None
    return text


def add_device_arg(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--device", type=device_name, default="auto",
                        help="'auto' (CUDA when present), 'cpu', 'cuda' or 'cuda:N'")
