"""Session-wide settings for the test suite.

Tolerances live in ``tests/_helpers.py`` (``RTOL``/``ATOL`` per dtype) and are chosen for a
reason: rounding of a few hundred operations in that dtype; nothing is loosened to make a
test pass.
"""

import torch

# The suite runs on 2-core CI machines: one intra-op thread avoids oversubscription.
torch.set_num_threads(1)
