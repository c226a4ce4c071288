"""The duality experiment, the run: data, primal runs, patterns, the dual solves, the
reconstruction (47), the certified bound, denoising, and the files.
Overview: :mod:`lda_opt.experiments.duality`."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

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
    """Run the experiment, write ``duality.json``, ``duality.npz`` and the PNGs; return JSON.

    The stages, in order: the data, 1. primal runs, 2. patterns, 3. the dual solves,
    4. the reconstruction (47) and its refinement, 5. the certified bound, 6. denoising,
    7. the diagnostics (:func:`._honesty`), then the JSON, the arrays and the figures.
    """
    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pc = config.primal
    lam, beta = pc.lam, pc.beta

    d = _load_data(config)
    runs, best_run = _primal_runs(config, d, progress=progress)
    U_p, v_p = best_run.U_best, best_run.v_best
    primal_best = primal_objective(d.Y, d.x, U_p, v_p, lam, beta)
    pats, identity_err = _patterns(config, d.Y)
    problem = DualProblem.from_patterns(d.Y, d.x, pats, beta)
    cvx, tor, ref = _dual_solves(problem, config, progress=progress)
    r = _reconstruction(config, d, pats, ref)
    bounds = _certified_bounds(d, pats, ref, U_p, v_p, config)
    q_test, nets, metrics = _denoising(d, pats, ref, r.rec, U_p, v_p, lam)
    honesty, honesty_arrays = _honesty(config, d.Y, d.x, pats, problem, ref, r.rec, U_p, v_p,
                                       primal_best, progress=progress)

    result = _result(config, d, runs, best_run, primal_best, pats, identity_err, cvx, tor,
                     ref, r, bounds, metrics, honesty)
    if r.refined is not None:
        honesty["explanation"].append(_refined_explanation(r, ref.objective, pc.n_filters))
    _save_npz(out, d, lam, beta, U_p, v_p, r, pats, ref, tor, runs, q_test, honesty_arrays,
              config.filter_size)
    _plot_all(out, runs, config, result, tor, d.train, d.test, nets)
    result["runtime_seconds"] = time.perf_counter() - t_start
    (out / "duality.json").write_text(json.dumps(result, indent=2))
    return result


@dataclass(frozen=True)
class _Data:
    """The train/test denoising sets and their patch matrices ``Y`` and labels ``x``."""

    train: Any
    test: Any
    Y: np.ndarray
    x: np.ndarray
    Yt: np.ndarray
    xt: np.ndarray


@dataclass(frozen=True)
class _Reconstruction:
    """Stage 4: the reconstruction (47), its true primal value and Adam refinement."""

    rec: Any
    primal_at_rec: float
    mismatch: np.ndarray
    reg_rec: float
    reg_dual: float
    refined: Any
    k_star: int


def _load_data(config: DualityConfig) -> _Data:
    """The digits denoising sets and their ``m x m`` patches."""
    m = config.filter_size
    train, test = load_digits_denoising(
        n_train=config.n_train, n_test=config.n_test, noise=config.noise, seed=config.data_seed
    )
    return _Data(train=train, test=test, Y=train.patches(m), x=train.label(),
                 Yt=test.patches(m), xt=test.label())


def _primal_runs(config: DualityConfig, d: _Data, *, progress: bool):
    """1. One primal run (21) per optimizer x init x seed; returns ``(runs, best run)``."""
    from tqdm.auto import tqdm

    runs = []
    combos = [(o, i, s) for o in config.optimizers for i in config.inits for s in config.seeds]
    for o, i, s in tqdm(combos, disable=not progress, desc="primal runs"):
        runs.append(train_primal(d.Y, d.x, config.primal, optimizer=o, init=i, seed=s))
    return runs, min(runs, key=lambda r: r.best)


def _patterns(config: DualityConfig, Y: np.ndarray):
    """2. The sampled patterns and the max error of the identity ``Q^S Y u = tau(Y u)``."""
    lam = config.primal.lam
    pats = sample_patterns(Y, lam, n_samples=config.n_samples, u_scale=config.u_scale,
                           seed=config.pattern_seed)
    if pats.n_patterns == 0:
        raise ValueError(
            "every sampled u-bar has the all-zero pattern; increase u_scale or decrease lam")
    identity_err = float(np.max(np.abs(
        pats.q * (pats.u_bar @ Y.T) - np.sign(pats.u_bar @ Y.T)
        * np.maximum(np.abs(pats.u_bar @ Y.T) - lam, 0.0))))
    return pats, identity_err


def _dual_solves(problem: DualProblem, config: DualityConfig, *, progress: bool):
    """3. The dual (22): exact (CVXPY, when small) and the torch hinge-penalty solver;
    returns ``(cvx or None, torch, reference)`` with the reference CVXPY where it ran."""
    cvx = _solve_cvxpy_if_small(problem, config)
    tor = solve_dual_torch(problem, config.torch_dual, progress=progress)
    return cvx, tor, (cvx if cvx is not None else tor)


def _reconstruction(config: DualityConfig, d: _Data, pats, ref) -> _Reconstruction:
    """4. The reconstruction (47), the true primal objective there, and its refinement.

    The reconstruction is a primal point with K = n_neurons filters: it is refined with Adam
    (real ST) for as many epochs as the primal runs.
    """
    pc = config.primal
    lam, beta = pc.lam, pc.beta
    rec = reconstruct_primal(ref.W, ref.Wp)
    primal_at_rec = primal_objective(d.Y, d.x, rec.U, rec.v, lam, beta)
    mismatch = neuron_mismatch(d.Y, pats.q, rec, lam)
    reg_rec = beta * float(np.sum(rec.U**2) + rec.v @ rec.v)
    reg_dual = 2 * beta * float(np.linalg.norm(ref.W, axis=1).sum()
                                + np.linalg.norm(ref.Wp, axis=1).sum())
    refined = None
    if rec.v.shape[0] > 0:
        refined = train_primal(d.Y, d.x, pc, optimizer="adam", init="reconstruction", seed=0,
                               start=(rec.U, rec.v))
    return _Reconstruction(rec=rec, primal_at_rec=primal_at_rec, mismatch=mismatch,
                           reg_rec=reg_rec, reg_dual=reg_dual, refined=refined,
                           k_star=_nonzero_groups(ref.W, ref.Wp))


def _certified_bounds(d: _Data, pats, ref, U_p, v_p, config: DualityConfig) -> dict:
    """5. Certified weak-duality lower bounds on p* (every K), one per candidate ``z``."""
    lam, beta = config.primal.lam, config.primal.beta
    z_cands = {
        "primal_best_residual": 2 * (d.x - primal_output(d.Y, U_p, v_p, lam)),
        "dual_residual": 2 * (d.x - dual_output(d.Y, pats.q, ref.Wp - ref.W)),
    }
    return {k: certified_lower_bound(d.Y, d.x, z, beta) for k, z in z_cands.items()}


def _denoising(d: _Data, pats, ref, rec, U_p, v_p, lam):
    """6. Denoising quality, train and test; returns ``(Q_test, network outputs, metrics)``."""
    q_test = q_diagonal(d.Yt, pats.u_bar, lam)
    nets = {
        "primal": (primal_output(d.Y, U_p, v_p, lam), primal_output(d.Yt, U_p, v_p, lam)),
        "dual": (dual_output(d.Y, pats.q, ref.Wp - ref.W),
                 dual_output(d.Yt, q_test, ref.Wp - ref.W)),
        "reconstructed": (primal_output(d.Y, rec.U, rec.v, lam),
                          primal_output(d.Yt, rec.U, rec.v, lam)),
    }
    metrics = {
        name: {"train": denoise_metrics(a, d.train.clean),
               "test": denoise_metrics(b, d.test.clean)}
        for name, (a, b) in nets.items()
    }
    metrics["noisy_input"] = {"train": denoise_metrics(d.train.noisy, d.train.clean),
                              "test": denoise_metrics(d.test.noisy, d.test.clean)}
    return q_test, nets, metrics


def _sol_dict(sol, config: DualityConfig):
    """A dual solution's JSON entry (None for a solve that did not run)."""
    if sol is None:
        return None
    d = {"solver": sol.solver, "status": sol.status, "objective": sol.objective,
         "max_violation": sol.violation, "seconds": sol.seconds,
         "nonzero_groups": _nonzero_groups(sol.W, sol.Wp)}
    if sol.max_multiplier is not None:
        d["max_multiplier"] = sol.max_multiplier
        d["hinge_penalty_exact"] = sol.max_multiplier < config.torch_dual.penalty
    return d


def _refined_json(r: _Reconstruction):
    """The ``primal_refined_from_reconstruction`` entry (None without neurons)."""
    refined = r.refined
    if refined is None:
        return None
    return {
        "objective": refined.best, "K": int(r.rec.v.shape[0]), "optimizer": "adam",
        "epochs": len(refined.objective) - 1, "initial": float(refined.objective[0]),
        "status": refined.status,
        "note": "Adam on (21) (real ST) started from the reconstruction (47); a primal "
                "value attained with K = n_neurons filters, so p*_K is at most this"}


def _runs_json(runs) -> list[dict]:
    """One entry per primal run."""
    return [
        {"optimizer": r.optimizer, "init": r.init, "seed": r.seed, "best": r.best,
         "final": r.final, "initial": float(r.objective[0]), "epochs": len(r.objective) - 1,
         "status": r.status}
        for r in runs
    ]


def _dual_solvers_json(cvx, tor, config: DualityConfig) -> dict:
    """The ``dual_solvers`` entry: both solves and their difference."""
    return {"cvxpy": _sol_dict(cvx, config), "torch": _sol_dict(tor, config),
            "torch_minus_cvxpy": (tor.objective - cvx.objective) if cvx else None,
            "torch_minus_cvxpy_relative": ((tor.objective - cvx.objective)
                                           / abs(cvx.objective)) if cvx else None}


def _result(config, d: _Data, runs, best_run, primal_best, pats, identity_err, cvx, tor, ref,
            r: _Reconstruction, bounds, metrics, honesty) -> dict:
    """The ``duality.json`` record (without ``runtime_seconds``)."""
    pc, m = config.primal, config.filter_size
    dual_value = ref.objective
    best_bound_key = max(bounds, key=lambda k: bounds[k].value)
    return {
        "paper": "dual-st-cnn-2024 (Xiong et al., TNNLS 2024), eqs. 20-24, 47",
        "primal_best": primal_best,
        "dual": dual_value,
        "dual_source": ref.solver,
        "primal_at_reconstruction": r.primal_at_rec,
        "gap": primal_best - dual_value,
        "gap_relative": (primal_best - dual_value) / abs(dual_value),
        "reconstruction_gap": r.primal_at_rec - dual_value,
        "primal_refined_from_reconstruction": _refined_json(r),
        "theorem1_hypothesis": {"K": pc.n_filters, "k_star": r.k_star,
                                "K_at_least_k_star_plus_1": pc.n_filters >= r.k_star + 1},
        "certified_lower_bound": bounds[best_bound_key].value,
        "certified_lower_bound_z": best_bound_key,
        "certified_lower_bounds": {k: asdict(b) for k, b in bounds.items()},
        "zero_network_objective": float(d.x @ d.x),
        "best_run": {"optimizer": best_run.optimizer, "init": best_run.init,
                     "seed": best_run.seed},
        "runs": _runs_json(runs),
        "patterns": {"n_sampled": pats.n_sampled, "n_inactive": pats.n_inactive,
                     "n_unique": pats.n_patterns, "u_scale": config.u_scale,
                     "identity_max_abs_error": identity_err},
        "dual_solvers": _dual_solvers_json(cvx, tor, config),
        "reconstruction": {
            "n_neurons": int(r.rec.v.shape[0]),
            "regulariser_primal": r.reg_rec,
            "regulariser_dual": r.reg_dual,
            "neuron_mismatch_max": float(r.mismatch.max(initial=0.0)),
            "neuron_mismatch_sum": float(r.mismatch.sum()),
        },
        "honesty": honesty,
        "denoising": metrics,
        "config": _config_dict(config),
        "sizes": {"I_train": int(d.Y.shape[0]), "I_test": int(d.Yt.shape[0]), "m2": m * m,
                  "K": pc.n_filters, "P": pats.n_patterns},
        "environment": {"python": platform.python_version()},
    }


def _refined_explanation(r: _Reconstruction, dual_value: float, n_filters: int) -> str:
    """The paragraph on Theorem 1's ``K >= k* + 1`` appended to ``honesty.explanation``."""
    refined, n = r.refined, r.rec.v.shape[0]
    rel = "below" if refined.best < dual_value else "above"
    return (f"Theorem 1 needs K >= k* + 1 filters (k* = {r.k_star} non-zero groups here; "
            f"K = {n_filters}). The reconstruction is a primal point with "
            f"K = {n}; Adam on (21) started there reaches {refined.best:.6g}, "
            f"{rel} dual = {dual_value:.6g}, so p*_K <= {refined.best:.6g} for "
            f"K >= {n}.")


def _save_npz(out: Path, d: _Data, lam, beta, U_p, v_p, r: _Reconstruction, pats, ref, tor,
              runs, q_test, honesty_arrays: dict, m: int) -> None:
    """Write ``duality.npz``: every array the JSON's numbers can be recomputed from."""
    rec, refined = r.rec, r.refined
    np.savez(
        out / "duality.npz",
        Y=d.Y, x=d.x, lam=np.float64(lam), beta=np.float64(beta),
        U_primal=U_p, v_primal=v_p, U_rec=rec.U, v_rec=rec.v,
        Q=pats.q, S=pats.sign, u_bar=pats.u_bar, W=ref.W, Wp=ref.Wp,
        W_torch=tor.W, Wp_torch=tor.Wp,
        U_refined=(refined.U_best if refined is not None else np.zeros((m * m, 0))),
        v_refined=(refined.v_best if refined is not None else np.zeros(0)),
        U_runs=np.stack([run.U_best for run in runs]),
        v_runs=np.stack([run.v_best for run in runs]),
        Y_test=d.Yt, x_test=d.xt, Q_test=q_test,
        **honesty_arrays,
    )


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


