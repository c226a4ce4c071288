"""Hypothesis profiles for the theorem tests: registered in ``tests/conftest.py``.

``ci`` (default): 100 examples per property, derandomized.  ``thorough``: 1000 random
examples; run with ``HYPOTHESIS_PROFILE=thorough pytest -m "slow or not slow"``.
Tests that only make sense at the thorough scale are marked ``@pytest.mark.slow``.
"""
