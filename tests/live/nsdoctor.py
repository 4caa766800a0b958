"""`guestcheck doctor --json` inside a namespace, its findings picked by id prefix, and a finding's fix run
verbatim there, as a user would paste it."""

from __future__ import annotations

import json
import re

from tests.netns import Netns, guestcheck_in


def doctor(ns: Netns) -> dict:
    out = guestcheck_in(ns, "doctor", "--json", "--sample", "0")
    assert "Traceback" not in out.stderr, out.stderr
    return json.loads(out.stdout)


def findings(doc: dict, prefix: str) -> dict:
    return {f["id"]: f for f in doc["findings"] if f["id"].startswith(prefix)}


# A private /etc for the fix (ip netns exec gives each command its own mount namespace, slave to the host's).
PRIVATE_ETC = ('mount -t tmpfs gc-fix-etc /etc && mkdir -p /etc/udev/rules.d /etc/sysctl.d && sh -c "$1" '
               '&& for f in /etc/udev/rules.d/* /etc/sysctl.d/*; do [ -f "$f" ] && echo "== $f" && cat "$f"; done; '
               'exit 0')


def commands(fix: str) -> list[str]:
    """The fix split into commands: one per line, a heredoc (`<<'EOF'` to its `EOF` line) as one."""
    lines, out, i = fix.splitlines(), [], 0
    while i < len(lines):
        marker = re.search(r"<<'(\w+)'$", lines[i])
        if marker:
            end = lines.index(marker.group(1), i + 1)
            out.append("\n".join(lines[i:end + 1]))
            i = end + 1
        else:
            out.append(lines[i])
            i += 1
    return out


def run_fix(ns: Netns, finding: dict) -> list[str]:
    """Every command of the finding's fix, verbatim, in order; returns what the commands wrote to /etc."""
    assert finding["fix_on"] == "guest", finding
    written = []
    for command in commands(finding["fix"]):
        if "<<'" in command:
            out = ns.run(["sh", "-c", PRIVATE_ETC, "fix", command], check=False)
            assert out.returncode == 0 and "== /etc/" in out.stdout, (command, out.stdout, out.stderr)
            written.append(out.stdout)
            # the fix's effect on the kernel was made by the lines before; the heredoc only keeps it
            continue
        out = ns.run(["sh", "-c", command], check=False)
        assert out.returncode == 0, (command, out.stdout, out.stderr)
    return written
