"""lda_opt: provably convergent learned descent algorithms.

Solves ``min_x phi(x) = f(x) + kappa * ||q(x)||_{2,1}`` with LDA, meta-LDA and the
modified ELDA, and checks the convergence theorems on every run.

>>> import lda_opt as lo
>>> sorted(lo.ALGORITHMS)
['agd', 'elda', 'gd', 'lda', 'meta-lda']
"""

__version__ = "0.1.0"

from . import features, metrics, operators, smoothing
from .algorithms import AGD, ALGORITHMS, ELDA, GD, LDA, MetaLDA, Result, Solver
from .checks import Report, Violation, check
from .problem import LeastSquares, Problem
from .smoothing import Huber, Sqrt
from .trace import Trace

__all__ = [
    "AGD",
    "ALGORITHMS",
    "ELDA",
    "GD",
    "LDA",
    "Huber",
    "LeastSquares",
    "MetaLDA",
    "Problem",
    "Report",
    "Result",
    "Solver",
    "Sqrt",
    "Trace",
    "Violation",
    "check",
    "features",
    "metrics",
    "operators",
    "smoothing",
]
