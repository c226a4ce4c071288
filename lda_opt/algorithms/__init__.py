"""The descent algorithms: one per file, sharing :mod:`lda_opt.algorithms.base`."""

from .base import Result, Solver
from .baselines import AGD, GD
from .elda import ELDA
from .lda import LDA
from .meta_lda import MetaLDA

ALGORITHMS = {"lda": LDA, "meta-lda": MetaLDA, "elda": ELDA, "gd": GD, "agd": AGD}

__all__ = ["AGD", "ALGORITHMS", "ELDA", "GD", "LDA", "MetaLDA", "Result", "Solver"]
