"""Hostile profile directories: include graphs (cycles, diamonds, deep chains, missing includes), garbage
lines, huge numbers, NaN, odd file names, control characters, non-UTF-8 bytes, FIFOs.

Through `tune list`, `show`, `diff` and `apply --dry-run` as a user runs them (a process, a temporary
GUESTCHECK_ROOT with a fake /proc/sys): no traceback or internal error, an exit code from tune's README table,
errors on one line, no control character on the terminal, nothing written anywhere in the root, bounded time.
The loader itself gets more examples in-process: each file read at most once, errors one printable line.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Dict, Union

from hypothesis import given, settings
from hypothesis import strategies as st

from guestcheck.tune import profile as profile_module
from guestcheck.tune.profile import Loader, ProfileError
from tests.fuzz.harness import assert_clean_exit, changed_outside, run_guestcheck, tree
from tests.tune_fake import PROFILES, FakeKernel

SHIPPED = {p.stem for p in PROFILES.glob("*.conf")}

GOOD_NAMES = ["a", "b", "c", "d", "f.g", "h_i", "j-k"]
ODD_FILE_NAMES = [".hidden", "sp ace", "new\nline", "esc\x1b[2J", "é", "x" * 70, "-dash", b"\xff\xfe", b"ok\xc3"]
BOTTOMS = [*GOOD_NAMES, "nowhere"]  # what a chain or diamond ends in
INCLUDES = GOOD_NAMES * 3 + ["nowhere", "../a", "/etc/a", ".hidden", "a/b", "", " ", "x" * 70, "é", "c0", "y0"]
KEYS = ["net.core.somaxconn", "net.ipv4.tcp_rmem", "net.ipv4.tcp_fin_timeout", "vm.swappiness", "net/ipv4/tcp_sack",
        "net.core.default_qdisc", "net.ipv4.tcp_congestion_control", "kernel.nosuch", "net..x", "-net.a", "net.*",
        "a b", "net.ipv4.tcp_rmem\x1b", "é.x"]
ODD_NUMBERS = ["nan", "NaN", "inf", "-inf", "1e400", "9" * 400, "0x10", "1_0", "\u00b2", "\u0661\u0662", "", "-0",
               str(2**64), str(-2**63)]
ROOT_FILES_ALLOWED: list = []  # read-only commands: nothing under the root may change

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)  # control characters too
one_line = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Zl", "Zp"),  # ESC and friends, no line break
                                          blacklist_characters="\n\r\x0b\x0c\x1c\x1d\x1e\x85"), max_size=30)
numbers = st.one_of(st.integers(-2**70, 2**70).map(str), st.sampled_from(ODD_NUMBERS))
values = st.one_of(
    numbers,
    numbers.map(lambda n: ">" + n),
    st.lists(numbers, min_size=1, max_size=3).map(lambda ns: ">" + " ".join(ns)),
    st.sampled_from(["bbr", "fq", "4096 87380 16777216", "1\x9b", "1\u202e", "1\t2"]),
    texts,
)
guard_lines = st.one_of(
    numbers.map(lambda n: "min_ram_mb = " + n),
    st.sampled_from(["requires_guaranteed_memory = yes", "requires_guaranteed_memory = no",
                     "requires_guaranteed_memory = maybe", "colour = red"]),
)
garbage_lines = st.one_of(
    st.sampled_from(["[main]", "[sysctl]", "[guestcheck]", "[bogus]", "[main", "", ";c", "#", "=", "= 1",
                     "include = a, a, a", "summary = \x1b]0;owned\x07", "\x00", "\r", "\x0c", "\u2028"]),
    texts,
)


VALID_KEYS = KEYS[:7]
clean_values = st.one_of(
    st.integers(0, 2**31).map(str),
    st.integers(0, 2**31).map(lambda n: f">{n}"),
    st.sampled_from(["bbr", "fq", ">4096 87380 16777216", "4096 16384 4194304", "1024 65535"]),
)


@st.composite
def profile_text(draw, names=tuple(GOOD_NAMES)) -> bytes:
    """Half of them well formed (so planning is reached, and a hostile include or summary is what is
    tested), the other half with garbage lines, odd values and non-UTF-8 bytes dropped in."""
    hostile = draw(st.booleans())
    parts = ["[main]", "summary = " + draw(texts if hostile else one_line)]
    includes = draw(st.lists(st.sampled_from(INCLUDES), max_size=3) if hostile else
                    st.lists(st.sampled_from(names), max_size=3) if names else st.just([]))
    if includes:
        parts.append("include = " + ", ".join(includes))
    if draw(st.booleans()):
        parts += ["[guestcheck]", draw(guard_lines if hostile else st.sampled_from(
            ["requires_guaranteed_memory = yes", "min_ram_mb = 512", "requires_guaranteed_memory = no"]))]
    parts.append("[sysctl]")
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            parts.append("# reason: " + draw(texts if hostile else one_line))
        key = draw(st.sampled_from(KEYS if hostile else VALID_KEYS))
        parts.append(f"{key} = {draw(values if hostile else clean_values)}")
    if not hostile:
        return "\n".join(parts).encode("utf-8")
    for line in draw(st.lists(garbage_lines, max_size=2)):
        parts.insert(draw(st.integers(0, len(parts))), line)
    data = "\n".join(parts).encode("utf-8")
    if draw(st.integers(0, 4)) == 0:  # not UTF-8
        at = draw(st.integers(0, len(data)))
        data = data[:at] + b"\xff\xfe\xc3" + data[at:]
    return data


def _include_line(names: list) -> bytes:
    return ("[main]\ninclude = " + ", ".join(names) + "\n").encode()


@st.composite
def profile_dirs(draw) -> Dict[Union[str, bytes], Union[bytes, str]]:
    """file name (without .conf) -> content, or "fifo" / "zero" for special files."""
    files: Dict[Union[str, bytes], Union[bytes, str]] = {}
    names = draw(st.lists(st.sampled_from(GOOD_NAMES), min_size=1, max_size=5, unique=True))
    for i, name in enumerate(names):
        files[name] = draw(profile_text(names[:i]))  # clean ones include only earlier ones: no cycle by chance
    shape = draw(st.sampled_from(["plain", "chain", "diamond", "cycle"]))
    if shape == "chain":
        depth = draw(st.sampled_from([*range(1, 41), *[1500] * 3]))  # 1500 files: rare, slow to write
        for i in range(depth):
            files[f"c{i}"] = _include_line([f"c{i + 1}"])
        files[f"c{depth}"] = _include_line([draw(st.sampled_from(BOTTOMS))])
    elif shape == "diamond":
        levels = draw(st.integers(1, 40))
        for level in range(levels):
            for side in "ab":
                last = level == levels - 1
                below = [draw(st.sampled_from(BOTTOMS))] if last else [f"d{level + 1}a", f"d{level + 1}b"]
                files[f"d{level}{side}"] = _include_line(below) + b"[sysctl]\nnet.core.somaxconn = %d\n" % level
    elif shape == "cycle":
        length = draw(st.integers(1, 5))
        for i in range(length):
            files[f"y{i}"] = _include_line([f"y{(i + 1) % length}", draw(st.sampled_from(GOOD_NAMES))])
    for name in draw(st.lists(st.sampled_from(ODD_FILE_NAMES), max_size=2, unique=True)):
        files[name] = draw(profile_text())
    special = draw(st.sampled_from([None, "fifo", "zero"]))
    if special:
        files[special] = special
    return files


def write_dir(directory: Path, files: Dict[Union[str, bytes], Union[bytes, str]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    base = os.fsencode(directory)
    for name, content in files.items():
        path = os.path.join(base, os.fsencode(name) + b".conf")
        if content == "fifo":
            os.mkfifo(path)
        elif content == "zero":
            os.symlink(b"/dev/zero", path)
        else:
            with open(path, "wb") as f:
                f.write(content)  # type: ignore[arg-type]


def targets(files: Dict[Union[str, bytes], Union[bytes, str]]) -> list:
    """Names a user could type: every str file name (odd ones too) and a few that exist nowhere."""
    return [n for n in files if isinstance(n, str)] + ["nowhere", "../a", "/etc/passwd"]


def printable(text: str) -> bool:
    return all(c.isprintable() or c == "\n" for c in text)


def assert_tune_ran_cleanly(out, started: float) -> None:
    assert_clean_exit(out, "tune")
    assert out.returncode in (0, 3), (out.returncode, out.stderr)
    if out.returncode == 3:
        assert out.stderr.startswith("Error: ") and out.stderr.count("\n") == 1, out.stderr
    assert printable(out.stdout) and printable(out.stderr), (out.stdout[-500:], out.stderr)
    assert time.monotonic() - started < 20


SLOW = settings(max_examples=max(8, settings.default.max_examples // 5))  # ci: 8 examples, 4 processes each


@SLOW
@given(profile_dirs(), st.data())
def test_tune_read_only_commands_survive_any_profile_directory(files, data):
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        FakeKernel(base / "root")
        directory = base / "root/etc/guestcheck/profiles"
        write_dir(directory, files)
        before = tree(base)
        env = {"GUESTCHECK_ROOT": str(base / "root")}
        started = time.monotonic()
        out = run_guestcheck(["tune", "--profiles", str(directory), "list"], env=env, timeout=60)
        assert_tune_ran_cleanly(out, started)
        listed = {line.split(" ", 1)[0] for line in out.stdout.splitlines()}
        good = {n for n in files if isinstance(n, str) and profile_module.valid_name(n)}
        # a broken profile is reported on its line, the others are still listed; the shipped ones stay last in
        # the search path behind --profiles (a name in the directory shadows a shipped one)
        assert good <= listed and listed - good <= SHIPPED
        target = data.draw(st.sampled_from(sorted(good)) | st.sampled_from(targets(files)), label="profile")
        for command in (["show"], ["diff"], ["apply", "--dry-run"]):
            started = time.monotonic()
            out = run_guestcheck(["tune", "--profiles", str(directory), *command, target], env=env, timeout=60)
            assert_tune_ran_cleanly(out, started)
        assert changed_outside(before, tree(base), ROOT_FILES_ALLOWED) == []


@given(profile_dirs())
def test_the_loader_reads_each_file_once_and_fails_in_one_printable_line(files):
    with tempfile.TemporaryDirectory() as tmp:
        write_dir(Path(tmp), files)
        loader = Loader([tmp])
        reads: list = []
        real = profile_module._read

        def counting(path):
            reads.append(path)
            return real(path)

        profile_module._read = counting
        started = time.monotonic()
        try:
            for name in sorted(loader.available()):
                try:
                    loaded = loader.load(name)
                except ProfileError as e:
                    assert "\n" not in str(e) and len(str(e)) < 2000, str(e)
                else:
                    assert loaded.name == name and printable(loaded.summary)
                    assert all(printable(s.reason) and s.value.isprintable() for s in loaded.settings.values())
        finally:
            profile_module._read = real
        assert len(reads) == len(set(reads)) <= len(files)
        assert time.monotonic() - started < 5
