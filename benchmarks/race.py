r"""The race: LDA, MetaLDA, ELDA against the solvers a user would otherwise reach for.

Every competitor solves the same learned problem

.. math:: \min_x\ \tfrac12\|Ax - y\|^2 + \kappa\,\|q(x)\|_{2,1}

(``q``: a seeded, randomly initialized ``FeatureCNN``, complex for MRI) with the same
eps-continuation and the same stopping certificate: at a smoothing level ``eps`` the
competitor minimizes ``phi_eps = f + kappa r_eps`` (Huber; Sqrt for MetaLDA, its paper's
smoothing) until ``||grad phi_eps(x)|| < sigma gamma eps`` at an iterate ``x``; then
``eps <- gamma eps``; it stops with the certificate once ``sigma eps < eps_tol``.

Competitors:

* ``lda``, ``meta-lda``, ``elda``: the library's solvers (continuation built in; LDA with
  its default warm-started backtracking);
* ``elda-lbfgs``, ``lda-lbfgs``, ``elda-nesterov``, ``lda-nesterov``: the same solvers with an
  L-BFGS (memory 10, pairs reset at each eps reduction) or Nesterov candidate rule
  (``candidate=``, ``theory/candidates.md``): the same theorems, checked the same way;
* ``gd-armijo``: gradient descent on ``phi_eps`` with Armijo backtracking
  (``phi_eps(x - s g) <= phi_eps(x) - c1 s ||g||^2``, ``c1 = 1e-4``, ``s = 1, 1/2, ...``),
  run by the library's loop (:class:`GDArmijo`);
* ``agd``: the library's inertial AGD;
* ``torch-lbfgs``: ``torch.optim.LBFGS`` (history 10, strong-Wolfe line search with up to
  24 trials, ``max_eval=25``) on ``phi_eps``, one optimizer iteration per ``step`` so that
  the gradient test is made at every iterate; its history is kept across eps reductions
  (restarted when its search gives up);
* ``scipy-lbfgsb``: ``scipy.optimize.minimize(method="L-BFGS-B")`` on ``phi_eps`` (float64
  vectors), one ``minimize`` call per smoothing level, stopped by its callback at the first
  iterate that passes the gradient test (scipy restarts its history at every call).

The two quasi-Newton peers evaluate ``phi_eps`` through the library's public
differentiable objective ``Problem.smoothed`` (:class:`lda_opt.problem.SmoothedObjective`,
on a real view of complex ``x``: :class:`PeerObjective`), which caches the last few forwards
of ``q`` with their graphs: re-evaluating a point costs no pass, and after an eps reduction
the gradient at a cached point costs one backward (the same reuse the library's solvers
get).  Every library run is checked by ``lo.check`` (``check`` in the JSON: ``ok`` and the
violations; a run stopped by the pass budget is checked on its trace so far).  The table
gives each competitor's passes and seconds as ratios to ``torch-lbfgs`` of the same run.  Passes are counted by the hidden wrapper
:class:`lda_opt.testing.CountedFeatures` for everyone alike.  Recorded per iterate: passes of
``q`` (forward + backward), seconds (recording excluded), the exact objective ``phi`` and
``||grad phi_eps||``.

Step parameters: the library's defaults (``alpha = 1 = 1/L_f`` for these normalized
operators), except MetaLDA's ``alpha = tau = 1`` (its paper's 0.01 is for un-normalized data).
Variants (not in the default list): ``lda-reset`` (LDA with ``warm_start=False``: the
backtracking restarts at ``alpha`` every iteration), ``elda-eta1`` (ELDA with
``eta1 = 0.5``: with the default ``1e-5`` test (4.9a) almost never rejects ``u``, whose fixed
points solve ``alpha grad f + beta grad r = 0`` with ``beta < alpha``, not the stationarity of
``phi_eps``) and ``elda-warm`` (``elda-eta1`` whose (4.11) search starts at
``min(alpha_bar, s_prev / rho)`` instead of ``alpha_bar``), ``elda-lbfgs-keep`` (the L-BFGS
candidate keeping its pairs across reductions, ``reset_memory=False``).

Tasks: ``mri`` (16x16 by default, seeded random ``FeatureCNN``), ``block-cs`` (33x33 block,
seeded random ``FeatureCNN``) and ``mri-64`` (64x64 radial 20 % MRI of a random-ellipse
phantom with the shipped trained ``mri_radial_20`` feature map and its weight, float64).

Usage::

    python benchmarks/race.py                    # MRI, block CS, MRI 64x64: benchmarks/results/race.{json,png,md}
    python benchmarks/race.py --quick            # smoke run
    python benchmarks/race.py --device cuda
    python benchmarks/race.py --competitors elda-lbfgs torch-lbfgs --repeat 5 --merge   # timings: medians of 5
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from _common import environment, feature_cnn, output_dir, sync

import lda_opt as lo
from lda_opt.algorithms.base import Backtracking, Counter, StepOutput, accept, sq_norm
from lda_opt.smoothing import Huber, Smoothing
from lda_opt.tasks import BlockCSTask, MRITask
from lda_opt.testing import CountedFeatures

COMPETITORS = ("lda", "meta-lda", "elda", "elda-lbfgs", "lda-lbfgs", "elda-nesterov", "lda-nesterov",
               "gd-armijo", "agd", "torch-lbfgs", "scipy-lbfgsb")
#: variants of ours that are not the papers' algorithms (raced with ``--competitors``)
VARIANTS = ("lda-reset", "elda-eta1", "elda-warm", "elda-lbfgs-keep")
#: the competitors whose runs lda_opt.check verifies (the library's solvers)
PEERS = ("torch-lbfgs", "scipy-lbfgsb")
TASKS = ("mri", "block-cs", "mri-64")


# ---------------------------------------------------------------------------------------
# the problems
# ---------------------------------------------------------------------------------------
@dataclass
class Task:
    """One learned problem of the race."""

    name: str
    problem: lo.Problem
    x0: torch.Tensor
    q: CountedFeatures
    truth: torch.Tensor
    info: dict = field(default_factory=dict)


def mri_task(size: int, width: int, depth: int, weight: float, dtype: torch.dtype, device: str,
             ratio: float = 0.3, noise: float = 0.01, seed: int = 0, features=None, name: str = "mri",
             info: dict | None = None) -> Task:
    """Radial-mask MRI of a random-ellipse phantom (the :class:`~lda_opt.tasks.MRITask` with
    ``"image"`` noise, seed ``seed + 1``: ``y = A x + noise A(n)``), ``x0 = A^H y``, complex
    ``FeatureCNN`` (seeded random, or ``features``)."""
    from lda_opt.data import mri

    cdt = torch.complex128 if dtype == torch.float64 else torch.complex64
    truth = mri.random_ellipses(1, size, seed, dtype=cdt).to(device)
    task = MRITask(ratio, mask="radial", mask_seed=seed, shape=(size, size), noise=noise, noise_seed=seed + 1,
                   noise_model="image")
    m = task.measure(truth)
    if features is None:
        features = feature_cnn(width, depth, seed, complex=True, dtype=dtype, device=device)
    q = CountedFeatures(features)
    return Task(name, m.problem(q, weight), m.x0, q, truth,
                {"size": size, "mask": "radial", "ratio": ratio, "noise": noise, "weight": weight, **(info or {})})


def shipped_mri_task(dtype: torch.dtype, device: str, seed: int = 0) -> Task:
    """64x64 radial 20 % MRI (noise-free, the checkpoint's task) with the shipped trained
    ``mri_radial_20`` feature map (complex ``FeatureCNN(8, 4)``) and its weight as ``q``."""
    from lda_opt.learning import shipped_checkpoint
    from lda_opt.nets import load_checkpoint

    path = shipped_checkpoint("mri", 0.2, "radial")
    features, meta = load_checkpoint(path, device=device, dtype=dtype)
    features.eval()
    for prm in features.parameters():
        prm.requires_grad_(False)
    shape = meta["problem"]["shape"]
    return mri_task(int(shape[0]), 0, 0, float(meta["weight"]), dtype, device, ratio=float(meta["problem"]["ratio"]),
                    noise=0.0, seed=seed, features=features, name="mri-64",
                    info={"features": f"shipped {path.name}"})


def cs_task(width: int, depth: int, weight: float, dtype: torch.dtype, device: str,
            ratio: float = 0.25, noise: float = 0.0, seed: int = 0, n_train: int = 1000) -> Task:
    """Block compressed sensing (33x33 block of 'camera'; the :class:`~lda_opt.tasks.BlockCSTask`:
    Gaussian Phi with orthonormal rows, ``x0 = Q b`` with the ISTA-Net initializer fitted on
    ``n_train`` training blocks, ``"gaussian"`` noise on ``b`` with seed ``seed + 1``), real
    ``FeatureCNN``."""
    from lda_opt.data import images

    task = BlockCSTask(ratio, matrix_seed=seed, init_blocks=n_train, init_size=128, init_seed=seed, noise=noise,
                       noise_seed=seed + 1)
    img = images.load_image("camera", size=128, dtype=torch.float64)
    m = task.measure_blocks(img[:, :, 40:73, 40:73].contiguous())
    A = lo.operators.Matrix(task.matrices(dtype)[0].to(device), (1, 33, 33))
    q = CountedFeatures(feature_cnn(width, depth, seed, dtype=dtype, device=device))
    p = lo.Problem(lo.LeastSquares(A, m.y.to(dtype).to(device)), q, weight)
    return Task("block-cs", p, m.x0.to(dtype).to(device), q, m.truth.to(dtype).to(device),
                {"block": 33, "ratio": ratio, "noise": noise, "weight": weight, "n_train": n_train})


# ---------------------------------------------------------------------------------------
# continuation and records
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Continuation:
    """The shared eps-continuation and certificate."""

    eps0: float
    gamma: float
    sigma: float
    eps_tol: float

    def reduce(self, grad_norm: float, eps: float) -> bool:
        return grad_norm < self.sigma * self.gamma * eps

    def done(self, eps: float) -> bool:
        return self.sigma * eps < self.eps_tol


class Recorder:
    """Per-iterate records; the time spent recording is excluded from ``seconds``."""

    def __init__(self, q: CountedFeatures, device) -> None:
        self.q = q
        self.device = device
        self.rows: list[dict] = []
        self.start()

    def start(self) -> None:
        """Start the clocks: wall (``perf_counter``) and this process's CPU time
        (``process_time``, less sensitive to other jobs on a shared machine)."""
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        self.excluded = self.excluded_cpu = 0.0

    def record(self, phi: float, grad_norm: float, eps: float, also=None) -> None:
        """Append a row; ``also()`` (more bookkeeping) runs inside the excluded time."""
        sync(self.device)
        t, c = time.perf_counter(), time.process_time()
        self.rows.append({"forward": self.q.forward_calls, "backward": self.q.backward_calls,
                          "seconds": t - self.t0 - self.excluded, "cpu_seconds": c - self.c0 - self.excluded_cpu,
                          "phi": phi, "grad_norm": grad_norm, "eps": eps})
        if also is not None:
            also()
        self.excluded += time.perf_counter() - t
        self.excluded_cpu += time.process_time() - c


class _OutOfBudget(Exception):
    pass


# ---------------------------------------------------------------------------------------
# the library's solvers (and GD with Armijo, run by the library's loop)
# ---------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class GDArmijo(lo.GD):
    r"""Gradient descent with the classical Armijo rule
    ``phi_eps(x - s g) <= phi_eps(x) - c1 s ||g||^2`` (``g = grad phi_eps(x)``), ``s`` from
    ``alpha`` halved until it holds (``c1 = c``).  Since ``||v - x|| = s ||g||`` the test is
    ``phi_eps(v) - phi_eps(x) <= -c1 ||v - x|| ||g||``."""

    c: float = 1e-4
    name = "gd-armijo"

    def step(self, oracle, state, overrides=None):
        x, eps = state.point, state.eps
        b = eps.shape[0]
        cnt = Counter(b, eps.device)
        gnorm = sq_norm(x.grad).sqrt()
        c1 = self.c
        rule = lambda pv, px, d2, e, rows: pv - px <= -c1 * d2.sqrt() * gnorm[rows]
        everyone = torch.ones(b, dtype=torch.bool, device=eps.device)
        alpha = self.param("alpha", b, eps, overrides)
        ls = Backtracking(self.shrink, self.max_linesearch).search(oracle, x, eps, everyone, alpha, rule, cnt)
        new, _ = accept(oracle, x, eps, [(ls.point, ls.accepted)], cnt)
        return StepOutput(new, torch.where(ls.accepted, 1, -1), ls.step.detach(), ls.evaluations,
                          ls.capped, cnt)


class _WarmStart:
    r"""Mixin: start the backtracking of the gradient candidate ``v`` at
    ``min(s_max, s_prev / rho)`` (``s_prev``: this sample's last accepted v-step) instead
    of at ``s_max`` in every iteration (LDA's own ``warm_start=True`` does this for LDA/GD).
    Any start keeps the sufficient-decrease test, so the descent lemmas still hold; for ELDA
    the iterates differ from Algorithm 1, whose line 7 resets the step (a **variant**, raced
    to measure what the reset costs)."""

    #: the hyper-parameter holding the reset value
    start_param = "alpha_bar"

    def _shrink(self) -> float:
        return self.rho

    def init_aux(self, point):
        s_max = float(getattr(self, self.start_param))
        return {"s0": torch.full(point.phi_eps.shape, s_max, dtype=point.phi_eps.dtype,
                                 device=point.phi_eps.device)}

    def step(self, oracle, state, overrides=None):
        s_max = float(getattr(self, self.start_param))
        out = super().step(oracle, state, {**(overrides or {}), self.start_param: state.aux["s0"]})
        took_v = out.branch == 1
        nxt = torch.clamp(out.step.detach() / self._shrink(), max=s_max)
        out.aux = {"s0": torch.where(took_v, nxt, state.aux["s0"])}
        return out


@dataclass(kw_only=True)
class ELDAWarm(_WarmStart, lo.ELDA):
    """ELDA with the (4.11) search warm-started instead of reset to ``alpha_bar`` (variant)."""

    name = "elda-warm"
    start_param = "alpha_bar"


def library_solver(name: str, cont: Continuation, max_iter: int) -> lo.Solver:
    """The library's competitor ``name`` with the shared continuation."""
    common = {"eps0": cont.eps0, "gamma": cont.gamma, "sigma": cont.sigma, "eps_tol": cont.eps_tol,
              "max_iter": max_iter}
    if name == "lda":
        return lo.LDA(**common)
    if name == "meta-lda":
        return lo.MetaLDA(**common, alpha=1.0, tau=1.0)
    if name == "elda":
        return lo.ELDA(**common)
    if name == "elda-eta1":
        return lo.ELDA(**common, eta1=0.5)
    if name == "gd-armijo":
        return GDArmijo(**common, max_linesearch=60)
    if name == "agd":
        return lo.AGD(**common)
    if name == "lda-reset":
        return lo.LDA(**common, warm_start=False)
    if name == "elda-warm":
        return ELDAWarm(**common, eta1=0.5)
    for algo in ("elda", "lda"):
        for rule in ("lbfgs", "nesterov"):
            if name == f"{algo}-{rule}":
                return lo.ALGORITHMS[algo](**common, candidate=rule)
    if name == "elda-lbfgs-keep":
        return lo.ELDA(**common, candidate="lbfgs", reset_memory=False)
    raise ValueError(name)


def task_constants(task: Task) -> dict:
    """The theorem constants ``L_f, M, L_g, m`` of the task (``lo.checks.estimate_constants``
    on the unwrapped feature map, so that no pass is counted), computed once."""
    if "constants" not in task.__dict__:
        p = task.problem
        inner = lo.Problem(p.fidelity, task.q.q, p.weight)
        task.__dict__["constants"] = lo.checks.estimate_constants(inner, task.x0)
    return task.__dict__["constants"]


def run_library(name: str, task: Task, cont: Continuation, max_passes: int) -> dict:
    """Run a library solver; record after every iteration (``init_state`` counted), then
    ``lo.check`` the run (its trace so far when the pass budget stopped it)."""
    solver = library_solver(name, cont, max_iter=10 ** 6)
    rec = Recorder(task.q, task.x0.device)
    trace = lo.Trace(1, initial_forward=torch.ones(1, dtype=torch.long), initial_backward=torch.ones(1, dtype=torch.long))

    def cb(k, state, r):
        rec.record(float(r["phi"][0]), float(r["grad_norm"][0]), float(r["eps"][0]),
                   also=lambda: trace.append(torch.zeros(1, dtype=torch.long), r))
        if task.q.forward_calls + task.q.backward_calls > max_passes:
            raise _OutOfBudget

    task.q.reset()
    rec.start()
    try:
        res = solver.run(task.problem, task.x0, callback=cb)
        reason, x, checked = res.reason[0], res.x, res
    except _OutOfBudget:
        reason, x, checked = "pass budget", None, trace
    report = lo.check(checked, task.problem, solver, constants=task_constants(task))
    check = {"ok": report.ok, "violations": [str(v) for v in report.violations[:5]],
             "n_violations": len(report.violations), "on": "result" if checked is not trace else "trace"}
    return {"rows": rec.rows, "reason": reason, "certified": reason == "converged",
            "smoothing": solver.smoothing.name, "x": x, "check": check,
            "config": {k: v for k, v in solver.config().items() if k != "max_iter"}}


# ---------------------------------------------------------------------------------------
# phi_eps for the quasi-Newton competitors
# ---------------------------------------------------------------------------------------
class PeerObjective:
    """The peers' ``phi_eps`` for a single-sample problem: the library's public
    :class:`~lda_opt.problem.SmoothedObjective` (``Problem.smoothed``: cached forwards, one
    backward per point and level) on a real view ``xr`` of ``x`` (complex problems:
    ``view_as_real``), with float values for the optimizers."""

    def __init__(self, problem: lo.Problem, smoothing: Smoothing, complex_x: bool, eps: float, memory: int = 6) -> None:
        self.obj = problem.smoothed(eps, smoothing, cache=memory)
        self.complex_x = complex_x

    def _as_x(self, xr: torch.Tensor) -> torch.Tensor:
        return torch.view_as_complex(xr.detach()) if self.complex_x else xr.detach()

    def value(self, xr: torch.Tensor, eps: float) -> float:
        self.obj.eps = eps
        return float(self.obj.value(self._as_x(xr))[0])

    def grad(self, xr: torch.Tensor, eps: float) -> torch.Tensor:
        """``grad phi_eps`` as a real tensor shaped like ``xr``."""
        self.obj.eps = eps
        g = self.obj.grad(self._as_x(xr))
        return torch.view_as_real(g) if self.complex_x else g

    def phi(self, xr: torch.Tensor) -> float:
        return float(self.obj.phi(self._as_x(xr))[0])


def run_torch_lbfgs(task: Task, cont: Continuation, max_passes: int, history: int = 10) -> dict:
    """``torch.optim.LBFGS`` (strong Wolfe) under the shared continuation."""
    cplx = task.x0.is_complex()
    obj = PeerObjective(task.problem, Huber(), cplx, cont.eps0)
    xr = (torch.view_as_real(task.x0) if cplx else task.x0).detach().clone().requires_grad_(True)
    def make():
        # max_eval: torch's default is max_iter * 5 // 4, which is 1 for max_iter=1 and leaves the
        # strong-Wolfe search a single trial (every rejected unit step was a stall and a
        # restart); 25 is torch's default budget (max_iter=20), i.e. up to 24 trials
        return torch.optim.LBFGS([xr], lr=1.0, max_iter=1, max_eval=25, history_size=history,
                                 line_search_fn="strong_wolfe", tolerance_grad=0.0, tolerance_change=0.0)

    opt = make()
    eps = cont.eps0
    rec = Recorder(task.q, task.x0.device)
    task.q.reset()

    def closure():
        x = xr.detach()
        xr.grad = obj.grad(x, eps).clone()
        return torch.tensor(obj.value(x, eps), dtype=xr.dtype)

    rec.start()
    reason, stalls, restarts = "running", 0, 0
    obj.grad(xr.detach(), eps)  # the start: one forward, one backward
    while reason == "running":
        before = xr.detach().clone()
        opt.step(closure)
        x = xr.detach()
        gn = float(obj.grad(x, eps).norm())
        moved = not torch.equal(before, x)
        if moved:
            rec.record(obj.phi(x), gn, eps)
        stalls = 0 if moved else stalls + 1
        if not moved:
            # the strong-Wolfe search gave up (t = 0), typically after an eps reduction made
            # the kept curvature pairs stale; the state then stays stuck: restart the history
            opt = make()
            restarts += 1
        if not math.isfinite(gn):
            reason = "nonfinite"
        elif cont.reduce(gn, eps):
            eps *= cont.gamma
            if cont.done(eps):
                reason = "converged"
        elif stalls >= 2:
            reason = "stalled"
        if task.q.forward_calls + task.q.backward_calls > max_passes and reason == "running":
            reason = "pass budget"
    return {"rows": rec.rows, "reason": reason, "certified": reason == "converged", "smoothing": "huber",
            "restarts": restarts, "x": torch.view_as_complex(xr.detach()) if cplx else xr.detach()}


def run_scipy_lbfgsb(task: Task, cont: Continuation, max_passes: int, history: int = 10) -> dict:
    """``scipy.optimize.minimize(method="L-BFGS-B")``, one call per smoothing level."""
    from scipy.optimize import minimize

    cplx = task.x0.is_complex()
    obj = PeerObjective(task.problem, Huber(), cplx, cont.eps0)
    xr0 = (torch.view_as_real(task.x0) if cplx else task.x0).detach()
    shape, dtype, dev = xr0.shape, xr0.dtype, xr0.device
    to_t = lambda v: torch.as_tensor(v, dtype=dtype, device=dev).reshape(shape)
    rec = Recorder(task.q, task.x0.device)
    task.q.reset()
    state = {"eps": cont.eps0, "reason": "running"}

    def fun(v):
        x = to_t(v)
        return obj.value(x, state["eps"]), obj.grad(x, state["eps"]).detach().cpu().double().numpy().ravel()

    def callback(intermediate_result):
        x = to_t(intermediate_result.x)
        gn = float(obj.grad(x, state["eps"]).norm())
        rec.record(obj.phi(x), gn, state["eps"])
        if not math.isfinite(gn):
            state["reason"] = "nonfinite"
            raise StopIteration
        if cont.reduce(gn, state["eps"]):
            state["hit"] = True
            raise StopIteration
        if task.q.forward_calls + task.q.backward_calls > max_passes:
            state["reason"] = "pass budget"
            raise StopIteration

    rec.start()
    v = xr0.cpu().double().numpy().ravel()
    while state["reason"] == "running":
        state["hit"] = False
        r = minimize(fun, v, jac=True, method="L-BFGS-B", callback=callback,
                     options={"maxcor": history, "ftol": 0.0, "gtol": 0.0, "maxiter": 10 ** 6, "maxfun": 10 ** 7})
        v = r.x
        if state["reason"] != "running":
            break
        if not state["hit"]:
            state["reason"] = f"stalled ({r.message})"
            break
        state["eps"] *= cont.gamma
        if cont.done(state["eps"]):
            state["reason"] = "converged"
    x = to_t(v)
    return {"rows": rec.rows, "reason": state["reason"], "certified": state["reason"] == "converged",
            "smoothing": "huber", "x": torch.view_as_complex(x) if cplx else x}


# ---------------------------------------------------------------------------------------
# driver, table, plot
# ---------------------------------------------------------------------------------------
def warm_up(task: Task, cont: Continuation) -> None:
    """Untimed: a few iterations of a library solver and of torch L-BFGS, so that the first
    competitor does not pay for the first calls of the kernels and the allocator."""
    library_solver("elda-lbfgs", cont, max_iter=3).run(task.problem, task.x0)
    run_torch_lbfgs(task, cont, max_passes=6)
    task.q.reset()


def run_competitor(name: str, task: Task, cont: Continuation, max_passes: int) -> dict:
    """One run of competitor ``name`` (its rows, reason, final point, ...)."""
    if name == "torch-lbfgs":
        return run_torch_lbfgs(task, cont, max_passes)
    if name == "scipy-lbfgsb":
        return run_scipy_lbfgsb(task, cont, max_passes)
    return run_library(name, task, cont, max_passes)


def race(task: Task, cont: Continuation, competitors, max_passes: int, repeat: int = 1) -> dict:
    """Run every competitor on ``task`` (after :func:`warm_up`); returns per-competitor
    summaries and curves.  With ``repeat > 1`` the competitors run ``repeat`` rounds,
    interleaved (round 1: all, round 2: all, ...); the passes must be the same in every round
    (the runs are deterministic), ``seconds`` / ``cpu_seconds`` are the medians over the
    rounds (each round's in ``seconds_runs`` / ``cpu_seconds_runs``), the curve the first's."""
    warm_up(task, cont)
    runs: dict[str, list[dict]] = {name: [] for name in competitors}
    walls: dict[str, list[float]] = {name: [] for name in competitors}
    for _ in range(repeat):
        for name in competitors:
            t0 = time.perf_counter()
            runs[name].append(run_competitor(name, task, cont, max_passes))
            walls[name].append(time.perf_counter() - t0)
    out = {}
    for name in competitors:
        r = runs[name][0]
        rows = r["rows"]
        last = rows[-1] if rows else {}
        finals = [rr["rows"][-1] if rr["rows"] else {} for rr in runs[name]]
        passes = {(f.get("forward"), f.get("backward")) for f in finals}
        if len(passes) != 1:
            raise RuntimeError(f"{name}: the rounds disagree on the passes {sorted(passes)}")
        x = r.pop("x")
        with torch.no_grad():
            err = None
            if x is not None:
                err = float((x - task.truth).abs().norm() / task.truth.abs().norm())
        med = {k: None if not rows else float(np.median([f[k] for f in finals])) for k in ("seconds", "cpu_seconds")}
        out[name] = {
            "certified": r["certified"], "reason": r["reason"], "smoothing": r["smoothing"],
            "iterations": len(rows),
            "forward": last.get("forward"), "backward": last.get("backward"),
            "passes": None if not rows else last["forward"] + last["backward"],
            "seconds": med["seconds"], "cpu_seconds": med["cpu_seconds"],
            "seconds_runs": [f.get("seconds") for f in finals], "cpu_seconds_runs": [f.get("cpu_seconds") for f in finals],
            "wall_seconds_total": float(np.median(walls[name])),
            "phi_final": last.get("phi"), "grad_norm_final": last.get("grad_norm"), "eps_final": last.get("eps"),
            "relative_error": err, "restarts": r.get("restarts"), "config": r.get("config"),
            "check": r.get("check"),
            "curve": {k: [row[k] for row in rows]
                      for k in ("forward", "backward", "seconds", "cpu_seconds", "phi", "grad_norm", "eps")},
        }
        o = out[name]
        chk = "" if o["check"] is None else f"  check {'ok' if o['check']['ok'] else 'VIOLATIONS'}"
        print(f"  {task.name:8s} {name:15s} {o['reason']:12s} iters {o['iterations']:5d} passes {o['passes']} "
              f"(F {o['forward']}, B {o['backward']}) {o['seconds'] or 0:.2f} s (CPU {o['cpu_seconds'] or 0:.2f} s)  "
              f"phi {o['phi_final']:.6g}  "
              f"|grad| {o['grad_norm_final']:.3g}{chk}", flush=True)
    return out


def plot(results: dict, path: Path) -> None:
    """phi - phi_best and ||grad phi_eps|| against passes and against seconds, per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(results["tasks"])
    fig, axes = plt.subplots(len(tasks), 4, figsize=(17, 3.6 * len(tasks)), squeeze=False)
    for i, tname in enumerate(tasks):
        comp = results["tasks"][tname]["competitors"]
        best = min(min(c["curve"]["phi"]) for c in comp.values() if c["curve"]["phi"])
        for name, c in comp.items():
            cv = c["curve"]
            if not cv["phi"]:
                continue
            passes = [f + b for f, b in zip(cv["forward"], cv["backward"])]
            gap = [max(p - best, 1e-12 * max(abs(best), 1.0)) for p in cv["phi"]]
            ls = "--" if name in PEERS + ("gd-armijo", "agd") else (":" if name in VARIANTS else "-")
            for j, (xs, ys) in enumerate(((passes, gap), (passes, cv["grad_norm"]),
                                          (cv["seconds"], gap), (cv["seconds"], cv["grad_norm"]))):
                axes[i, j].plot(xs, ys, ls, label=name + ("" if c["certified"] else " (no cert.)"), lw=1.2)
        for j, (xl, yl) in enumerate((("passes of q (forward + backward)", "phi - phi_best"),
                                      ("passes of q (forward + backward)", "||grad phi_eps||"),
                                      ("seconds", "phi - phi_best"), ("seconds", "||grad phi_eps||"))):
            ax = axes[i, j]
            ax.set_yscale("log")
            ax.set_xlabel(xl)
            ax.set_ylabel(yl)
            ax.set_title(tname, fontsize=9)
        axes[i, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point; returns the result dict (also written as JSON)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    ap.add_argument("--tasks", nargs="*", default=list(TASKS), choices=TASKS)
    ap.add_argument("--competitors", nargs="*", default=list(COMPETITORS), choices=COMPETITORS + VARIANTS)
    ap.add_argument("--merge", action="store_true",
                    help="add these competitors to the race.json already in the output folder")
    ap.add_argument("--size", type=int, default=32, help="MRI image size")
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--weight-mri", type=float, default=0.01)
    ap.add_argument("--weight-cs", type=float, default=0.01)
    ap.add_argument("--eps0", type=float, default=1e-2)
    ap.add_argument("--gamma", type=float, default=0.9)
    ap.add_argument("--sigma", type=float, default=1.0)
    ap.add_argument("--eps-tol", type=float, default=1e-3)
    ap.add_argument("--max-passes", type=int, default=6000)
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds per competitor, interleaved; seconds are the medians (passes must agree)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 16x16 MRI, FeatureCNN(8, 2), loose tolerance")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.size, args.width, args.depth, args.eps_tol, args.max_passes = 16, 8, 2, 5e-3, 1500
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    cont = Continuation(args.eps0, args.gamma, args.sigma, args.eps_tol)
    out = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
           "continuation": cont.__dict__, "environment": environment(args.device, args.threads), "tasks": {}}
    for tname in args.tasks:
        if tname == "mri":
            task = mri_task(args.size, args.width, args.depth, args.weight_mri, dtype, args.device)
        elif tname == "mri-64":
            task = shipped_mri_task(dtype, args.device)
        else:
            task = cs_task(args.width, args.depth, args.weight_cs, dtype, args.device)
        print(f"task {tname}: {task.info}", flush=True)
        comp = race(task, cont, args.competitors, args.max_passes, args.repeat)
        out["tasks"][tname] = {"info": task.info, "competitors": comp, "table": table(comp)}
    out["environment"]["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    d = output_dir(args.out, args.quick)
    if args.merge and (d / "race.json").exists():
        old = json.loads((d / "race.json").read_text())
        run = len(old.get("merged_runs", [])) + 1
        for tname, t in out["tasks"].items():
            for c in t["competitors"].values():
                c["run"] = run
            if tname in old["tasks"]:
                old["tasks"][tname]["competitors"].update(t["competitors"])
                old["tasks"][tname]["table"] = table(old["tasks"][tname]["competitors"])
            else:
                old["tasks"][tname] = t
        old.setdefault("merged_runs", []).append({"config": out["config"], "environment": out["environment"]})
        out = old
    stem = "race_quick" if args.quick and args.out is None else "race"
    (d / f"{stem}.json").write_text(json.dumps(out, indent=1))
    plot(out, d / f"{stem}.png")
    (d / f"{stem}.md").write_text(markdown(out))
    print(markdown(out))
    print(f"wrote {d / stem}.json, .png and .md")
    return out


def table(comp: dict) -> list[dict]:
    """Rows sorted by passes to the certificate (uncertified last), with the passes and
    seconds as ratios to ``torch-lbfgs`` of the same run (None where it is absent)."""
    ref = comp.get("torch-lbfgs")
    ratio = lambda a, b: None if a is None or b in (None, 0) else a / b
    rows = [{"competitor": n, "certified": c["certified"], "reason": c["reason"], "passes": c["passes"],
             "forward": c["forward"], "backward": c["backward"], "seconds": c["seconds"],
             "iterations": c["iterations"], "phi_final": c["phi_final"],
             "check_ok": None if c.get("check") is None else c["check"]["ok"],
             "cpu_seconds": c.get("cpu_seconds"), "run": c.get("run", 0),
             "passes_vs_torch_lbfgs": ratio(c["passes"], ref and ref["passes"]),
             "seconds_vs_torch_lbfgs": ratio(c["seconds"], ref and ref["seconds"]),
             "cpu_seconds_vs_torch_lbfgs": ratio(c.get("cpu_seconds"), ref and ref.get("cpu_seconds"))}
            for n, c in comp.items()]
    return sorted(rows, key=lambda r: (not r["certified"], r["passes"] if r["passes"] is not None else math.inf))


def markdown(results: dict) -> str:
    """The race table: per task, passes and seconds to the certificate and their ratios to
    torch L-BFGS, the ``lo.check`` verdict of the library's runs."""
    lines = []
    merged = results.get("merged_runs", [])
    if merged:
        lines += ["Runs: 0 = the first run; " + "; ".join(
            f"{i + 1} = merged run ({', '.join(m['config']['competitors'])}, repeat {m['config'].get('repeat', 1)})"
            for i, m in enumerate(merged)) + ".  Passes compare across runs; seconds (and their ratios "
            "to torch-lbfgs, whose row is from the last run) only within a run.", ""]
    for tname, t in results["tasks"].items():
        lines += [f"### {tname} ({', '.join(f'{k} {v}' for k, v in t['info'].items())})", "",
                  ("| competitor | certified | passes | x torch-lbfgs | wall s | x torch-lbfgs | CPU s | x torch-lbfgs "
                   "| iterations | phi | lo.check | run |"),
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in t["table"]:
            f = lambda v, fmt: "-" if v is None else format(v, fmt)
            cert = "yes" if r["certified"] else f"no ({r['reason']})"
            chk = "-" if r.get("check_ok") is None else ("clean" if r["check_ok"] else "VIOLATIONS")
            lines.append(f"| {r['competitor']} | {cert} | {f(r['passes'], 'd')} | {f(r.get('passes_vs_torch_lbfgs'), '.2f')} "
                         f"| {f(r['seconds'], '.2f')} | {f(r.get('seconds_vs_torch_lbfgs'), '.2f')} "
                         f"| {f(r.get('cpu_seconds'), '.2f')} | {f(r.get('cpu_seconds_vs_torch_lbfgs'), '.2f')} | {r['iterations']} "
                         f"| {f(r['phi_final'], '.6g')} | {chk} | {r.get('run', 0)} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(0 if main() else 1)
