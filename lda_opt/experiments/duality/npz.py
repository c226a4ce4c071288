"""The duality experiment, the audit: every reported objective recomputed from
``duality.npz`` alone.  Overview: :mod:`lda_opt.experiments.duality`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...dual.dual import (
    DualProblem,
    dual_objective,
)
from ...dual.patterns import q_diagonal, st_pattern
from ...dual.primal import primal_objective


def recompute_from_npz(path: str | Path) -> dict:
    """Recompute every reported objective from ``duality.npz`` alone (numpy only)."""
    with np.load(path) as z:
        Y, x, lam, beta = z["Y"], z["x"], float(z["lam"]), float(z["beta"])
        Q, W, Wp = z["Q"], z["W"], z["Wp"]
        r = np.sum((Y @ (Wp - W).T) * Q.T, axis=1) - x
        dual = float(r @ r + 2 * beta * (np.linalg.norm(W, axis=1).sum()
                                         + np.linalg.norm(Wp, axis=1).sum()))
        problem = DualProblem(Y=Y, x=x, q=Q, sign=z["S"], beta=beta)

        def dual_on(prefix):  # (22) on generators u_bar with solution W, Wp
            ub = z[f"{prefix}_u_bar"]
            p = DualProblem(Y=Y, x=x, q=q_diagonal(Y, ub, lam), sign=st_pattern(Y, ub, lam),
                            beta=beta)
            return dual_objective(p, z[f"{prefix}_W"], z[f"{prefix}_Wp"])

        extra = {}
        if z["point_u_bar"].shape[0] > 0:
            extra["dual_objective_at_primal_point"] = dual_on("point")
        if "aug_u_bar" in z.files:
            extra["dual_with_primal_filters"] = dual_on("aug")
        extra["u_scale_sweep"] = {
            int(k[5:-6]): dual_on(k[:-6]) for k in z.files
            if k.startswith("sweep") and k.endswith("_u_bar")}
        return extra | {
            "primal_best": primal_objective(Y, x, z["U_primal"], z["v_primal"], lam, beta),
            "primal_at_reconstruction": primal_objective(Y, x, z["U_rec"], z["v_rec"], lam, beta),
            "primal_refined_from_reconstruction": primal_objective(
                Y, x, z["U_refined"], z["v_refined"], lam, beta),
            "dual": dual,
            "dual_via_module": dual_objective(problem, W, Wp),
            "runs_best": [primal_objective(Y, x, U, v, lam, beta)
                          for U, v in zip(z["U_runs"], z["v_runs"])],
            "patterns_recomputed_equal": bool(np.array_equal(
                st_pattern(Y, z["u_bar"], lam), z["S"])),
        }


