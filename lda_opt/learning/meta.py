r"""Meta-learning of LDA-Net (meta-LDA, Sec. 3.3, Algorithm 2): task weights and the penalty method.

Tasks ``tau_i`` are (sampling pattern, ratio) pairs (:class:`MetaTask`).  The network of task
``i`` is the unrolled meta-LDA (``LDANet(algorithm="meta-lda")``) on

.. math::
    F_{\theta,\omega_i}(y) \approx \arg\min_x f(x, y) + \sigma(\omega_i)\, r(x; \theta)
    \qquad \text{(eq. 12)}

-- ``theta`` (the CNN, the per-phase ``alpha_t``, ``tau_t`` and ``eps_0``) is shared, ``omega_i``
is one scalar per task and ``kappa_i = sigmoid(omega_i)`` is the weight every sample of task
``i`` passes to the solver (``net.problem(fidelity, weight=sigmoid(omega)[task_ids])``).

Losses.  ``L(theta, omega; B) = mean_{j in B} 1/2 ||F_{theta,omega_{i(j)}}(y_j) - x*_j||^2`` (eqs.
13-14 and the task sum of (16), as a batch **mean**, the loss of the standard loop; see
``theory/meta_learning.md`` for the factor against the paper's sum).  The bilevel problem
(15)-(16) is relaxed to its first-order form (17) and then to the penalty objective

.. math::
    \tilde L(\theta, \omega; B^{tr}, B^{val}) = L(\theta, \omega; B^{val})
        + \frac{\lambda}{2}\|\nabla_\theta L(\theta, \omega; B^{tr})\|^2 \qquad \text{(eq. 18)}

(:func:`penalty_objective`): ``grad_theta L~ = grad_theta L_val + lam H_{theta theta} L_tr g`` and
``grad_omega L~ = grad_omega L_val + lam H_{omega theta} L_tr g`` with ``g = grad_theta L_tr``,
Hessian-vector products obtained by double backward through the unrolled phases.

Algorithm 2 (:func:`train_meta`, :func:`inner_loop`, :func:`outer_schedule`): while ``delta >
delta_tol`` (one outer iteration = one epoch of cross-task mini-batches, each of
``train.batch_size`` samples of every task's ``D_val`` and of its ``D_tr``): on every batch,
while ``||grad_theta L~||^2 + ||grad_omega L~||^2 > delta`` (at most ``meta.max_inner`` rounds),
take ``meta.theta_steps`` Adam steps in ``theta`` then one Adam step in ``omega`` (rate
``meta.omega_lr``); after the epoch ``delta <- nu_delta delta``, ``lam <- nu_lam lam``.  The
epochs follow the stair plan of :meth:`OptimConfig.stages` (a fresh Adam per stage), which
must account for exactly the :func:`outer_iterations` of the schedule (107 for the paper's
values, Sec. 5.2).

Conventional training is the special case of one task, ``lam = 0``, ``omega = "fixed"`` (the
net's fixed ``kappa``), all samples in ``D_val`` and ``max_inner = 1``: it then takes exactly
the batches and Adam steps of ``train.mode = "standard"`` and gives a bit-identical network
(``tests/learning/test_meta.py``).

Unseen tasks (Sec. 5.4): ``theta`` frozen, only a new ``omega`` is fitted by minimizing loss (13)
on a few samples of the new task for a few epochs (:func:`adapt_omega`; the paper: 100
samples, 50 epochs); it starts from :func:`initial_omega` (the paper does not say; we
interpolate the trained ``omega`` of the same pattern linearly in the ratio).
"""

from __future__ import annotations

import functools
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from .._atomic import fault_point, remove_stale_temps
from .._validate import integer, real
from ..data import random_ellipses
from ..data.masks import MASKS
from ..metrics import psnr
from ..nets import save_checkpoint
from ..operators import MRI
from ..tasks import Measurement
from .config import TaskConfig, TrainConfig
from .datasets import VAL_OFFSET
from .losses import reconstruction_loss
from .net import LDANet
from .train import (
    _RUN_FILES,
    BEST_FILE,
    CONFIG_FILE,
    LOG_FILE,
    MODEL_FILE,
    _data_range,
    _finish,
    _plot,
    _progress_bar,
    _resume_run,
    _save_state,
    _write_json,
    build_net,
    checkpoint_metadata,
    evaluate,
)

__all__ = [
    "META_PLOT",
    "OMEGA_MODES",
    "TASK_SEED_STEP",
    "InnerRecord",
    "MetaConfig",
    "MetaModel",
    "MetaTask",
    "adapt_omega",
    "evaluate_task",
    "initial_omega",
    "inner_loop",
    "load_meta_net",
    "outer_iterations",
    "outer_schedule",
    "penalty_objective",
    "task_data",
    "train_meta",
]

#: ``meta.omega``: one learned ``omega_i`` per task (the paper), one learned ``omega`` shared
#: by all tasks (one ``kappa``: the conventional arm on the union of tasks), or none (the
#: net's fixed ``kappa``: the standard loop)
OMEGA_MODES = ("per_task", "shared", "fixed")
#: the phantoms of task ``i`` are drawn with seed ``data.seed + TASK_SEED_STEP * i``
TASK_SEED_STEP = 1009
#: the plot of the schedule and the gradient norms
META_PLOT = "meta.png"


def _cfg(name: str, check, *args, **kw):
    return check(name, *args, kind_error=ValueError, **kw)


@dataclass(kw_only=True)
class MetaTask:
    """One task ``tau_i``: a k-space ``mask`` (a name of :data:`lda_opt.data.MASKS`) of sampling
    ``ratio`` in (0, 1], seeded by ``mask_seed``; the shape and noise are the config's
    ``task`` section's."""

    mask: str = "radial"
    ratio: float = 0.2
    mask_seed: int = 0

    def __post_init__(self) -> None:
        if self.mask not in MASKS:
            raise ValueError(f"meta.tasks: mask must be one of {sorted(MASKS)}; got {self.mask!r}")
        self.ratio = _cfg("meta.tasks: ratio", real, self.ratio, 0.0, 1.0, hi_open=False)
        self.mask_seed = _cfg("meta.tasks: mask_seed", integer, self.mask_seed, 0)

    @property
    def name(self) -> str:
        """``"radial_20"`` (pattern and percent; ``"_s3"`` appended for ``mask_seed = 3``)."""
        pct = f"{100 * self.ratio:g}".replace(".", "p")
        return f"{self.mask}_{pct}" + (f"_s{self.mask_seed}" if self.mask_seed else "")

    def task_config(self, base: TaskConfig) -> TaskConfig:
        """``base`` (kind ``"mri"``) with this task's mask, ratio and mask seed."""
        return replace(base, mask=self.mask, ratio=self.ratio, mask_seed=self.mask_seed)


def _paper_tasks() -> tuple[MetaTask, ...]:
    return tuple(MetaTask(mask="radial", ratio=r) for r in (0.1, 0.2, 0.3, 0.4))


@dataclass(kw_only=True)
class MetaConfig:
    """The ``meta`` section of a ``train.mode = "meta"`` config (meta-LDA Sec. 3.3, 5.2).

    ``tasks``: the seen tasks, a list of ``{"mask", "ratio", "mask_seed"}`` (default: the
    paper's radial 10/20/30/40 %); every task measures its own ``data.train`` phantoms, of
    which the first ``val_per_task`` form ``D_val^i`` and the rest ``D_tr^i`` (``val_per_task =
    None``: half, rounded up; ``= data.train``: every sample in ``D_val``, no penalty data,
    needs ``lam0 = 0``).  ``omega``: one of :data:`OMEGA_MODES`; ``omega0``: the initial
    ``omega_i`` (``kappa = sigmoid(omega0)``).  Algorithm 2: ``delta0``, ``nu_delta`` in (0, 1),
    ``delta_tol``, ``lam0 >= 0``, ``nu_lam >= 1`` (the paper: 1e-3, 0.95, 4.35e-6, 1e-5,
    1.001, Sec. 5.2), ``theta_steps`` (the ``K`` theta-steps of Line 7; not given in the
    paper), ``max_inner`` (a cap on the rounds of the Line-6 loop per batch; ours),
    ``omega_lr`` (``rho_omega``, Adam; the paper's Adam rate 1e-3).
    """

    tasks: tuple[MetaTask, ...] = field(default_factory=_paper_tasks)
    val_per_task: int | None = None
    omega: str = "per_task"
    omega0: float = 0.0
    omega_lr: float = 1e-3
    delta0: float = 1e-3
    nu_delta: float = 0.95
    delta_tol: float = 4.35e-6
    lam0: float = 1e-5
    nu_lam: float = 1.001
    theta_steps: int = 1
    max_inner: int = 10

    def __post_init__(self) -> None:
        if not isinstance(self.tasks, (tuple, list)) or not self.tasks:
            raise ValueError(f"meta.tasks must be a non-empty list of tasks; got {self.tasks!r}")
        tasks = []
        for t in self.tasks:
            if isinstance(t, dict):
                unknown = sorted(set(t) - {"mask", "ratio", "mask_seed"})
                if unknown:
                    raise ValueError(f"unknown key(s) {unknown} in meta.tasks; valid keys: ['mask', 'mask_seed', 'ratio']")
                t = MetaTask(**t)
            if not isinstance(t, MetaTask):
                raise ValueError(f"meta.tasks entries must be objects {{mask, ratio, mask_seed}}; got {t!r}")  # noqa: TRY004 - config content
            tasks.append(t)
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"meta.tasks must be distinct; got {names}")
        self.tasks = tuple(tasks)
        if self.val_per_task is not None:
            _cfg("meta.val_per_task", integer, self.val_per_task, 1)
        if self.omega not in OMEGA_MODES:
            raise ValueError(f"meta.omega must be one of {list(OMEGA_MODES)}; got {self.omega!r}")
        _cfg("meta.omega0", real, self.omega0)
        _cfg("meta.omega_lr", real, self.omega_lr, 0.0)
        _cfg("meta.delta0", real, self.delta0, 0.0)
        _cfg("meta.nu_delta", real, self.nu_delta, 0.0, 1.0)
        _cfg("meta.delta_tol", real, self.delta_tol, 0.0)
        _cfg("meta.lam0", real, self.lam0, 0.0, lo_open=False)
        _cfg("meta.nu_lam", real, self.nu_lam, 1.0, lo_open=False)
        _cfg("meta.theta_steps", integer, self.theta_steps, 1)
        _cfg("meta.max_inner", integer, self.max_inner, 1)
        if self.delta0 <= self.delta_tol:
            raise ValueError(f"meta.delta0 must be > meta.delta_tol = {self.delta_tol} (else Algorithm 2 runs no "
                             f"outer iteration); got {self.delta0}")

    def n_val(self, n: int) -> int:
        """``|D_val^i|`` of a task with ``n`` samples."""
        return -(-n // 2) if self.val_per_task is None else self.val_per_task

    @property
    def n_omega(self) -> int:
        """The number of learned ``omega`` entries."""
        return {"per_task": len(self.tasks), "shared": 1, "fixed": 0}[self.omega]


# ---------------------------------------------------------------------------------------
# Algorithm 2: the schedule, the penalty objective (18), the inner loop (Lines 6-11)
# ---------------------------------------------------------------------------------------
def outer_schedule(delta0: float, nu_delta: float, delta_tol: float, lam0: float = 0.0,
                   nu_lam: float = 1.0) -> list[tuple[float, float]]:
    """The ``(delta, lam)`` of every outer iteration of Algorithm 2 (Lines 3, 12): ``delta_0 =
    delta0``, ``delta_{j+1} = nu_delta delta_j`` (likewise ``lam``), while ``delta_j > delta_tol``
    (the multiplications in this order, as the loop does them)."""
    delta0 = real("delta0", delta0, 0.0, kind_error=ValueError)
    nu_delta = real("nu_delta", nu_delta, 0.0, 1.0, kind_error=ValueError)
    delta_tol = real("delta_tol", delta_tol, 0.0, kind_error=ValueError)
    lam, nu_lam = real("lam0", lam0, 0.0, lo_open=False, kind_error=ValueError), real(
        "nu_lam", nu_lam, 1.0, lo_open=False, kind_error=ValueError)
    out, delta = [], delta0
    while delta > delta_tol:
        out.append((delta, lam))
        delta, lam = nu_delta * delta, nu_lam * lam
    return out


def outer_iterations(mc: MetaConfig) -> int:
    """The number of outer iterations (epochs) of ``mc``'s schedule (107 for the paper's)."""
    return len(outer_schedule(mc.delta0, mc.nu_delta, mc.delta_tol))


def penalty_objective(loss_val: torch.Tensor, loss_tr: torch.Tensor | None, theta: list[torch.Tensor],
                      lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``(L~, P)`` of eq. (18): ``L~ = loss_val + lam P``, ``P = 1/2 ||grad_theta loss_tr||^2``.

    ``grad_theta loss_tr`` is taken with ``create_graph=True``, so differentiating ``L~`` gives
    the Hessian-vector products ``H_{theta theta} L_tr g``, ``H_{omega theta} L_tr g`` (double
    backward).  ``lam = 0`` (or ``loss_tr`` None) gives ``L~ = loss_val`` itself, with no graph
    of ``loss_tr`` (the standard loss, bit for bit) and ``P = 0``.
    """
    if lam == 0 or loss_tr is None:
        return loss_val, torch.zeros((), dtype=loss_val.dtype)
    g = torch.autograd.grad(loss_tr, theta, create_graph=True, allow_unused=True)
    pen = 0.5 * sum(gi.square().sum() for gi in g if gi is not None)
    return loss_val + lam * pen, pen


@dataclass
class InnerRecord:
    """What the inner loop (Algorithm 2 Lines 6-11) did on one batch: ``rounds`` (each
    ``theta_steps`` theta-steps and one omega-step), the squared gradient norms of ``L~`` at
    the batch's start (``first``) and at the last test made (``last``; after the capped
    last round no test is made), ``(||grad_theta||^2, ||grad_omega||^2)``; ``converged``: a test
    found the sum ``<= delta`` (False: the round cap ``max_inner`` ended the loop); ``evaluations``: gradient evaluations of ``L~``; ``loss``, ``penalty``: at the
    start; ``finite``: False when ``L~`` was not finite (the batch is then skipped)."""

    rounds: int
    theta_steps: int
    omega_steps: int
    first: tuple[float, float]
    last: tuple[float, float]
    converged: bool
    evaluations: int
    loss: float
    penalty: float
    finite: bool = True


def _sq(grads) -> float:
    return float(sum(g.detach().square().sum() for g in grads if g is not None)) if grads else 0.0


def inner_loop(grad_fn: Callable, theta_step: Callable, omega_step: Callable | None, delta: float, theta_steps: int,
               max_inner: int) -> InnerRecord:
    """Lines 6-11 of Algorithm 2 on one batch.

    ``grad_fn()`` returns ``(L~, P, g_theta, g_omega)`` at the current parameters (lists of
    tensors; ``g_omega`` empty when omega is not learned); ``theta_step(g_theta)`` /
    ``omega_step(g_omega)`` take one step.  While ``||g_theta||^2 + ||g_omega||^2 > delta`` and
    fewer than ``max_inner`` rounds were taken: ``theta_steps`` theta-steps (the first with the
    gradient just tested, each later one at the new theta), then one omega-step at the new
    theta (skipped when ``omega_step`` is None), then a new test (not evaluated after the last
    allowed round).  A non-finite ``L~`` ends the loop with no step.
    """
    loss, pen, gt, go = grad_fn()
    evals, rounds, nt, no = 1, 0, 0, 0
    first = last = (_sq(gt), _sq(go))
    finite = bool(torch.isfinite(loss)) and all(math.isfinite(v) for v in first)
    out = {"loss": float(loss.detach()), "penalty": float(pen.detach())}
    if not finite:
        return InnerRecord(0, 0, 0, first, last, False, evals, finite=False, **out)
    while rounds < max_inner and sum(last) > delta:
        for k in range(theta_steps):
            if k > 0:
                _, _, gt, _ = grad_fn()
                evals += 1
            theta_step(gt)
            nt += 1
            fault_point("step")
        if omega_step is not None:
            _, _, _, go = grad_fn()
            evals += 1
            omega_step(go)
            no += 1
        rounds += 1
        if rounds < max_inner:
            _, _, gt, go = grad_fn()
            evals += 1
            last = (_sq(gt), _sq(go))
    return InnerRecord(rounds, nt, no, first, last, rounds < max_inner, evals, **out)


# ---------------------------------------------------------------------------------------
# the model: the shared LDA-Net theta and the task weights omega
# ---------------------------------------------------------------------------------------
class MetaModel(nn.Module):
    """The shared network ``net`` (``theta``) and the learned ``omega`` ((n_omega,), or None
    for ``meta.omega = "fixed"``); ``kappa(task_ids)`` is the (B,) weight of eq. (12)."""

    def __init__(self, net: LDANet, n_omega: int, omega0: float = 0.0) -> None:
        super().__init__()
        self.net = net
        dtype = net.raw_eps0.dtype
        self.omega = nn.Parameter(torch.full((n_omega,), float(omega0), dtype=dtype)) if n_omega else None

    @property
    def phases(self) -> int:
        return self.net.phases

    def grow(self, phases: int) -> None:
        self.net.grow(phases)

    def kappa(self, task_ids: torch.Tensor) -> torch.Tensor | None:
        """``sigmoid(omega_{i(j)})`` per sample (None: the net's fixed ``kappa``)."""
        if self.omega is None:
            return None
        ids = task_ids if self.omega.numel() > 1 else torch.zeros_like(task_ids)
        return torch.sigmoid(self.omega)[ids]

    def task_kappa(self, i: int) -> float | None:
        """``kappa`` of task ``i`` as a float (None: fixed)."""
        if self.omega is None:
            return None
        return float(torch.sigmoid(self.omega.detach()[i if self.omega.numel() > 1 else 0]))

    def loss(self, m: Measurement, task_ids: torch.Tensor, ssim_weight: float = 0.0, callback=None) -> torch.Tensor:
        """``L(theta, omega; batch)``: the batch mean of 1/2 ||F_{theta, omega_i}(y) - x*||^2 (eqs.
        13-14); ``callback`` sees every phase (:meth:`LDANet.forward`)."""
        x, _ = self.net(self.net.problem(m.fidelity(), self.kappa(task_ids)), m.x0, callback=callback)
        return reconstruction_loss(x, m.truth, ssim_weight, _data_range(m))


def _adam(model: MetaModel, tc, mc: MetaConfig) -> torch.optim.Optimizer:
    """One Adam: group 0 the theta of ``model.net`` (the standard loop's settings), group 1 the
    omega (rate ``meta.omega_lr``); a step updates only the tensors given a gradient."""
    groups = [{"params": list(model.net.parameters())}]
    if model.omega is not None:
        groups.append({"params": [model.omega], "lr": mc.omega_lr})
    return torch.optim.Adam(groups, lr=tc.lr, betas=tuple(tc.betas))


# ---------------------------------------------------------------------------------------
# data: every task's D_tr, D_val and held-out validation set, joined into cross-task sets
# ---------------------------------------------------------------------------------------
@dataclass
class TaskData:
    """The cross-task sets: ``val`` (every ``D_val^i``), ``tr`` (every ``D_tr^i``, or None), their
    task ids, each task's sample ranges, and ``held_out[i]``: task ``i``'s validation set
    (``data.val`` phantoms, never trained on)."""

    val: Measurement
    val_ids: torch.Tensor
    val_ranges: list[tuple[int, int]]
    tr: Measurement | None
    tr_ids: torch.Tensor | None
    tr_ranges: list[tuple[int, int]]
    held_out: list[Measurement]


def _join(parts: list[Measurement]) -> Measurement:
    """One measurement of the samples of ``parts`` (MRI), each with its own mask (a single
    part is returned as it is: its operator and tensors unchanged)."""
    if len(parts) == 1:
        return parts[0]
    masks = torch.cat([p.operator.mask.expand(p.y.shape[0], *p.operator.mask.shape[1:]) for p in parts])
    return Measurement(MRI(masks), torch.cat([p.y for p in parts]), torch.cat([p.x0 for p in parts]),
                       torch.cat([p.truth for p in parts]))


def task_data(config: TrainConfig) -> TaskData:
    """Build (deterministically) the sets of a meta config: task ``i`` measures
    ``data.train`` random-ellipse phantoms (seed ``data.seed + TASK_SEED_STEP i``: task 0 has the
    standard loop's training set) with its mask; the first ``n_val`` are ``D_val^i``, the rest
    ``D_tr^i``; its held-out set is the ``data.val`` phantoms of seed ``data.seed + VAL_OFFSET``."""
    mc, d = config.meta, config.data
    if config.task.kind != "mri":
        raise ValueError(f"train.mode = 'meta' needs task.kind = 'mri' (the tasks are sampling masks); "
                         f"got {config.task.kind!r}")
    if d.natural:
        raise ValueError("train.mode = 'meta' uses phantoms only: data.natural must be 0")
    n_val = mc.n_val(d.train)
    if n_val > d.train:
        raise ValueError(f"meta.val_per_task must be <= data.train = {d.train}; got {n_val}")
    if n_val == d.train and mc.lam0 > 0:
        raise ValueError("meta.lam0 > 0 needs training data for the penalty: meta.val_per_task < data.train")
    cdt = torch.complex128 if config.train.dtype == "float64" else torch.complex64
    shape = config.task.shape
    vals, trs, held = [], [], []
    held_truth = random_ellipses(d.val, size=shape, seed=d.seed + VAL_OFFSET, dtype=cdt, max_phase=d.max_phase)
    for i, t in enumerate(mc.tasks):
        task = t.task_config(config.task).build()
        m = task.measure(random_ellipses(d.train, size=shape, seed=d.seed + TASK_SEED_STEP * i, dtype=cdt,
                                         max_phase=d.max_phase))
        vals.append(m if n_val == d.train else m.select(torch.arange(n_val)))
        if n_val < d.train:
            trs.append(m.select(torch.arange(n_val, d.train)))
        held.append(task.measure(held_truth))

    def ids_ranges(parts):
        sizes = [p.y.shape[0] for p in parts]
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        ids = torch.cat([torch.full((s,), i, dtype=torch.long) for i, s in enumerate(sizes)])
        return ids, [(a, a + s) for a, s in zip(starts, sizes)]

    v_ids, v_rng = ids_ranges(vals)
    t_ids, t_rng = ids_ranges(trs) if trs else (None, [])
    return TaskData(_join(vals), v_ids, v_rng, _join(trs) if trs else None, t_ids, t_rng, held)


def _epoch_batches(seed: int, e: int, data: TaskData, J: int) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """The cross-task batches ``(B_val, B_tr)`` (sample indices) of epoch ``e`` (Lines 4-5):
    one generator seeded by ``(seed, e)`` as the standard loop's draws a permutation of every
    ``D_val^i`` (task order), then of every ``D_tr^i``; batch ``s`` takes positions ``sJ ..
    (s+1)J - 1`` of each ``D_val^i`` permutation and, cyclically, ``min(J, |D_tr^i|)`` of each
    ``D_tr^i`` one."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + e)
    pv = [a + torch.randperm(b - a, generator=gen) for a, b in data.val_ranges]
    pt = [a + torch.randperm(b - a, generator=gen) for a, b in data.tr_ranges]
    steps = max(-(-(b - a) // J) for a, b in data.val_ranges)
    out = []
    for s in range(steps):
        bv = torch.cat([p[s * J:(s + 1) * J] for p in pv])
        bt = None
        if pt:
            bt = torch.cat([p[(s * min(J, p.numel()) + torch.arange(min(J, p.numel()))) % p.numel()] for p in pt])
        out.append((bv, bt))
    return out


# ---------------------------------------------------------------------------------------
# the training run (train.mode = "meta")
# ---------------------------------------------------------------------------------------
def _meta_plot(out: Path, log: list[dict], title: str) -> None:
    from lda_opt._plotting import pyplot

    plt = pyplot()

    from .._atomic import atomic_write

    ep = [r["epoch"] for r in log]
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.4))
    ax[0].semilogy(ep, [r["delta"] for r in log], "k-", label="delta")
    ax[0].semilogy(ep, [max(r["grad_theta_sq"], 1e-300) for r in log], "o-", ms=3, label="||grad_th L~||^2")
    if any(r["grad_omega_sq"] > 0 for r in log):
        ax[0].semilogy(ep, [max(r["grad_omega_sq"], 1e-300) for r in log], "s-", ms=3, label="||grad_om L~||^2")
    ax[0].set_xlabel("outer iteration (epoch)")
    ax[0].legend(fontsize=7)
    ax[1].plot(ep, [r["lam"] for r in log], "k-")
    ax[1].set_xlabel("outer iteration")
    ax[1].set_ylabel("lambda")
    for i in range(len(log[0]["kappa"]) if log[0]["kappa"] else 0):
        ax[2].plot(ep, [r["kappa"][i] for r in log], label=log[0]["tasks"][i] if len(log[0]["kappa"]) > 1 else "all")
    ax[2].set_xlabel("outer iteration")
    ax[2].set_ylabel("kappa = sigmoid(omega_i)")
    if log[0]["kappa"]:
        ax[2].legend(fontsize=7)
    fig.suptitle(f"{title}: meta-LDA Algorithm 2")
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.15, top=0.86, wspace=0.3)
    atomic_write(out / META_PLOT, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    plt.close(fig)


def _meta_info(model: MetaModel, mc: MetaConfig, config: TrainConfig) -> dict:
    """What a meta checkpoint stores beside the LDA-Net metadata: the tasks, omega, kappa."""
    omega = [] if model.omega is None else [float(v) for v in model.omega.detach().to(torch.float64)]
    kappa = [model.task_kappa(i) for i in range(len(mc.tasks))] if omega else []
    return {"omega_mode": mc.omega, "tasks": [{"name": t.name, **t.task_config(config.task).build().metadata()}
                                               for t in mc.tasks], "omega": omega, "kappa": kappa}


def evaluate_task(net: LDANet, m: Measurement, kappa: float | None, batch_size: int = 64,
                  ssim_weight: float = 0.0) -> dict[str, float]:
    """:func:`~lda_opt.learning.train.evaluate` (mean loss, PSNR, SSIM of the ``K``-phase
    reconstructions of ``m``) with the weight ``kappa`` of one task (None: the net's fixed one)."""
    return evaluate(net, m, batch_size=batch_size, ssim_weight=ssim_weight, weight=kappa)


def _evaluate_tasks(model: MetaModel, data: TaskData, tc) -> list[dict]:
    """The held-out loss, PSNR, SSIM of every task (its own ``kappa``)."""
    return [evaluate_task(model.net, m, model.task_kappa(i), max(tc.batch_size, 64), tc.ssim_weight)
            for i, m in enumerate(data.held_out)]


def _meta_epoch(model: MetaModel, opt, data: TaskData, config: TrainConfig, plan, e: int, delta: float, lam: float,
                bar) -> dict:
    """One outer iteration of Algorithm 2 (all the epoch's cross-task batches); its totals."""
    tc, mc = config.train, config.meta
    stage, _, j = plan[e]
    batches = _epoch_batches(config.seed, e, data, tc.batch_size)
    steps_per_epoch = len(batches)
    stage_steps = tc.stages()[stage][1] * steps_per_epoch
    theta = list(model.net.parameters())
    omega = [model.omega] if model.omega is not None else []
    tot = {"loss": 0.0, "penalty": 0.0, "gt": 0.0, "go": 0.0, "rounds": 0, "theta_steps": 0, "omega_steps": 0,
           "evaluations": 0, "converged": 0, "skipped": 0, "n": 0}
    last = (math.nan, math.nan)
    for s, (iv, it) in enumerate(batches):
        lr = tc.lr_at(j * steps_per_epoch + s, stage_steps, stage)
        opt.param_groups[0]["lr"] = lr
        bv, ids_v = data.val.select(iv), data.val_ids[iv]
        bt, ids_t = (data.tr.select(it), data.tr_ids[it]) if it is not None else (None, None)

        def grad_fn(bv=bv, ids_v=ids_v, bt=bt, ids_t=ids_t):
            loss_val = model.loss(bv, ids_v, tc.ssim_weight)
            loss_tr = model.loss(bt, ids_t, tc.ssim_weight) if (bt is not None and lam > 0) else None
            total, pen = penalty_objective(loss_val, loss_tr, theta, lam)
            if not torch.isfinite(total):
                return total, pen, [], []
            g = torch.autograd.grad(total, theta + omega, allow_unused=True)
            return total, pen, list(g[:len(theta)]), list(g[len(theta):])

        def step(grads, params, other):
            for p in other:
                p.grad = None
            for p, g in zip(params, grads):
                p.grad = g
            opt.step()
            for p in params:
                p.grad = None

        rec = inner_loop(grad_fn, functools.partial(step, params=theta, other=omega),
                         functools.partial(step, params=omega, other=theta) if omega else None,
                         delta, mc.theta_steps, mc.max_inner)
        nb = iv.numel()
        tot["n"] += nb
        tot["loss"] += rec.loss * nb
        tot["penalty"] += rec.penalty * nb
        tot["gt"] += rec.first[0]
        tot["go"] += rec.first[1]
        for k in ("rounds", "theta_steps", "omega_steps", "evaluations"):
            tot[k] += getattr(rec, k)
        tot["converged"] += rec.converged
        tot["skipped"] += not rec.finite
        last = rec.last
        if bar is not None:
            bar.update(1)
            bar.set_postfix(K=model.phases, loss=f"{rec.loss:.4g}", delta=f"{delta:.3g}")
    tot["steps"] = steps_per_epoch
    tot["last"] = last
    return tot


def train_meta(config: TrainConfig, out: Path, *, resume: bool = False, quiet: bool = False,
               stop_after: int | None = None, data: TaskData | None = None) -> dict:
    """Algorithm 2 of meta-LDA (``train.mode = "meta"``) into ``out``; returns ``log.json``.

    Epoch ``e`` (0-based) is outer iteration ``e`` with ``(delta_e, lam_e)`` of
    :func:`outer_schedule`, on the ``K`` phases of the stair plan (``train.stages()``, whose
    epochs must sum to :func:`outer_iterations`).  Every epoch writes ``model.safetensors``
    (the LDA-Net checkpoint; its metadata's ``"meta"`` holds the tasks, ``omega`` and ``kappa``),
    ``state.safetensors`` (theta, omega and Adam's moments: exact resume), ``log.json`` (one
    record per epoch: ``delta``, ``lam``, the squared gradient norms of ``L~`` -- mean over the
    batches of the first test, and the last test of the epoch --, rounds, steps, each task's
    held-out PSNR, ``omega``, ``kappa``), and at stage ends ``curves.png`` and ``meta.png``.
    ``data``: prebuilt :func:`task_data`.
    """
    tc, mc = config.train, config.meta
    if not isinstance(mc, MetaConfig):
        raise ValueError("train_meta needs a config with train.mode = 'meta'")  # noqa: TRY004 - a config value
    schedule = outer_schedule(mc.delta0, mc.nu_delta, mc.delta_tol, mc.lam0, mc.nu_lam)
    plan = [(s, K, j) for s, (K, E) in enumerate(tc.stages()) for j in range(E)]
    if len(plan) != len(schedule):
        raise ValueError(f"the stair plan of the train section has {len(plan)} epochs but Algorithm 2 with meta.delta0 "
                         f"= {mc.delta0}, meta.nu_delta = {mc.nu_delta}, meta.delta_tol = {mc.delta_tol} runs "
                         f"{len(schedule)} outer iterations: make train.epochs_first / epochs_stage sum to "
                         f"{len(schedule)}")
    if data is None:
        data = task_data(config)
    cfg_dict = config.to_dict()
    model = MetaModel(build_net(config), mc.n_omega, mc.omega0)
    make_opt = functools.partial(_adam, tc=tc, mc=mc)
    opt = make_opt(model)
    log: list[dict] = []
    start, seconds_before, best, summary = 0, 0.0, None, None
    remove_stale_temps(out, (*_RUN_FILES, META_PLOT))
    if resume:
        opt, summary, log, start, seconds_before, best = _resume_run(config, out, plan, cfg_dict, model, make_opt)
    else:
        _write_json(out / CONFIG_FILE, cfg_dict)
    x0_psnr = [float(psnr(m.x0, m.truth, _data_range(m)).mean()) for m in data.held_out]
    names = [t.name for t in mc.tasks]
    end = len(plan) if stop_after is None else min(len(plan), stop_after)
    steps_per_epoch = len(_epoch_batches(config.seed, 0, data, tc.batch_size))
    bar = _progress_bar(config, quiet, start, end, steps_per_epoch)
    t_run = time.perf_counter()
    for e in range(start, end):
        K = plan[e][1]
        if K != model.phases:  # stage boundary: warm start with more phases, fresh Adam
            model.grow(K)
            opt = make_opt(model)
        t0 = time.perf_counter()
        delta, lam = schedule[e]
        tot = _meta_epoch(model, opt, data, config, plan, e, delta, lam, bar)
        val = _evaluate_tasks(model, data, tc)
        stage, _, j = plan[e]
        n = max(tot["n"], 1)
        rec = {"epoch": e + 1, "stage": stage + 1, "phases": K, "epoch_in_stage": j + 1, "delta": delta, "lam": lam,
               "train_loss": tot["loss"] / n, "penalty": tot["penalty"] / n,
               "grad_theta_sq": tot["gt"] / tot["steps"], "grad_omega_sq": tot["go"] / tot["steps"],
               "last_grad_theta_sq": tot["last"][0], "last_grad_omega_sq": tot["last"][1],
               "rounds": tot["rounds"], "theta_steps": tot["theta_steps"], "omega_steps": tot["omega_steps"],
               "evaluations": tot["evaluations"], "converged_batches": tot["converged"],
               "skipped_steps": tot["skipped"], "steps": tot["steps"],
               "val_loss": sum(v["loss"] for v in val) / len(val), "val_psnr": sum(v["psnr"] for v in val) / len(val),
               "val_ssim": sum(v["ssim"] for v in val) / len(val), "tasks": names,
               "task_val_psnr": [v["psnr"] for v in val], "task_val_ssim": [v["ssim"] for v in val],
               "omega": [] if model.omega is None else [float(v) for v in model.omega.detach()],
               "kappa": [model.task_kappa(i) for i in range(len(names))] if model.omega is not None else [],
               "lr_last": opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t0,
               "eps0": float(model.net.eps0.detach()),
               **{k: [float(t) for t in v.detach()] for k, v in model.net.phase_params().items()}}
        log.append(rec)
        seconds = seconds_before + (time.perf_counter() - t_run)
        training = {"epochs": e + 1, "steps": sum(r["steps"] for r in log),
                    "theta_steps": sum(r["theta_steps"] for r in log), "omega_steps": sum(r["omega_steps"] for r in log),
                    "evaluations": sum(r["evaluations"] for r in log), "seconds": seconds, "threads": tc.threads,
                    "final_val_psnr": rec["val_psnr"], "stages": [list(st) for st in tc.stages()],
                    "val_samples_per_task": data.val_ranges[0][1] - data.val_ranges[0][0],
                    "train_samples_per_task": (data.tr_ranges[0][1] - data.tr_ranges[0][0]) if data.tr_ranges else 0,
                    "held_out_per_task": data.held_out[0].y.shape[0]}
        meta = checkpoint_metadata(model.net, config, training)
        meta["meta"] = _meta_info(model, mc, config)
        save_checkpoint(model.net.features, out / MODEL_FILE, **meta)
        if tc.select == "best_val" and stage == len(tc.stages()) - 1 and (best is None or rec["val_psnr"] > best["val_psnr"]):
            best = {"epoch": e + 1, "val_psnr": rec["val_psnr"]}
            save_checkpoint(model.net.features, out / BEST_FILE, **meta)
        summary = {"name": config.name, "config": cfg_dict, "mode": "meta", "tasks": names,
                   "val_psnr_x0": sum(x0_psnr) / len(x0_psnr), "task_val_psnr_x0": x0_psnr, "epochs": log,
                   "budget": training, "parameters": model.net.num_parameters(), "omega_parameters": mc.n_omega,
                   "meta": meta["meta"], "outer_iterations": len(schedule), "complete": e + 1 == len(plan),
                   "best": best}
        _save_state(out, model, opt, {"epoch": e + 1, "phases": model.phases, "config": cfg_dict, "summary": summary,
                                      "seconds": seconds, "best": best})
        _write_json(out / LOG_FILE, summary)
        if e + 1 == end or plan[e + 1][1] != K:
            _plot(out, log, config.name)
            _meta_plot(out, log, config.name)
    result = _finish(out, bar, log, summary, start, end, plan, config.name)
    if start >= end:
        _meta_plot(out, log, config.name)
    return result


# ---------------------------------------------------------------------------------------
# trained meta networks and unseen tasks (Sec. 5.4)
# ---------------------------------------------------------------------------------------
def load_meta_net(path) -> tuple[LDANet, dict]:
    """The LDA-Net of a meta checkpoint and its ``"meta"`` metadata (tasks, omega, kappa)."""
    from .shipped import load_lda_net

    net = load_lda_net(path)
    info = net.checkpoint_metadata.get("meta")
    if not isinstance(info, dict) or not isinstance(info.get("omega"), list) or not isinstance(info.get("tasks"), list):
        raise ValueError(f"{path} is not a meta-trained checkpoint (no 'meta' metadata with tasks and omega)")  # noqa: TRY004
    return net, info


def initial_omega(tasks: list[MetaTask] | tuple[MetaTask, ...], omega: list[float] | torch.Tensor,
                  new: MetaTask) -> float:
    """The starting ``omega`` of an unseen task ``new`` (the paper does not say how it starts):
    the trained ``omega`` of the same pattern interpolated linearly in the ratio between the two
    nearest trained ratios (the nearest one outside their range); the mean of all ``omega``
    when no trained task has ``new``'s pattern."""
    om = [float(v) for v in omega]
    if len(om) != len(tasks) or not om:
        raise ValueError(f"omega must have one entry per task ({len(tasks)}); got {len(om)}")
    same = sorted((t.ratio, w) for t, w in zip(tasks, om) if t.mask == new.mask)
    if not same:
        return sum(om) / len(om)
    r = new.ratio
    if r <= same[0][0]:
        return same[0][1]
    if r >= same[-1][0]:
        return same[-1][1]
    for (r0, w0), (r1, w1) in itertools.pairwise(same):
        if r0 <= r <= r1:
            return w0 + (w1 - w0) * (r - r0) / (r1 - r0)
    raise AssertionError("unreachable: r lies between the smallest and the largest trained ratio")


def adapt_omega(net: LDANet, m: Measurement, omega0: float, *, epochs: int = 50, batch_size: int = 8,
                lr: float = 1e-2, seed: int = 0) -> tuple[float, list[float]]:
    """Fit the ``omega`` of an unseen task with ``theta`` frozen (meta-LDA Sec. 5.4: "we fixed the
    parameter theta and retrained the task-specific parameter omega", 100 samples, 50 epochs):
    Adam (rate ``lr``) on ``omega`` alone minimizing loss (13) (batch mean) over ``epochs``
    epochs of seeded shuffled batches of ``m``.  Returns ``(omega, per-epoch mean loss)``; the
    network's parameters are never written (gradients are taken with respect to omega only)."""
    if not isinstance(net, LDANet):
        raise TypeError(f"net must be an LDANet; got {type(net).__name__}")
    omega0 = real("omega0", omega0, kind_error=ValueError)
    epochs = integer("epochs", epochs, 1, kind_error=ValueError)
    batch_size = integer("batch_size", batch_size, 1, kind_error=ValueError)
    lr = real("lr", lr, 0.0, kind_error=ValueError)
    seed = integer("seed", seed, 0, kind_error=ValueError)
    dtype = net.raw_eps0.dtype
    omega = torch.tensor([omega0], dtype=dtype, requires_grad=True)
    opt = torch.optim.Adam([omega], lr=lr)
    n = m.y.shape[0]
    losses = []
    for e in range(epochs):
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + e))
        total = 0.0
        for s in range(0, n, batch_size):
            b = m.select(perm[s:s + batch_size])
            w = torch.sigmoid(omega).expand(b.y.shape[0])
            x, _ = net(net.problem(b.fidelity(), w), b.x0)
            loss = reconstruction_loss(x, b.truth, 0.0, _data_range(b))
            if not torch.isfinite(loss):
                raise ValueError(f"adapt_omega: non-finite loss at epoch {e + 1} (omega = {float(omega):.6g})")
            (g,) = torch.autograd.grad(loss, [omega])
            omega.grad = g
            opt.step()
            total += float(loss.detach()) * b.y.shape[0]
        losses.append(total / n)
    return float(omega.detach()), losses

