"""The duality experiment of dual-st-cnn-2024 (Sec. IV-A), run end to end and reported honestly.

Steps: denoising data (:mod:`.data`); primal ST-CNN (21) trained with every optimizer x
initialisation x seed (:mod:`.primal`); arrangement patterns and ``Q^S`` (:mod:`.patterns`);
the convex program (22) solved exactly by CVXPY and by the torch hinge-penalty solver
(:mod:`.dual`); primal weights rebuilt by (47) (:mod:`.reconstruct`) and evaluated with the
real ST; a certified weak-duality lower bound (:mod:`.bound`); PSNR/RLNE of denoising.

Outputs (``out_dir``): ``duality.json``, ``duality.npz`` (every reported objective can be
recomputed from it, see :func:`recompute_from_npz`), and the PNGs ``objective_vs_epoch.png``
(Figs. 9/13), ``objective_by_init.png`` (Fig. 10), ``primal_vs_dual.png`` (Fig. 11),
``denoised.png`` (Fig. 12).
"""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .bound import certified_lower_bound
from .data import load_digits_denoising
from .dual import (
    DualProblem,
    TorchDualConfig,
    dual_objective,
    dual_output,
    solve_dual_cvxpy,
    solve_dual_torch,
)
from .patterns import q_diagonal, sample_patterns, st_pattern
from .primal import INITS, OPTIMIZERS, PrimalConfig, primal_objective, primal_output, train_primal
from .reconstruct import neuron_mismatch, reconstruct_primal

__all__ = ["DualityConfig", "denoise_metrics", "recompute_from_npz", "run_duality"]

NOISE_LEVELS = (0.25, 0.5, 0.75)  # Table I


@dataclass(frozen=True, kw_only=True)
class DualityConfig:
    """Everything the experiment depends on (defaults: the non-quick run).

    ``n_train``/``n_test`` digits (8 x 8, so ``I = 64 n_train``); ``filter_size`` m;
    ``primal.n_filters`` K defaults to ``2 n_samples + 1``: (22) has at most ``2 P <=
    2 n_samples`` non-zero groups ``k*``, so Theorem 1's hypothesis ``K >= k* + 1`` holds
    (recorded as ``theorem1_hypothesis``);
    ``n_samples`` random ``u-bar`` for the patterns, ``u_scale`` their standard deviation;
    ``cvxpy_solver`` ``"CLARABEL"``, ``"SCS"`` or ``None`` (skip the exact solve);
    ``cvxpy_max_vars`` skips CVXPY above ``2 P m^2`` variables;
    ``u_scale_sweep`` are the multiples of ``u_scale`` at which (22) is re-solved (same
    draws, rescaled, torch solver) to show that its value depends on the magnitude of the
    sampled ``u-bar`` (empty: no sweep; the factor 1 is the main solve and always reported).
    """

    noise: float = 0.25
    n_train: int = 16
    n_test: int = 16
    filter_size: int = 3
    primal: PrimalConfig = field(
        default_factory=lambda: PrimalConfig(n_filters=129, epochs=2000)
    )
    seeds: tuple[int, ...] = (0, 1, 2)
    optimizers: tuple[str, ...] = OPTIMIZERS
    inits: tuple[str, ...] = INITS
    n_samples: int = 64
    u_scale: float = 1.0 / 3.0
    torch_dual: TorchDualConfig = field(default_factory=lambda: TorchDualConfig(iters=5000))
    cvxpy_solver: str | None = "CLARABEL"
    cvxpy_max_vars: int = 2400
    data_seed: int = 0
    pattern_seed: int = 0
    u_scale_sweep: tuple[float, ...] = (0.3, 3.0, 10.0)

    def __post_init__(self) -> None:
        if not (isinstance(self.noise, (int, float)) and math.isfinite(self.noise)
                and self.noise >= 0):
            raise ValueError(f"noise must be a finite number >= 0; got {self.noise!r}")
        for name in ("n_train", "n_test", "n_samples", "cvxpy_max_vars"):
            val = getattr(self, name)
            if not (isinstance(val, int) and val >= 1):
                raise ValueError(f"{name} must be an integer >= 1; got {val!r}")
        if self.n_train + self.n_test > 1797:
            raise ValueError(
                f"n_train + n_test must be <= 1797 (digits available); got "
                f"{self.n_train + self.n_test}")
        if not (isinstance(self.filter_size, int) and self.filter_size >= 1
                and self.filter_size % 2 == 1):
            raise ValueError(
                f"filter_size must be a positive odd integer; got {self.filter_size!r}")
        if not self.seeds or any(not isinstance(s, int) or s < 0 for s in self.seeds):
            raise ValueError(f"seeds must be a non-empty tuple of integers >= 0; got {self.seeds!r}")
        if not self.optimizers or any(o not in OPTIMIZERS for o in self.optimizers):
            raise ValueError(f"optimizers must be a non-empty subset of {OPTIMIZERS}; "
                             f"got {self.optimizers!r}")
        if not self.inits or any(i not in INITS for i in self.inits):
            raise ValueError(f"inits must be a non-empty subset of {INITS}; got {self.inits!r}")
        if not (math.isfinite(self.u_scale) and self.u_scale > 0):
            raise ValueError(f"u_scale must be a finite number > 0; got {self.u_scale!r}")
        if any(not (isinstance(f, (int, float)) and math.isfinite(f) and f > 0)
               for f in self.u_scale_sweep):
            raise ValueError(f"u_scale_sweep must hold finite numbers > 0; "
                             f"got {self.u_scale_sweep!r}")
        if self.cvxpy_solver not in (None, "CLARABEL", "SCS"):
            raise ValueError(
                f"cvxpy_solver must be 'CLARABEL', 'SCS' or None; got {self.cvxpy_solver!r}")

    @classmethod
    def quick(cls, **overrides) -> DualityConfig:
        """Small instance for ``--quick`` (well under 2 minutes on a CPU)."""
        base = {
            "n_train": 4,
            "n_test": 4,
            "primal": PrimalConfig(n_filters=49, epochs=300),
            "seeds": (0, 1),
            "n_samples": 24,
            "torch_dual": TorchDualConfig(iters=1500),
            "u_scale_sweep": (0.3, 3.0),
        }
        base.update(overrides)
        return cls(**base)


def _psnr_rlne(est: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    """Mean over images of PSNR (peak 1, images in [0, 1]) and RLNE = ||est-x|| / ||x||."""
    est = est.reshape(clean.shape)
    err = (est - clean).reshape(clean.shape[0], -1)
    ref = clean.reshape(clean.shape[0], -1)
    mse = np.mean(err * err, axis=1)
    psnr = 10.0 * np.log10(1.0 / np.maximum(mse, 1e-300))
    rlne = np.linalg.norm(err, axis=1) / np.maximum(np.linalg.norm(ref, axis=1), 1e-300)
    return float(psnr.mean()), float(rlne.mean())


def denoise_metrics(est: np.ndarray, clean: np.ndarray) -> dict:
    psnr, rlne = _psnr_rlne(est, clean)
    return {"psnr": psnr, "rlne": rlne}


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

    # 1. Theorem 2 (rescaling) fails for lam > 0
    data_best = float(np.sum((primal_output(Y, U_p, v_p, lam) - x) ** 2))
    out["rescaling"] = {
        "note": "data term of (21) at (eps U, v / eps); Theorem 2 assumes it equals eps = 1",
        "data_term_eps_1": data_best,
        **{f"data_term_eps_{e:g}": float(np.sum((primal_output(Y, e * U_p, v_p / e, lam)
                                                  - x) ** 2)) for e in (0.5, 2.0)},
    }

    # 2. the primal point as a feasible point of (22) on its own filters
    norms_u = np.linalg.norm(U_p, axis=0)
    keep = np.any(st_pattern(Y, U_p.T, lam) != 0, axis=1)  # filters with a non-zero pattern
    Uk, vk = U_p[:, keep].T, v_p[keep]
    Wp_pt = np.where(vk[:, None] > 0, vk[:, None] * Uk, 0.0)
    W_pt = np.where(vk[:, None] < 0, -vk[:, None] * Uk, 0.0)
    own = DualProblem(Y=Y, x=x, q=q_diagonal(Y, Uk, lam), sign=st_pattern(Y, Uk, lam),
                      beta=beta) if keep.any() else None
    dual_at_point = dual_objective(own, W_pt, Wp_pt) if own is not None else float(x @ x)
    dead = ~keep
    out["primal_point_in_dual"] = {
        "n_active_filters": int(keep.sum()),
        "dual_objective_at_primal_point": dual_at_point,
        "balance_slack": float(beta * np.sum((norms_u[keep] - np.abs(v_p[keep])) ** 2)),
        "dead_filter_regulariser": float(beta * np.sum(norms_u[dead] ** 2 + v_p[dead] ** 2)),
        "max_abs_log_balance": float(np.max(np.abs(np.log(
            norms_u[keep] / np.abs(v_p[keep]))), initial=0.0)) if keep.any() else 0.0,
    }
    arrays["point_u_bar"] = Uk
    arrays["point_W"], arrays["point_Wp"] = W_pt, Wp_pt
    if own is not None:
        aug_u = np.vstack([pats.u_bar, Uk])
        aug = DualProblem(Y=Y, x=x, q=q_diagonal(Y, aug_u, lam), sign=st_pattern(Y, aug_u, lam),
                          beta=beta)
        sol = solve_dual_torch(aug, config.torch_dual, progress=progress)
        out["dual_with_primal_filters"] = {
            "objective": sol.objective, "solver": sol.solver, "max_violation": sol.violation,
            "n_patterns": aug.n_patterns,
            "note": "(22) on the sampled u-bar plus the best primal run's own filters "
                    "(torch solver); <= dual_objective_at_primal_point <= primal_best by "
                    "construction, up to the solver's tolerance",
        }
        arrays["aug_u_bar"], arrays["aug_W"], arrays["aug_Wp"] = aug_u, sol.W, sol.Wp

    # 3. the value of (22) depends on |u-bar|, not only on the patterns
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
    out["u_scale_sweep"] = sorted(sweep, key=lambda e: e["u_scale"])

    # 4. reconstruction: regulariser carries over, data term does not
    dual_out = dual_output(Y, pats.q, ref.Wp - ref.W)
    rec_out = primal_output(Y, rec.U, rec.v, lam)
    out["reconstruction_split"] = {
        "data_term_dual": float(np.sum((dual_out - x) ** 2)),
        "data_term_reconstructed": float(np.sum((rec_out - x) ** 2)),
        "output_difference_norm": float(np.linalg.norm(rec_out - dual_out)),
    }

    dwp = out.get("dual_with_primal_filters", {}).get("objective", float("nan"))
    obj = [s["objective"] for s in sweep]
    out["explanation"] = [
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
    return out, arrays


def _nonzero_groups(W: np.ndarray, Wp: np.ndarray, rel_tol: float = 1e-6) -> int:
    """Groups ``w_j``/``w'_j`` with norm above ``rel_tol`` times the largest (as in eq. 47)."""
    norms = np.concatenate([np.linalg.norm(W, axis=1), np.linalg.norm(Wp, axis=1)])
    top = norms.max(initial=0.0)
    return int((norms > rel_tol * top).sum()) if top > 0 else 0


def _config_dict(config: DualityConfig) -> dict:
    d = asdict(config)
    d["seeds"] = list(config.seeds)
    d["optimizers"] = list(config.optimizers)
    d["inits"] = list(config.inits)
    d["u_scale_sweep"] = list(config.u_scale_sweep)
    return d


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


def _plot_all(out: Path, runs, config: DualityConfig, result: dict, tor, train, test, nets):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dual = result["dual"]
    colors = {"kaiming_uniform": "C0", "normal_0.001": "C1", "normal_0.005": "C2",
              "sgd": "C3", "asgd": "C4", "adam": "C5"}

    def panel(ax, key_fn, title, selected):
        for r in selected:
            lbl = key_fn(r)
            ax.plot(r.objective, color=colors[lbl], alpha=0.8, lw=1,
                    label=f"{lbl}" if r.seed == config.seeds[0] else None)
        ax.axhline(dual, color="k", ls="--", lw=1, label="dual (22)")
        ax.axhline(result["primal_at_reconstruction"], color="gray", ls=":", lw=1,
                   label="primal at reconstruction (47)")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.legend(fontsize=7)

    # Figs. 9 / 13: one panel per optimizer, curves per initialisation
    fig, axes = plt.subplots(1, len(config.optimizers), figsize=(4.5 * len(config.optimizers), 3.6),
                             squeeze=False)
    for ax, o in zip(axes[0], config.optimizers):
        panel(ax, lambda r: r.init, f"primal objective (21), {o}",
              [r for r in runs if r.optimizer == o])
    axes[0][0].set_ylabel("objective")
    fig.tight_layout()
    fig.savefig(out / "objective_vs_epoch.png", dpi=110)
    plt.close(fig)

    # Fig. 10: one panel per initialisation, curves per optimizer
    fig, axes = plt.subplots(1, len(config.inits), figsize=(4.5 * len(config.inits), 3.6),
                             squeeze=False)
    for ax, i in zip(axes[0], config.inits):
        panel(ax, lambda r: r.optimizer, f"primal objective (21), init {i}",
              [r for r in runs if r.init == i])
    axes[0][0].set_ylabel("objective")
    fig.tight_layout()
    fig.savefig(out / "objective_by_init.png", dpi=110)
    plt.close(fig)

    # Fig. 11: primal vs dual
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(17, 3.8))
    hon = result["honesty"]
    refined = result["primal_refined_from_reconstruction"]
    vals = [result["primal_best"], result["dual"], result["primal_at_reconstruction"],
            refined["objective"] if refined else float("nan"),
            hon.get("dual_with_primal_filters", {}).get("objective", float("nan")),
            result["certified_lower_bound"]]
    labels = [f"primal best\n(21), K={config.primal.n_filters}", "dual\n(22)",
              "primal at\nrec. (47)",
              f"rec. refined\n(Adam), K={refined['K'] if refined else 0}",
              "(22) + primal\nfilters", "certified\nlower bound"]
    a1.bar(range(len(vals)), vals, color=["C0", "k", "gray", "C4", "C1", "C2"])
    a1.set_xticks(range(len(vals)))
    a1.set_xticklabels(labels, fontsize=7)
    for k, v in enumerate(vals):
        a1.text(k, v, f"{v:.4g}", ha="center", va="bottom", fontsize=8)
    a1.set_title(f"objectives, noise {config.noise}")
    a2.plot(tor.history, color="k", lw=1, label=f"{tor.solver} (penalised)")
    a2.axhline(dual, color="k", ls="--", lw=1, label="dual (22) optimum")
    best = min(runs, key=lambda r: r.best)
    a2.plot(np.linspace(0, len(tor.history), len(best.objective)), best.objective, color="C0",
            lw=1, label=f"best primal run ({best.optimizer}, {best.init})")
    a2.set_yscale("log")
    a2.set_xlabel("iteration (dual) / rescaled epoch (primal)")
    a2.legend(fontsize=7)
    a2.set_title("training curves")
    sw = hon["u_scale_sweep"]
    a3.plot([e["u_scale"] for e in sw], [e["objective"] for e in sw], "ko-", lw=1,
            label="(22), same draws rescaled")
    a3.axhline(result["primal_best"], color="C0", lw=1, label="primal best (21)")
    a3.axvline(config.u_scale, color="gray", ls=":", lw=1, label="u_scale used")
    a3.set_xscale("log")
    a3.set_xlabel("standard deviation of the sampled u-bar")
    a3.set_ylabel("objective")
    a3.set_title("(22) depends on |u-bar|, not only on patterns", fontsize=9)
    a3.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "primal_vs_dual.png", dpi=110)
    plt.close(fig)

    # Fig. 12: denoised examples (test images)
    n_show = min(4, test.clean.shape[0])
    shape = test.clean.shape
    cols = [("noisy", test.noisy), ("clean", test.clean),
            ("primal", nets["primal"][1].reshape(shape)),
            ("dual", nets["dual"][1].reshape(shape)),
            ("reconstructed", nets["reconstructed"][1].reshape(shape))]
    fig, axes = plt.subplots(n_show, len(cols), figsize=(1.8 * len(cols), 1.8 * n_show),
                             squeeze=False)
    for r in range(n_show):
        for c, (name, imgs) in enumerate(cols):
            ax = axes[r][c]
            ax.imshow(np.clip(imgs[r], 0, 1), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "denoised.png", dpi=110)
    plt.close(fig)
