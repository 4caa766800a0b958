"""The printing gate: everything guestcheck writes to standard output and standard error passes one escaper.

Names, aliases, container names, file paths and peers' text reach messages by many roads: a renderer, a
`say()`, a click error, a refusal built deep in the tuner, an exception's text. Escaping each of them where it
is printed leaves the next new road open, so the executable (guestcheck/entry.py) puts these streams in place of
sys.stdout and sys.stderr before anything runs: click.echo, print, click's own error messages and direct writes
all go through `text.escape_output`, which escapes every line that holds a control character. On a terminal the
renderers' colour and redraw codes (text.TERMINAL_CODES) pass; on a pipe or a file nothing does.
"""

from __future__ import annotations

import sys
from typing import Any, Iterable, TextIO

from guestcheck.text import escape_output


class EscapingStream:
    """A text stream that escapes what is written to it, then writes it to `inner` at once (no buffer of its own).

    It has no `buffer` attribute, so nothing (click looks for one) can write past it as bytes.
    """

    def __init__(self, inner: TextIO, *, terminal_codes: bool) -> None:
        self.inner = inner
        self.terminal_codes = terminal_codes

    def write(self, text: str) -> int:
        if not isinstance(text, str):  # click probes a stream with b"": a text stream refuses bytes
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self.inner.write(escape_output(text, terminal=self.terminal_codes))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding, errors, closed...: the inner's
        if name == "buffer":
            raise AttributeError(name)
        return getattr(self.inner, name)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def escape_standard_streams() -> None:
    """Put the gate in front of sys.stdout and sys.stderr (once; a second call changes nothing).

    Only a terminal may carry the renderers' codes: standard output's colours and redraws, and on standard
    error the line doctor's --sample shows while it waits (erased with the same codes selftest's progress uses).
    """
    if sys.stdout is not None and not isinstance(sys.stdout, EscapingStream):
        sys.stdout = EscapingStream(sys.stdout, terminal_codes=_is_terminal(sys.stdout))
    if sys.stderr is not None and not isinstance(sys.stderr, EscapingStream):
        sys.stderr = EscapingStream(sys.stderr, terminal_codes=_is_terminal(sys.stderr))
