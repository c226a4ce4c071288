"""The descent algorithms: one per file, sharing :mod:`lda_opt.algorithms.base`."""

from .baselines import AGD, GD
from .base import Result, Solver
from .elda import ELDA
from .lda import LDA
from .meta_lda import MetaLDA

ALGORITHMS = {"lda": LDA, "meta-lda": MetaLDA, "elda": ELDA, "gd": GD, "agd": AGD}

__all__ = ["LDA", "MetaLDA", "ELDA", "GD", "AGD", "Solver", "Result", "ALGORITHMS"]
