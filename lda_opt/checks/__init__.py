r"""Invariant checker: the convergence theorems, verified on a recorded run.

:func:`check` (exported as ``lda_opt.check``) takes a :class:`~lda_opt.algorithms.Result`
(or a :class:`~lda_opt.trace.Trace`), the :class:`~lda_opt.Problem` and the solver, and
returns a :class:`Report`.  :func:`check_trace` is the core: it needs only the trace, the
solver, a constants dict, the number of groups ``m`` and the weight ``kappa``, so
``lda-opt check DIR`` uses it without rebuilding the problem.  A violated inequality never
raises: each becomes a :class:`Violation` that names the inequality, its paper equation, the
iteration, the sample and the margin.  Bad arguments raise ``ValueError``.

The checker is a generic engine.  What an algorithm guarantees -- its sufficient-decrease
inequalities with their equation labels, whether descent holds, its line-search bound, its
segment and total bounds -- is declared beside its step by its ``theory()``
(:class:`~lda_opt.algorithms.theory.Theory`, e.g. :meth:`lda_opt.ELDA.theory`); an
inequality that the step also tests is the same function in both.  Modules:
:mod:`~lda_opt.checks.report` (:class:`Violation`, :class:`Report`, the tolerance),
:mod:`~lda_opt.checks.engine` (:func:`check`, :func:`check_trace`, the per-sample loop),
:mod:`~lda_opt.checks.rows` (the rows every algorithm shares),
:mod:`~lda_opt.checks.segments` (line-search, segment and total bounds) and
:mod:`~lda_opt.checks.constants` (:func:`estimate_constants`).

Notation (fields of :mod:`lda_opt.trace`): trace row ``k`` of a sample is the iteration
``x_k -> x_{k+1}`` at level ``eps_k``; ``phi_eps = phi_{eps_k}(x_{k+1})``,
``phi_eps_prev = phi_{eps_k}(x_k)``, ``dist = ||x_{k+1} - x_k||``, ``grad_norm_prev =
||grad phi_{eps_k}(x_k)||``, ``grad_norm = ||grad phi_{eps_k}(x_{k+1})||``, ``step`` the
accepted step, ``linesearch`` the number of ``phi_eps(v)`` evaluations.  ``gap(eps)`` is the
smoothing gap (:func:`lda_opt.bounds.smoothing_gap`): ``kappa m eps/2`` (Huber) or
``kappa m eps`` (Sqrt; meta-LDA prints ``eps``, corrected in ``theory/meta_lda.md``).

What is verified, per sample (the name in brackets is :attr:`Violation.check`; the
algorithm-specific inequalities as the library's solvers declare them):

``[descent]``  ``phi_eps(x_{k+1}) <= phi_eps(x_k)``: LDA (21), ELDA (4.23), meta-LDA (A11),
  for every solver whose rule guarantees it (backtracking; a fixed LDA/GD step only when
  ``alpha L_eps < 2`` with the constants; never for AGD with ``linesearch=False``).

``[sufficient-decrease]``  the acceptance inequality of the branch taken.  ELDA u: (4.9a)
  ``grad_norm_prev <= dist/eta1`` and (4.9b) ``dphi <= -(eta2/2) dist^2``; ELDA v: (4.11)
  ``dphi <= -(eta3/eps) dist^2``.  meta-LDA u: (A6) ``grad_norm_prev <= a dist`` and
  ``dphi <= -dist^2/a``; v: (A7).  LDA/GD with backtracking (Sec. 4.3.3), v:
  ``dphi <= -c dist^2``; u: ``v`` is not stored, but ``||v - x_k|| = alpha_k ||grad
  phi_eps(x_k)||`` (``v = x_k - alpha_k grad phi_eps(x_k)`` with the accepted ``alpha_k``,
  which ``u`` also uses), so ``phi_eps(u) <= phi_eps(v) <= phi_eps(x_k) - c (step
  grad_norm_prev)^2`` (LDA (15)).  AGD: ``dphi <= -c dist^2``.  LDA/GD with a fixed step
  (needs constants): the descent lemma (LDA (19)-(20) with the exact inner product)
  ``dphi <= (-1/alpha + L_eps/2) (alpha grad_norm_prev)^2``, for either branch by (15).

``[smoothing-sandwich]``  ``phi_eps <= phi <= phi_eps + gap(eps_k)`` at ``x_{k+1}``: LDA (6),
  ELDA (4.5), meta-LDA (5) corrected.

``[reduction-rule]``  ``eps_{k+1} = gamma eps_k`` iff ``grad_norm < sigma gamma eps_k`` (LDA
  Alg. 1 line 7, ELDA and meta-LDA Alg. 1 line 15); ``eps`` of row ``k+1`` is ``eps_next``
  of row ``k``; without a reduction ``phi_eps_prev`` of row ``k+1`` is ``phi_eps`` of row
  ``k``; a sample that did not move keeps ``eps``.

``[monotone-quantity]``  across a reduction ``phi_{eps_{k+1}}(x_{k+1}) + gap(eps_{k+1}) <=
  phi_{eps_k}(x_{k+1}) + gap(eps_k)`` (the left side is the next row's ``phi_eps_prev``, or
  the result's final ``phi_eps`` after the last row): LDA (24) / Lemma 3.4, ELDA (4.30),
  meta-LDA (A19) / Lemma A4 corrected.  With descent, also ``phi(x_{k+1}) <= phi_{eps_0}(x_0)
  + gap(eps_0)`` (the level set of LDA Thm 3.6 / ELDA Thm 4.6 / meta-LDA (A23)).

``[termination]``  ``sigma eps_{k+1} >= eps_tol`` on every row but a converged sample's last
  (the algorithms stop at the first ``sigma eps < eps_tol``); at most ``max_iter`` rows;
  ``max_iter`` and ``linesearch_cap`` reasons agree with the trace.

``[certificate]``  reason ``converged``: the last row has ``grad_norm < sigma gamma eps``,
  ``eps_next = gamma eps`` and ``sigma eps_next < eps_tol`` (LDA Thm 3.6, ELDA (4.31),
  meta-LDA Thm A5), and the number of reductions is exactly
  :func:`~lda_opt.bounds.num_reductions`.

With constants ``L_f, M, L_g`` (supplied, or from :func:`estimate_constants`); ``L_eps`` is
:func:`~lda_opt.bounds.lipschitz_huber` or the sharp :func:`~lda_opt.bounds.lipschitz_sqrt`:

``[linesearch-bound]``  ``phi_eps(v)`` evaluations ``<= l_max`` and the accepted v-step
  ``>=`` its lower bound: ELDA (4.13)/(4.20) corrected (:func:`~lda_opt.bounds.elda_lmax`,
  :func:`~lda_opt.bounds.elda_min_step`); meta-LDA Lemma A3 and LDA/GD backtracking (the
  same argument with ``a = 1/c``, ``theory/lda.md``):
  :func:`~lda_opt.bounds.metalda_max_backtracks` ``+ 1``,
  :func:`~lda_opt.bounds.metalda_min_step` (sharp).  A search that hit its cap is a
  violation when ``max_linesearch >= l_max``.  Not for AGD (no bound) or a fixed step.  A
  warm-started LDA/GD search is bounded from its first trial ``min(alpha, alpha_{k-1}/shrink)``.
  Rows whose search cannot be resolved in floating point (the largest margin ``T g^2/4`` by
  which an acceptable step satisfies the rule is below the rounding of ``phi_eps``) are
  listed in :attr:`Report.rounding` instead (``theory/README.md``, "Floating point").

``[segment-bound]``  segment ``l`` (iterations ``k_l+1 .. k_{l+1}``, ``k_0 = -1``; an
  unfinished last segment counts its iterations so far, which the same bound limits):
  ELDA (4.27) with :func:`~lda_opt.bounds.elda_segment_constants`; meta-LDA and
  backtracking LDA/GD: ``1 +`` Lemma A3 (:func:`~lda_opt.bounds.metalda_fixed_eps_iterations`,
  ``delta = L_eps * metalda_min_step``) started at the segment's first ``phi_eps``; fixed-step
  LDA/GD: ``1 +`` Lemma 3.3 with ``delta1 = delta2 = 1/(alpha L_eps)`` and Thm 3.5 (27)-(28)
  corrected with ``delta1 = 1/(alpha L_{eps_0})``, ``delta2 = 1/(alpha L_{eps_min})``, when
  ``alpha L_eps < 1`` (Thm 3.5's range; otherwise noted in :attr:`Report.skipped`).

``[total-bound]``  iterations up to the last reduction ``<=`` the sum of the segment bounds:
  ELDA (4.28) (finite sum, and the closed form in ``eps_tol`` when converged); fixed-step
  LDA/GD (29) likewise; meta-LDA and backtracking LDA/GD: the sum of ``1 +`` Lemma A3 with
  each segment's start bounded a priori by the monotone quantity,
  ``phi_{eps_l}(x_{k_l+1}) <= phi_{eps_0}(x_0) + gap(eps_0) - gap(eps_l)``.

Tolerance.  ``lhs <= rhs`` passes when ``lhs - rhs <= rtol * scale`` with ``scale`` the
largest magnitude of the terms compared and ``rtol`` from :data:`RTOL` by the run's dtype:
256 machine epsilons, the rounding of sums of up to a few thousand group norms (pairwise
summation) and of the products in the thresholds.  It absorbs rounding only; no inequality
gets slack.  Counts and steps (``linesearch``, ``l_max``, segment lengths) are compared
exactly.
"""

from __future__ import annotations

from .constants import estimate_constants
from .engine import check, check_trace
from .report import CHECKS, RTOL, Report, Violation

__all__ = ["CHECKS", "RTOL", "Report", "Violation", "check", "check_trace", "estimate_constants"]
