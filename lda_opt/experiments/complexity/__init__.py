r"""The iteration-complexity experiment: measured ``N(eps_tol)`` against the theorems' bounds.

For one algorithm (LDA, MetaLDA or ELDA) and one problem (TV-MRI or a small smoothed-ReLU
CNN on MRI) the experiment

1. runs the solver down to the smallest ``eps_tol`` of a grid of at least 6 values spanning
   at least 2 decades, and reads off the number of iterations ``N(eps_tol)`` at every grid
   value and the segment lengths ``t_{l+1} - t_l`` from the :class:`~lda_opt.trace.Trace`
   (a reduction happens at the rows where ``eps_next < eps``);
2. fits ``b`` in ``N ~ eps_tol^-b`` by least squares in log-log,

   .. math:: \log N_i = \log c + b\,\log(1/\varepsilon_{tol,i}),

   with a seeded pairs-bootstrap 95% confidence interval;
3. evaluates the certified upper bounds of :mod:`lda_opt.bounds` on the same grid: ELDA
   Thm 4.6, eqs. (4.27)-(4.28); LDA with the backtracking of Sec. 4.3.3 and MetaLDA: one plus
   the fixed-eps bound of meta-LDA Lemma A3 per segment, summed over the segments (the argument
   ``theory/lda.md`` gives for the backtracking rule, because Thm 3.5 needs step sizes in
   ``[1/(delta1 L_eps), 1/(delta2 L_eps)]``, which backtracking does not enforce).  For LDA
   the printed Thm 3.5 curve (27)-(29) (corrected, ``delta1 = delta2 = 2``) is added as a
   *reference*, labelled as not applying to the backtracking run.

Reading ``N`` off one run.  The iterates do not depend on ``eps_tol``: a run with tolerance
``eps_tol'`` performs exactly the iterations of the run with the smallest tolerance until the
first iteration whose reduction gives ``sigma eps_{k+1} < eps_tol'`` (the stopping rule of
:meth:`~lda_opt.algorithms.Solver.iterate`), and stops there.  So ``N(eps_tol')`` is that
iteration's index plus one.  ``separate_runs=True`` runs the solver once per grid value
instead (the test suite checks that both give the same counts).

Constants (``L_f, M, L_g, m``) come from :func:`lda_opt.checks.estimate_constants`: ``L_f = 1``
for MRI (``||P F|| <= 1``), ``M = sqrt(8), L_g = 0`` for finite differences, and
:func:`lda_opt.bounds.cnn_constants` for the CNN; all certified.  ``phi* = 0`` (least squares
plus a norm is non-negative) and ``phi(x0)`` is evaluated exactly.

Entry point: :func:`~lda_opt.experiments.complexity.run_complexity`; CLI ``lda-opt complexity``; side-by-side benchmark
``benchmarks/complexity.py``.  Catalogue: ``theory/lda.md``, ``theory/elda.md``,
``theory/meta_lda.md``.

Modules, one stage each: :mod:`.config` (the configuration and the problem), :mod:`.fit`
(reading the trace, the exponent fit and its bootstrap), :mod:`.curves` (the bounds),
:mod:`.run` (the experiment), :mod:`.plot` (the figure).
"""

from __future__ import annotations

from .config import ALGORITHMS, DEFAULT_WEIGHTS, PROBLEMS, ComplexityConfig, build_problem
from .curves import bound_curves
from .fit import fit_exponent, iterations_at, segment_lengths
from .plot import plot_complexity
from .run import run_complexity

__all__ = [
    "ALGORITHMS",
    "DEFAULT_WEIGHTS",
    "PROBLEMS",
    "ComplexityConfig",
    "bound_curves",
    "build_problem",
    "fit_exponent",
    "iterations_at",
    "plot_complexity",
    "run_complexity",
    "segment_lengths",
]
