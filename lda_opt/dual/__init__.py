"""Two-layer soft-thresholding CNN: primal (eq. 21) and its convex dual (eq. 22).

Implements dual-st-cnn-2024 (Xiong et al., IEEE TNNLS 2024): arrangement patterns and the
diagonal matrices Q^S (eqs. 5-12, 23), the convex program of Theorem 1 (eqs. 22, 24),
reconstruction of primal weights (eq. 47), a certified weak-duality lower bound, and the
``lda-opt duality`` report.  The corrections to the printed equations, and why the
measured duality gap is not zero, are in ``theory/dual_st_cnn.md``.
"""

from .bound import LowerBound, certified_lower_bound
from .dual import (
    DualProblem,
    DualSolution,
    TorchDualConfig,
    cone_violation,
    dual_objective,
    dual_output,
    solve_dual_cvxpy,
    solve_dual_torch,
)
from .patterns import ArrangementPatterns, q_diagonal, sample_patterns, st_pattern
from .primal import (
    INITS,
    OPTIMIZERS,
    PrimalConfig,
    PrimalRun,
    primal_objective,
    primal_output,
    soft_threshold,
    train_primal,
)
from .reconstruct import Reconstruction, neuron_mismatch, reconstruct_primal

__all__ = [
    "INITS",
    "OPTIMIZERS",
    "ArrangementPatterns",
    "DualProblem",
    "DualSolution",
    "LowerBound",
    "PrimalConfig",
    "PrimalRun",
    "Reconstruction",
    "TorchDualConfig",
    "certified_lower_bound",
    "cone_violation",
    "dual_objective",
    "dual_output",
    "neuron_mismatch",
    "primal_objective",
    "primal_output",
    "q_diagonal",
    "reconstruct_primal",
    "sample_patterns",
    "soft_threshold",
    "solve_dual_cvxpy",
    "solve_dual_torch",
    "st_pattern",
    "train_primal",
]
