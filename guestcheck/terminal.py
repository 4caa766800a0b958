"""Text from outside (profiles, file names, kernel values) made safe to print on a terminal.

An escape sequence (ESC, CSI as C1 0x9b), a carriage return or a bidirectional override hidden in a
profile's summary could rewrite what the admin sees, or make a line read as something else. Every
character Python does not call printable is shown as its escape instead, so the text stays visible
and one line.
"""

from __future__ import annotations


def escape_controls(text: str) -> str:
    """`text` with every non-printable character (C0, DEL, C1, format and line/paragraph separators,
    tab included) replaced by its Python escape: "a\\x1b[2Jb" prints as a\\x1b[2Jb, not as a cleared screen."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
