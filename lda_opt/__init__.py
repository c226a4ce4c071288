"""lda_opt: provably convergent learned descent algorithms.

Solves ``min_x phi(x) = f(x) + kappa * ||q(x)||_{2,1}`` with LDA, meta-LDA and the
modified ELDA, and checks the convergence theorems on every run.

>>> import lda_opt as lo
>>> sorted(lo.ALGORITHMS)
['agd', 'elda', 'gd', 'lda', 'meta-lda']
"""

__version__ = "0.1.0"

from . import features, metrics, operators, smoothing  # noqa: E402
from .algorithms import AGD, ALGORITHMS, ELDA, GD, LDA, MetaLDA, Result, Solver  # noqa: E402
from .problem import LeastSquares, Problem  # noqa: E402
from .smoothing import Huber, Sqrt  # noqa: E402
from .trace import Trace  # noqa: E402
from .checks import Report, Violation, check  # noqa: E402

__all__ = [
    "operators", "features", "smoothing", "metrics", "LeastSquares", "Problem", "Huber", "Sqrt",
    "LDA", "MetaLDA", "ELDA", "GD", "AGD", "ALGORITHMS", "Solver", "Result", "Trace",
    "Report", "Violation", "check",
]
