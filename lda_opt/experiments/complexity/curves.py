"""The iteration-complexity experiment, stage 3: the certified bounds of :mod:`lda_opt.bounds`
for the run's solver, as functions of ``eps_tol`` and of the segment index.
Overview: :mod:`lda_opt.experiments.complexity`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ... import bounds


# ---------------------------------------------------------------------------------------
# the bounds
# ---------------------------------------------------------------------------------------
def bound_curves(
    solver, constants: dict[str, Any], phi_x0: float, phi_star: float, kappa: float
) -> dict[str, Callable]:
    """Certified bounds of ``solver`` from :mod:`lda_opt.bounds`, as functions, from the
    solver's declared curves (``solver.theory().curves``, a
    :class:`~lda_opt.algorithms.theory.BoundCurves`):

    * ``segment(l)``: bound on the length of segment ``l`` (``t_{l+1} - t_l``);
    * ``total(eps_tol)``: bound on ``N(eps_tol)``: ELDA's closed form (4.28); for LDA and
      MetaLDA the sum of ``segment(l)`` over ``l < num_reductions(eps_tol)``;
    * ``total_sum(eps_tol)``: the finite sum of ``segment(l)`` (all algorithms);
    * for LDA also ``reference_segment(l)`` / ``reference_total(eps_tol)``: Thm 3.5 (27) and
      (29) corrected, with ``delta1 = delta2 = 2`` -- valid only for step sizes in Thm 3.5's
      range, *not* for the backtracking run; shown for comparison.

    Also ``equation`` / ``reference_equation`` (strings) and ``constants`` (the bound's
    constants).  The LDA/MetaLDA segment bound is ``1 +``
    :func:`~lda_opt.bounds.metalda_fixed_eps_iterations` at ``eps_l = eps0 gamma^l``,
    ``eta_l = sigma gamma eps_l``, with ``delta = L_l *``
    :func:`~lda_opt.bounds.metalda_min_step` (sharp threshold; ``a = 1/c``, ``rho = shrink``
    for LDA) and the numerator ``phi(x0) + kappa m eps0 - phi*``, which bounds
    ``phi_{eps_l}(x_{t_l+1}) - phi* + kappa m eps_l`` by the monotone chain (LDA (24), meta-LDA
    Lemma A4 corrected) (:class:`~lda_opt.algorithms.meta_lda.LemmaA3`).  A solver that
    declares no curves raises ``ValueError``.
    """
    from ...algorithms.theory import BoundContext
    from ...checks.engine import theory_of

    curves = theory_of(solver).curves
    if curves is None:
        raise ValueError(
            f"solver {getattr(solver, 'name', type(solver).__name__)!r} declares no "
            "iteration-complexity bound"
        )
    L_f, M, L_g, m = (
        float(constants["L_f"]),
        float(constants["M"]),
        float(constants["L_g"]),
        int(constants["m"]),
    )
    kind = solver.smoothing.name
    ctx = BoundContext(
        L_f=L_f, M=M, L_g=L_g, m=m, kappa=kappa, phi_x0=phi_x0, phi_star=phi_star,
        eps0=float(solver.eps0), sigma=float(solver.sigma), gamma=float(solver.gamma),
        eps_tol=float(solver.eps_tol),
        L=lambda eps: bounds.lipschitz_eps(kind, L_f, L_g, M, m, eps, kappa),
        gap=lambda eps: bounds.smoothing_gap(kind, m, eps, kappa),
    )
    return curves(ctx).as_dict()


def _bound_curve(curves: dict[str, Any], tols: list[float], n: int = 80) -> dict[str, Any]:
    """The total bound (and reference) on ``n`` log-spaced ``eps_tol`` over the grid's range."""
    fine = [float(v) for v in np.geomspace(max(tols), min(tols), n)]
    out: dict[str, Any] = {"eps_tol": fine, "bound": [curves["total"](t) for t in fine]}
    out["reference"] = (
        [curves["reference_total"](t) for t in fine] if "reference_total" in curves else None
    )
    return out
