"""The duality experiment, the diagnostics: why the gap is not zero (theory/dual_st_cnn.md),
every number recomputable from ``duality.npz``.  Overview: :mod:`lda_opt.experiments.duality`."""

from __future__ import annotations

import numpy as np

from ...dual.dual import (
    DualProblem,
    dual_objective,
    dual_output,
    solve_dual_torch,
)
from ...dual.patterns import q_diagonal, sample_patterns, st_pattern
from ...dual.primal import primal_output


def _honesty(config, Y, x, pats, problem, ref, rec, U_p, v_p, primal_best, *, progress):
    """Numbers that explain a non-zero gap from the mathematics (theory/dual_st_cnn.md).

    1. Theorem 2's rescaling ``(eps u, v / eps)`` leaves (21) unchanged only if ST were
       positively homogeneous; ``tau(eps a)_lambda = eps tau(a)_{lambda/eps}`` is not.
    2. Every primal point is a feasible point of (22) whose generators are its own filters:
       ``w'_k = v_k u_k`` (``v_k > 0``) or ``w_k = -v_k u_k`` (``v_k < 0``), with
       ``Q^S(u_k) Y (v_k u_k) = v_k tau(Y u_k)_lambda``.  Its value (22) is
       ``p(U, v) - beta sum_k (||u_k|| - |v_k|)^2`` (AM-GM), so
       ``d(G + filters) <= dual_objective_at_primal_point <= p(U, v)`` by construction.
    3. The value of (22) depends on the magnitudes of the sampled ``u-bar`` through
       ``Q_ii = 1 - lambda/|y_i^T u-bar|``, not only on their patterns.
    4. The reconstruction (47) keeps the regulariser of (22) exactly; its data term is the
       real ST network, which differs from the dual network by the neuron mismatches.
    """
    lam, beta = config.primal.lam, config.primal.beta
    out: dict = {}
    arrays: dict = {}
    out["rescaling"] = _rescaling(Y, x, U_p, v_p, lam)
    point, own, Uk = _primal_point(Y, x, U_p, v_p, lam, beta, arrays)
    out["primal_point_in_dual"] = point
    if own is not None:
        out["dual_with_primal_filters"] = _dual_with_primal_filters(
            config, Y, x, pats, Uk, arrays, progress=progress)
    sweep = _u_scale_sweep(config, Y, x, pats, ref, arrays, progress=progress)
    out["u_scale_sweep"] = sorted(sweep, key=lambda e: e["u_scale"])
    out["reconstruction_split"] = _reconstruction_split(Y, x, pats, ref, rec, lam)
    out["explanation"] = _explanation(out, sweep, primal_best)
    return out, arrays


def _rescaling(Y, x, U_p, v_p, lam) -> dict:
    """1. Theorem 2 (rescaling) fails for lam > 0: the data term of (21) at ``(eps U, v/eps)``."""
    data_best = float(np.sum((primal_output(Y, U_p, v_p, lam) - x) ** 2))
    return {
        "note": "data term of (21) at (eps U, v / eps); Theorem 2 assumes it equals eps = 1",
        "data_term_eps_1": data_best,
        **{f"data_term_eps_{e:g}": float(np.sum((primal_output(Y, e * U_p, v_p / e, lam)
                                                  - x) ** 2)) for e in (0.5, 2.0)},
    }


def _primal_point(Y, x, U_p, v_p, lam, beta, arrays: dict):
    """2. The primal point as a feasible point of (22) on its own filters.

    Returns the JSON entry, the problem (22) on the active filters (None if there is none)
    and those filters ``Uk``; adds ``point_*`` to ``arrays``.
    """
    norms_u = np.linalg.norm(U_p, axis=0)
    keep = np.any(st_pattern(Y, U_p.T, lam) != 0, axis=1)  # filters with a non-zero pattern
    Uk, vk = U_p[:, keep].T, v_p[keep]
    Wp_pt = np.where(vk[:, None] > 0, vk[:, None] * Uk, 0.0)
    W_pt = np.where(vk[:, None] < 0, -vk[:, None] * Uk, 0.0)
    own = DualProblem(Y=Y, x=x, q=q_diagonal(Y, Uk, lam), sign=st_pattern(Y, Uk, lam),
                      beta=beta) if keep.any() else None
    dual_at_point = dual_objective(own, W_pt, Wp_pt) if own is not None else float(x @ x)
    dead = ~keep
    entry = {
        "n_active_filters": int(keep.sum()),
        "dual_objective_at_primal_point": dual_at_point,
        "balance_slack": float(beta * np.sum((norms_u[keep] - np.abs(v_p[keep])) ** 2)),
        "dead_filter_regulariser": float(beta * np.sum(norms_u[dead] ** 2 + v_p[dead] ** 2)),
        "max_abs_log_balance": float(np.max(np.abs(np.log(
            norms_u[keep] / np.abs(v_p[keep]))), initial=0.0)) if keep.any() else 0.0,
    }
    arrays["point_u_bar"] = Uk
    arrays["point_W"], arrays["point_Wp"] = W_pt, Wp_pt
    return entry, own, Uk


def _dual_with_primal_filters(config, Y, x, pats, Uk, arrays: dict, *, progress) -> dict:
    """2 (cont.). (22) on the sampled u-bar plus the primal filters; adds ``aug_*``."""
    lam, beta = config.primal.lam, config.primal.beta
    aug_u = np.vstack([pats.u_bar, Uk])
    aug = DualProblem(Y=Y, x=x, q=q_diagonal(Y, aug_u, lam), sign=st_pattern(Y, aug_u, lam),
                      beta=beta)
    sol = solve_dual_torch(aug, config.torch_dual, progress=progress)
    arrays["aug_u_bar"], arrays["aug_W"], arrays["aug_Wp"] = aug_u, sol.W, sol.Wp
    return {
        "objective": sol.objective, "solver": sol.solver, "max_violation": sol.violation,
        "n_patterns": aug.n_patterns,
        "note": "(22) on the sampled u-bar plus the best primal run's own filters "
                "(torch solver); <= dual_objective_at_primal_point <= primal_best by "
                "construction, up to the solver's tolerance",
    }


def _u_scale_sweep(config, Y, x, pats, ref, arrays: dict, *, progress) -> list[dict]:
    """3. The value of (22) depends on |u-bar|, not only on the patterns: the same draws
    rescaled by each factor of ``config.u_scale_sweep`` (unsorted); adds ``sweep{k}_*``."""
    lam, beta = config.primal.lam, config.primal.beta
    sweep = [{"u_scale": config.u_scale, "n_patterns": pats.n_patterns,
              "objective": ref.objective, "max_violation": ref.violation, "solver": ref.solver,
              "mean_q_active": float(pats.q[pats.sign != 0].mean())}]
    for k, f in enumerate(config.u_scale_sweep):
        ps = sample_patterns(Y, lam, n_samples=config.n_samples, u_scale=f * config.u_scale,
                             seed=config.pattern_seed)
        if ps.n_patterns == 0:
            sweep.append({"u_scale": f * config.u_scale, "n_patterns": 0,
                          "objective": float(x @ x), "solver": "none (no active pattern)"})
            continue
        sol = solve_dual_torch(DualProblem.from_patterns(Y, x, ps, beta), config.torch_dual,
                               progress=progress)
        sweep.append({"u_scale": f * config.u_scale, "n_patterns": ps.n_patterns,
                      "objective": sol.objective, "max_violation": sol.violation,
                      "solver": sol.solver,
                      "mean_q_active": float(ps.q[ps.sign != 0].mean())})
        arrays[f"sweep{k}_u_bar"], arrays[f"sweep{k}_W"], arrays[f"sweep{k}_Wp"] = (
            ps.u_bar, sol.W, sol.Wp)
    return sweep


def _reconstruction_split(Y, x, pats, ref, rec, lam) -> dict:
    """4. Reconstruction: the regulariser carries over, the data term does not."""
    dual_out = dual_output(Y, pats.q, ref.Wp - ref.W)
    rec_out = primal_output(Y, rec.U, rec.v, lam)
    return {
        "data_term_dual": float(np.sum((dual_out - x) ** 2)),
        "data_term_reconstructed": float(np.sum((rec_out - x) ** 2)),
        "output_difference_norm": float(np.linalg.norm(rec_out - dual_out)),
    }


def _explanation(out: dict, sweep: list[dict], primal_best: float) -> list[str]:
    """The four paragraphs of ``honesty.explanation``, one per diagnostic, from ``out``."""
    data_best = out["rescaling"]["data_term_eps_1"]
    dual_at_point = out["primal_point_in_dual"]["dual_objective_at_primal_point"]
    dwp = out.get("dual_with_primal_filters", {}).get("objective", float("nan"))
    obj = [s["objective"] for s in sweep]
    return [
        ("Theorem 2 rescales u -> eps u, v -> v/eps; ST is not positively homogeneous "
        "(tau(eps a)_lam = eps tau(a)_{lam/eps}), so (21) changes: data term "
        f"{data_best:.6g} at eps = 1, {out['rescaling']['data_term_eps_0.5']:.6g} at 0.5, "
        f"{out['rescaling']['data_term_eps_2']:.6g} at 2. The chain p* = d1 = d2 = d3 "
        "starts from this step."),
        ("Q^S depends on |y_i^T u-bar| (Q_ii = 1 - lam/|y_i^T u-bar|), not only on the pattern, "
        "so (44)-(45) is not a finite program: each pattern carries a continuum of Q^S. "
        "With finitely many sampled u-bar, (22) is neither an upper nor a lower bound on p*. "
        f"Re-solving it with the same draws rescaled gives {min(obj, default=float('nan')):.6g}"
        f" .. {max(obj, default=float('nan')):.6g} (u_scale_sweep) against primal_best "
        f"{primal_best:.6g}."),
        ("Every primal point is feasible for (22) on its own filters, with value p(U,v) minus "
        "beta sum (||u_k|| - |v_k|)^2; adding the best primal filters to the sampled ones gives "
        f"{dwp:.6g} <= {dual_at_point:.6g} <= {primal_best:.6g} (primal_best). So (22) over all "
        "u-bar is a relaxation (a lower bound of p* for every K), not an equivalent problem."),
        ("Eq. (47) carries the regulariser 2 beta sum ||w|| over exactly, but the reconstructed "
        "neuron outputs v tau(Y u)_lam, not Q_j Y w (= only if |Y u| = |Y u-bar_j| on the "
        "active rows and the patterns agree), so primal_at_reconstruction differs from dual: "
        f"data term {out['reconstruction_split']['data_term_reconstructed']:.6g} "
        f"(reconstructed) vs {out['reconstruction_split']['data_term_dual']:.6g} (dual)."),
    ]
