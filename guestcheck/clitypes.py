"""click parameter types for numbers typed on a command line, shared by every command (selftest, watch); the
parsing itself is guestcheck/quantities.py's, so the click-free paths accept the same text."""

from __future__ import annotations

from typing import Any, Optional

import click

from guestcheck.quantities import parse_duration, parse_int


class WholeType(click.ParamType):
    """A whole number in plain ASCII digits: click's INT would also take "1_0", "+5" or Arabic-Indic digits."""

    name = "N"

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_int(str(value), low=self.low, high=self.high, max_digits=10)
        except ValueError:
            self.fail(f"{value!r}: must be a whole number from {self.low} to {self.high}", param, ctx)


class DurationType(click.ParamType):
    name = "SECONDS"

    def __init__(self, low: float, high: float, whole: bool = False, zero_is_off: bool = False) -> None:
        self.low, self.high, self.whole, self.zero_is_off = low, high, whole, zero_is_off

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> float:
        if isinstance(value, (int, float)):
            return value
        try:
            seconds = parse_duration(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)
        if self.zero_is_off and seconds == 0:
            return 0
        if not self.low <= seconds <= self.high or (self.whole and seconds != int(seconds)):
            kind = "whole seconds" if self.whole else "seconds"
            off = " (0: no limit)" if self.zero_is_off else ""
            self.fail(f"{value!r}: must be {kind} from {self.low:g} to {self.high:g}{off}", param, ctx)
        return int(seconds) if self.whole else seconds
