"""The fuzz harness reads the README's exit-code tables as they are written."""

from tests.fuzz.harness import changed_outside, documented_exit_codes


def test_every_command_has_its_documented_exit_codes():
    codes = documented_exit_codes()
    assert codes["doctor"] == codes["facts"] == codes["explain"] == {0, 1, 2, 3, 130}
    assert codes["tune"] == {0, 1, 2, 3, 130}
    assert codes["selftest"] == {0, 1, 2, *range(10, 20), 130}
    assert codes["firstboot"] == {0, 1}


def test_changes_outside_the_allowed_paths_are_named():
    before = {"etc/a": (1, 0o644, "x"), "var/lib/guestcheck/j": (1, 0o600, "y")}
    after = {"etc/a": (1, 0o644, "z"), "var/lib/guestcheck/j": (1, 0o600, "w"), "tmp/victim": (1, 0o644, "p")}
    assert changed_outside(before, after, ["var/lib/guestcheck/"]) == ["etc/a", "tmp/victim"]
