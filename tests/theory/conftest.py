"""Hypothesis profiles for the theorem tests.

``ci`` (default): 100 examples per property, no deadline (first calls build torch kernels).
``thorough``: 1000 examples; run with ``HYPOTHESIS_PROFILE=thorough pytest -m "slow or not slow"``.
Tests that only make sense at the thorough scale are marked ``@pytest.mark.slow``.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
