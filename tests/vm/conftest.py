"""Fixtures for tests that boot a QEMU guest (marker ``vm``)."""

from __future__ import annotations

import pytest

from . import guest


@pytest.fixture(scope="session")
def vm_image() -> guest.Image:
    """The guest image, built on first use; skips when this machine cannot run guests."""
    reason = guest.skip_reason()
    if reason:
        pytest.skip(reason)
    return guest.ensure_image()
