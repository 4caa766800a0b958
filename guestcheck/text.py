"""Text from outside (facts files, the kernel, config files) on its way to a shell or a terminal.

Interface names and other strings from facts are hostile until shown otherwise: `eth0;curl x|sh;#` is a
valid facts-file name, and a kernel name may hold an ESC. Two helpers, used by every check and renderer:
`shell_word` quotes a value for a printed command, `escape_control` makes a line safe for a terminal.
"""

from __future__ import annotations

import itertools
import re
import shlex

# what a shell, a udev rule, YAML and XML all take as one plain word: a rule for values in config snippets
# (addresses, sizes, `a=b`), wider than any name's on purpose; names are checked in guestcheck/names.py
_PLAIN = re.compile(r"[A-Za-z0-9_.:@%+,=-]+")
_SURROGATE = re.compile("[\ud800-\udfff]")


def shell_word(value: object) -> str:
    """`value` as one shell word that a POSIX shell (dash too) turns back into the same bytes; nothing in it runs.

    Printable text is quoted with shlex.quote (`shlex.split` gives it back whole). A character a terminal must
    not be sent (a control, a lone surrogate: a name's byte that is not UTF-8, as os.fsdecode keeps it) is
    spelled as octal bytes for printf in a command substitution, so the word stays printable ASCII and a pasted
    fix still names `n\\xff` byte for byte. A newline stays inside the quotes (a substitution would drop it).
    """
    text = str(value)
    if text.isprintable() and not _SURROGATE.search(text):
        return shlex.quote(text)
    parts = []
    for printable, run in itertools.groupby(text, key=_printable):
        chunk = "".join(run)
        if printable:
            parts.append(shlex.quote(chunk))
        else:
            octal = "".join(f"\\{byte:03o}" for byte in chunk.encode("utf-8", "surrogateescape"))
            parts.append(f'"$(printf \'{octal}\')"')
    return "".join(parts)


def _printable(ch: str) -> bool:
    """What shlex.quote may keep as it is: a newline too, which a substitution would drop."""
    return ch == "\n" or (ch.isprintable() and not _SURROGATE.match(ch))


def is_plain(value: str) -> bool:
    """Safe to print unquoted in any config syntax (udev, netplan, XML): no quotes, spaces or metacharacters."""
    return bool(_PLAIN.fullmatch(value))


def plain_or(value: str, placeholder: str) -> str:
    """The value where it is plain, else a placeholder the reader fills in (for config snippets, not commands)."""
    return value if is_plain(value) else placeholder


# What the JSON renderer must escape beyond json.dumps (escape_control escapes all of it and more): C0/C1
# controls and DEL, lone surrogates, and format characters that reorder or hide text (soft hyphen,
# zero-width and bidi controls, line/paragraph separators, BOM, tags): a terminal must show them, not obey them
_UNSAFE_BEYOND_C0 = ("\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f"
                     "\ufeff\ufff9-\ufffb\ud800-\udfff\U000e0000-\U000e007f")
UNSAFE = re.compile(f"[\x00-\x1f{_UNSAFE_BEYOND_C0}]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape_char(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def escape_control(text: object) -> str:
    """Control characters as visible escapes (`\\x1b`, `\\n`, `\\u202e`), so a terminal shows them, never obeys them.

    Every character Python does not call printable is escaped (all of UNSAFE, and unassigned code points and
    separators other than the plain space too); newlines are escaped as well: callers escape each value (or
    each line) and join lines themselves.
    """
    value = str(text)
    if value.isprintable():
        return value
    return "".join(ch if ch.isprintable() or ch == " " else _escape_char(ch) for ch in value)


# The only control sequences guestcheck writes on purpose, and only to a terminal: the colours of the human
# report, selftest's verdict and watch (SGR), watch's redraw (cursor home, erase below) and selftest's progress
# line (carriage return, erase line). Nothing else with an ESC in it reaches a terminal, and on a pipe or a file
# not even these.
TERMINAL_CODES = ("\033[0m", "\033[1;31m", "\033[31m", "\033[32m", "\033[33m", "\033[35m", "\033[36m",
                  "\033[H\033[J", "\r\033[K")
_TERMINAL_CODE = re.compile("|".join(re.escape(code) for code in sorted(TERMINAL_CODES, key=len, reverse=True)))
_OUTPUT_UNSAFE = re.compile(f"[\x00-\x08\x0b-\x1f{_UNSAFE_BEYOND_C0}]")  # UNSAFE but tab and newline


def escape_output(text: str, *, terminal: bool = False) -> str:
    """Text on its way to standard output or standard error, made safe line by line (the printing gate).

    A line with nothing UNSAFE in it (every line the renderers and the JSON writer make, which escape their
    values) passes as it is; a line with something UNSAFE is escaped with escape_control. Newlines and tabs
    are kept; on a `terminal`, so are the TERMINAL_CODES, which the renderers add after escaping their values.
    """
    if not _OUTPUT_UNSAFE.search(text):
        return text
    kept = _TERMINAL_CODE if terminal else None
    return "\n".join(_escape_line(line, kept) for line in text.split("\n"))


def _escape_line(line: str, kept: object) -> str:
    if not _OUTPUT_UNSAFE.search(line):
        return line
    if kept is None:
        return "\t".join(escape_control(part) for part in line.split("\t"))
    out, start = [], 0
    for match in kept.finditer(line):  # type: ignore[attr-defined]
        out += [_escape_line(line[start:match.start()], None), match.group()]
        start = match.end()
    out.append(_escape_line(line[start:], None))
    return "".join(out)
