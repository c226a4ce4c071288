"""Session-wide settings for the test suite.

Tolerances live in ``tests/_helpers.py`` (``RTOL``/``ATOL`` per dtype) and are chosen for a
reason: rounding of a few hundred operations in that dtype; nothing is loosened to make a
test pass.

Hypothesis profiles (``HYPOTHESIS_PROFILE``):

* ``ci`` (default, what ``make test`` runs): 100 examples per property unless a test sets
  fewer, no deadline (first calls build torch kernels), and **derandomized**, so that a CI
  run is reproducible; a counterexample found once stays found.
* ``thorough``: 1000 random examples per property (``make test-slow`` style runs explore new
  inputs every time).

The fuzz suite (``tests/fuzz``: bad input to the public surface) shares each profile's
``max_examples`` among the classes of bad input of each of its 12 properties (at least 4 per
class; a class with few distinct inputs runs fewer).  ``ci`` runs about 1,300 cases (under
20 s on one core); ``thorough`` runs more than 10,000:
``HYPOTHESIS_PROFILE=thorough .venv/bin/python -m pytest -q -n 2 tests/fuzz`` (11,213 cases;
50 to 125 s on the shared 2-core machine, depending on its load).  The session summary prints the number of cases actually run
and checked (``tests/fuzz/conftest.py``; ``LDA_OPT_FUZZ_REPORT=PATH`` also writes it as JSON).
"""

import os

import torch
from hypothesis import HealthCheck, settings

# The suite runs on 2-core CI machines: one intra-op thread avoids oversubscription.
torch.set_num_threads(1)

settings.register_profile(
    "ci", max_examples=100, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
