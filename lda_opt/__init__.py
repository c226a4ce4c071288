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
from .problem import LeastSquares, Problem, SmoothedObjective
from .smoothing import Huber, Sqrt
from .trace import Trace

#: subpackages and modules reachable as ``lo.NAME`` without an explicit import; each is
#: imported on first access (PEP 562), so ``import lda_opt`` stays light (no safetensors,
#: scikit-image or matplotlib until they are used)
_LAZY = ("bounds", "data", "dual", "experiments", "instances", "learning", "nets", "tasks", "testing")


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module  # later lookups skip this hook
        return module
    raise AttributeError(f"module 'lda_opt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
    "SmoothedObjective",
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
