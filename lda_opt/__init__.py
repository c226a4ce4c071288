"""lda_opt: provably convergent learned descent algorithms.

Solves ``min_x phi(x) = f(x) + kappa * ||q(x)||_{2,1}`` with LDA, meta-LDA and the
modified ELDA, and checks the convergence theorems on every run.
"""

__version__ = "0.1.0"
