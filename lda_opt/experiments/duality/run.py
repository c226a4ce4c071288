"""The duality experiment, the run: data, primal runs, patterns, the dual solves, the
reconstruction (47), the certified bound, denoising, and the files.
Overview: :mod:`lda_opt.experiments.duality`."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ...dual.bound import certified_lower_bound
from ...dual.data import load_digits_denoising
from ...dual.dual import (
    DualProblem,
    dual_output,
    solve_dual_cvxpy,
    solve_dual_torch,
)
from ...dual.patterns import q_diagonal, sample_patterns
from ...dual.primal import primal_objective, primal_output, train_primal
from ...dual.reconstruct import neuron_mismatch, reconstruct_primal
from .config import DualityConfig, _config_dict, denoise_metrics
from .honesty import _honesty
from .plot import _plot_all


def run_duality(config: DualityConfig, out_dir: str | Path, *, progress: bool = False) -> dict:
    """Run the experiment, write ``duality.json``, ``duality.npz`` and the PNGs; return JSON."""
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pc = config.primal
    lam, beta, m = pc.lam, pc.beta, config.filter_size

    train, test = load_digits_denoising(
        n_train=config.n_train, n_test=config.n_test, noise=config.noise, seed=config.data_seed
    )
    Y, x = train.patches(m), train.label()
    Yt, xt = test.patches(m), test.label()

    # 1. primal runs
    runs = []
    combos = [(o, i, s) for o in config.optimizers for i in config.inits for s in config.seeds]
    for o, i, s in tqdm(combos, disable=not progress, desc="primal runs"):
        runs.append(train_primal(Y, x, pc, optimizer=o, init=i, seed=s))
    best_run = min(runs, key=lambda r: r.best)
    U_p, v_p = best_run.U_best, best_run.v_best
    primal_best = primal_objective(Y, x, U_p, v_p, lam, beta)

    # 2. patterns
    pats = sample_patterns(Y, lam, n_samples=config.n_samples, u_scale=config.u_scale,
                           seed=config.pattern_seed)
    if pats.n_patterns == 0:
        raise ValueError(
            "every sampled u-bar has the all-zero pattern; increase u_scale or decrease lam")
    identity_err = float(np.max(np.abs(
        pats.q * (pats.u_bar @ Y.T) - np.sign(pats.u_bar @ Y.T)
        * np.maximum(np.abs(pats.u_bar @ Y.T) - lam, 0.0))))

    # 3. dual: exact (CVXPY) and torch hinge-penalty solver
    problem = DualProblem.from_patterns(Y, x, pats, beta)
    cvx = _solve_cvxpy_if_small(problem, config)
    tor = solve_dual_torch(problem, config.torch_dual, progress=progress)
    ref = cvx if cvx is not None else tor
    dual_value = ref.objective

    # 4. reconstruction (47) and the true primal objective there
    rec = reconstruct_primal(ref.W, ref.Wp)
    primal_at_rec = primal_objective(Y, x, rec.U, rec.v, lam, beta)
    mismatch = neuron_mismatch(Y, pats.q, rec, lam)
    reg_rec = beta * float(np.sum(rec.U**2) + rec.v @ rec.v)
    reg_dual = 2 * beta * float(np.linalg.norm(ref.W, axis=1).sum()
                                + np.linalg.norm(ref.Wp, axis=1).sum())

    # the reconstruction is a primal point with K = n_neurons filters: refine it with Adam
    # (real ST) for as many epochs as the primal runs
    refined = None
    if rec.v.shape[0] > 0:
        refined = train_primal(Y, x, pc, optimizer="adam", init="reconstruction", seed=0,
                               start=(rec.U, rec.v))
    k_star = _nonzero_groups(ref.W, ref.Wp)

    # 5. certified weak-duality lower bound on p* (every K)
    z_cands = {
        "primal_best_residual": 2 * (x - primal_output(Y, U_p, v_p, lam)),
        "dual_residual": 2 * (x - dual_output(Y, pats.q, ref.Wp - ref.W)),
    }
    bounds = {k: certified_lower_bound(Y, x, z, beta) for k, z in z_cands.items()}
    best_bound_key = max(bounds, key=lambda k: bounds[k].value)

    # 6. denoising quality, train and test
    q_test = q_diagonal(Yt, pats.u_bar, lam)
    nets = {
        "primal": (primal_output(Y, U_p, v_p, lam), primal_output(Yt, U_p, v_p, lam)),
        "dual": (dual_output(Y, pats.q, ref.Wp - ref.W), dual_output(Yt, q_test, ref.Wp - ref.W)),
        "reconstructed": (primal_output(Y, rec.U, rec.v, lam),
                          primal_output(Yt, rec.U, rec.v, lam)),
    }
    metrics = {
        name: {"train": denoise_metrics(a, train.clean), "test": denoise_metrics(b, test.clean)}
        for name, (a, b) in nets.items()
    }
    metrics["noisy_input"] = {"train": denoise_metrics(train.noisy, train.clean),
                              "test": denoise_metrics(test.noisy, test.clean)}

    # 7. why the gap is not zero (theory/dual_st_cnn.md): diagnostics, every number
    #    recomputable from duality.npz
    honesty, honesty_arrays = _honesty(config, Y, x, pats, problem, ref, rec, U_p, v_p,
                                       primal_best, progress=progress)

    def sol_dict(sol):
        if sol is None:
            return None
        d = {"solver": sol.solver, "status": sol.status, "objective": sol.objective,
             "max_violation": sol.violation, "seconds": sol.seconds,
             "nonzero_groups": _nonzero_groups(sol.W, sol.Wp)}
        if sol.max_multiplier is not None:
            d["max_multiplier"] = sol.max_multiplier
            d["hinge_penalty_exact"] = sol.max_multiplier < config.torch_dual.penalty
        return d

    result = {
        "paper": "dual-st-cnn-2024 (Xiong et al., TNNLS 2024), eqs. 20-24, 47",
        "primal_best": primal_best,
        "dual": dual_value,
        "dual_source": ref.solver,
        "primal_at_reconstruction": primal_at_rec,
        "gap": primal_best - dual_value,
        "gap_relative": (primal_best - dual_value) / abs(dual_value),
        "reconstruction_gap": primal_at_rec - dual_value,
        "primal_refined_from_reconstruction": None if refined is None else {
            "objective": refined.best, "K": int(rec.v.shape[0]), "optimizer": "adam",
            "epochs": len(refined.objective) - 1, "initial": float(refined.objective[0]),
            "status": refined.status,
            "note": "Adam on (21) (real ST) started from the reconstruction (47); a primal "
                    "value attained with K = n_neurons filters, so p*_K is at most this"},
        "theorem1_hypothesis": {"K": pc.n_filters, "k_star": k_star,
                                "K_at_least_k_star_plus_1": pc.n_filters >= k_star + 1},
        "certified_lower_bound": bounds[best_bound_key].value,
        "certified_lower_bound_z": best_bound_key,
        "certified_lower_bounds": {k: asdict(b) for k, b in bounds.items()},
        "zero_network_objective": float(x @ x),
        "best_run": {"optimizer": best_run.optimizer, "init": best_run.init,
                     "seed": best_run.seed},
        "runs": [
            {"optimizer": r.optimizer, "init": r.init, "seed": r.seed, "best": r.best,
             "final": r.final, "initial": float(r.objective[0]), "epochs": len(r.objective) - 1,
             "status": r.status}
            for r in runs
        ],
        "patterns": {"n_sampled": pats.n_sampled, "n_inactive": pats.n_inactive,
                     "n_unique": pats.n_patterns, "u_scale": config.u_scale,
                     "identity_max_abs_error": identity_err},
        "dual_solvers": {"cvxpy": sol_dict(cvx), "torch": sol_dict(tor),
                         "torch_minus_cvxpy": (tor.objective - cvx.objective) if cvx else None,
                         "torch_minus_cvxpy_relative": ((tor.objective - cvx.objective)
                                                        / abs(cvx.objective)) if cvx else None},
        "reconstruction": {
            "n_neurons": int(rec.v.shape[0]),
            "regulariser_primal": reg_rec,
            "regulariser_dual": reg_dual,
            "neuron_mismatch_max": float(mismatch.max(initial=0.0)),
            "neuron_mismatch_sum": float(mismatch.sum()),
        },
        "honesty": honesty,
        "denoising": metrics,
        "config": _config_dict(config),
        "sizes": {"I_train": int(Y.shape[0]), "I_test": int(Yt.shape[0]), "m2": m * m,
                  "K": pc.n_filters, "P": pats.n_patterns},
        "environment": {"python": platform.python_version()},
    }

    if refined is not None:
        rel = "below" if refined.best < dual_value else "above"
        honesty["explanation"].append(
            f"Theorem 1 needs K >= k* + 1 filters (k* = {k_star} non-zero groups here; "
            f"K = {pc.n_filters}). The reconstruction is a primal point with "
            f"K = {rec.v.shape[0]}; Adam on (21) started there reaches {refined.best:.6g}, "
            f"{rel} dual = {dual_value:.6g}, so p*_K <= {refined.best:.6g} for "
            f"K >= {rec.v.shape[0]}.")

    np.savez(
        out / "duality.npz",
        Y=Y, x=x, lam=np.float64(lam), beta=np.float64(beta),
        U_primal=U_p, v_primal=v_p, U_rec=rec.U, v_rec=rec.v,
        Q=pats.q, S=pats.sign, u_bar=pats.u_bar, W=ref.W, Wp=ref.Wp,
        W_torch=tor.W, Wp_torch=tor.Wp,
        U_refined=(refined.U_best if refined is not None else np.zeros((m * m, 0))),
        v_refined=(refined.v_best if refined is not None else np.zeros(0)),
        U_runs=np.stack([r.U_best for r in runs]), v_runs=np.stack([r.v_best for r in runs]),
        Y_test=Yt, x_test=xt, Q_test=q_test,
        **honesty_arrays,
    )
    _plot_all(out, runs, config, result, tor, train, test, nets)
    result["runtime_seconds"] = time.perf_counter() - t_start
    (out / "duality.json").write_text(json.dumps(result, indent=2))
    return result


def _solve_cvxpy_if_small(problem: DualProblem, config: DualityConfig):
    """Exact CVXPY solve of (22) when enabled and ``2 P m^2 <= cvxpy_max_vars``, else None."""
    n_vars = 2 * problem.n_patterns * problem.Y.shape[1]
    if config.cvxpy_solver is not None and n_vars <= config.cvxpy_max_vars:
        return solve_dual_cvxpy(problem, solver=config.cvxpy_solver)
    return None


def _nonzero_groups(W: np.ndarray, Wp: np.ndarray, rel_tol: float = 1e-6) -> int:
    """Groups ``w_j``/``w'_j`` with norm above ``rel_tol`` times the largest (as in eq. 47)."""
    norms = np.concatenate([np.linalg.norm(W, axis=1), np.linalg.norm(Wp, axis=1)])
    top = norms.max(initial=0.0)
    return int((norms > rel_tol * top).sum()) if top > 0 else 0


