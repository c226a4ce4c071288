"""Experiment code: the studies the papers' figures and tables come from, built on the library
below them (solvers, bounds, checks, learning systems), one stage per function.

* :mod:`lda_opt.experiments.complexity` -- measured iteration complexity ``N(eps_tol)``
  against the theorems' bounds (``lda-opt complexity``, ``benchmarks/complexity.py``);
* :mod:`lda_opt.experiments.duality` -- the convex dual of the two-layer soft-thresholding
  CNN against its primal training (``lda-opt duality``);
* :mod:`lda_opt.experiments.learning` -- train-or-reuse, held-out evaluation, the TV
  references and result tables of the learning benchmarks (``benchmarks/block_cs.py``, ...);
* :mod:`lda_opt.experiments.compare` -- learned network against TV, side by side
  (``python -m lda_opt.experiments.compare``, ``make demo``).

Submodules are imported on use (nothing here is imported with ``lda_opt``).
"""
