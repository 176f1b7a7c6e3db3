"""Shared pytest setup: hypothesis profiles and the backend fixture.

Profiles: ``default`` (the normal run, tuned to keep the engine tests near a minute on
two cores) and ``thorough`` (ten times the examples; ``HYPOTHESIS_PROFILE=thorough``).
Deadlines are off: the first example of a session may pay the numba cache load.
"""
import os
import sys

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, os.path.dirname(__file__))  # tests/helpers.py

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow],
                          print_blob=True)
settings.register_profile("thorough", deadline=None, max_examples=500,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session", params=["numpy", "numba"])
def backend(request):
    """Every backend that runs on a CPU; the numpy one is the reference."""
    return request.param


def _lm_backends():
    try:
        from spikelm.lm.backends import available
    except ImportError:  # the lm extra is missing: the lm tests skip, saying so
        return []
    return available()


@pytest.fixture(scope="session", params=_lm_backends())
def lm_backend(request):
    """Every converted-LM executor that runs here; ``numpy`` is the reference."""
    return request.param
