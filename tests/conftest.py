"""Shared pytest setup: markers are declared in pyproject.toml; hypothesis profiles are set here.

CI runs every property test derandomized (a fixed seed): the same examples every run, so a red CI is a
real regression, never a dice roll. Before a release, run the long random search instead:

    HYPOTHESIS_PROFILE=release /usr/bin/python3 -m pytest -q tests/fuzz
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=40, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("release", derandomize=False, deadline=None, max_examples=2000, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
