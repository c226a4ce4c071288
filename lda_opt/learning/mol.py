r"""MOL: the monotone-operator deep-equilibrium network (mol-deq-supplement), its training and use.

The model (supplement eqs. 1-2, Algorithm 1).  For data ``b`` of a linear operator ``A``,

.. math::

    x_{n+1} = \underbrace{R\big((1-a) x_n + a H_\theta(x_n)\big)}_{T(x_n)}
              + \underbrace{R(a \lambda A^H b)}_{z}, \qquad R = (I + a\lambda A^H A)^{-1},

iterated per sample until ``||x_n - x_{n-1}|| / ||x_{n-1}|| < kappa`` (eq. 3, ``kappa =
1e-4``); ``R`` is :meth:`lda_opt.operators.LinearOperator.normal_resolvent` (exact and
diagonal in k-space for MRI, CG to :data:`lda_opt.operators.CG_TOL` otherwise).  The fixed
point solves ``F(x*) + lambda A^H (A x* - b) = 0`` with ``F = I - H`` (independent of
``a``).  ``H_theta`` is :class:`lda_opt.nets.MOLCNN`; ``lambda > 0`` is learned
(``lambda = exp(raw)``), ``a`` is fixed.

Training (``train.mode = "mol"``, :func:`train_mol`): the loss of the fixed point,
differentiated implicitly (eqs. 4-5, Algorithm 2; :mod:`lda_opt.learning.deq`), plus the
Lipschitz constraint of the supplement (Sec. II):

* ``"lr"`` (MOL-LR): the log barrier ``-mu log(l_max - l)`` on the power-iteration estimate
  ``l`` of ``Lip(H)`` (:func:`lda_opt.nets.mol.lipschitz_estimate`, warm-started across
  steps), continued linearly (with matching slope) beyond ``l_max - e``;
* ``"sn"`` (MOL-SN): after every Adam step each convolution is projected so that the
  certified ``Lip(H) <= sn_bound`` (:func:`lda_opt.nets.mol.spectral_project_`);
* ``"none"``: unconstrained (with ``deq.backward = "unrolled"`` and ``kappa_fwd = 0`` this is
  the same map unrolled ``max_fwd`` times with autograd: the unconstrained baseline).

The estimated constant is logged every epoch.  :func:`check_contraction` is the checker of
the convergence guarantee (``theory/mol.md``).

Checkpoint (``model.safetensors``: the :class:`~lda_opt.nets.MOLCNN` weights; ``model.json``
metadata)::

    schema: 1, kind: "mol-deq", alpha, lam, raw_lam, constraint, deq: {kappa_fwd, ...},
    lipschitz: {estimate, certified}, dtype, problem: {...}, training: {...}

``lda-opt solve --checkpoint PATH`` on such a checkpoint runs :func:`solve_mol_checkpoint`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .._atomic import remove_stale_temps
from .._validate import integer, real
from ..bounds import mol_contraction_factor
from ..metrics import psnr
from ..nets import load_checkpoint, save_checkpoint
from ..nets.checkpoint import read_checkpoint_config
from ..nets.mol import (
    MOLCNN,
    certified_lipschitz,
    identity_init_,
    lipschitz_estimate,
    spectral_project_,
)
from ..tasks import task_from_metadata
from .deq import DEQConfig, FixedPointResult, equilibrium

__all__ = ["CONSTRAINTS", "ContractionReport", "MOLConfig", "MOLMap", "MOLNet", "build_mol", "check_contraction",
           "is_mol_checkpoint", "load_mol", "mol_metadata", "solve_mol_checkpoint", "train_mol"]

#: the Lipschitz constraints of :class:`MOLConfig`
CONSTRAINTS = ("lr", "sn", "none")
KIND = "mol-deq"


@dataclass(kw_only=True)
class MOLConfig:
    """The ``"mol"`` section of a training config (``train.mode = "mol"``).

    The CNN ``H`` is ``MOLCNN(width=net.width, depth=net.depth, kernel_size=net.kernel_size,
    delta=net.delta)`` (complex for MRI; the LDA-only fields of ``net`` are unused), trained
    for ``train.epochs_first`` epochs with the Adam settings of ``train``.

    ``alpha``: the step ``a`` of eq. (1), in (0, 2) (contraction needs ``a < 2 / (1 + L_H)``);
    ``lam``: the initial ``lambda`` (> 0), learned when ``learn_lam``.  ``residual``: ``H = I -
    F_theta`` with the CNN ``F_theta`` (the supplement's form; ``false``: ``H`` is the CNN,
    which MOL-SN needs).  ``constraint``: one of
    :data:`CONSTRAINTS`; ``l_max``, ``barrier_e``, ``mu``: the MOL-LR barrier
    ``-mu log(l_max - l)`` (linear beyond ``l_max - barrier_e``); ``power_iters``: power
    iterations per step (warm-started), at the start ``x_0`` and the fixed point ``x*`` of the
    first ``lip_samples`` images of the batch;
    ``sn_bound``: the certified bound of MOL-SN; ``init_lipschitz``, ``init_noise``: ``H``
    starts near ``init_lipschitz * I`` plus ``init_noise`` times a seeded Xavier draw
    (:func:`lda_opt.nets.mol.identity_init_`; a contraction of factor about
    ``init_lipschitz`` from the first step, the fixed point a damped zero filling).  ``kappa_fwd``, ``kappa_bwd``, ``max_fwd``,
    ``max_bwd``, ``backward``: :class:`~lda_opt.learning.deq.DEQConfig`.
    """

    alpha: float = 1.0
    lam: float = 1.0
    learn_lam: bool = True
    residual: bool = True
    constraint: str = "lr"
    l_max: float = 0.98
    barrier_e: float = 1e-3
    mu: float = 0.1
    power_iters: int = 5
    lip_samples: int = 2
    sn_bound: float = 0.9
    init_lipschitz: float = 0.5
    init_noise: float = 0.05
    kappa_fwd: float = 1e-4
    kappa_bwd: float = 1e-4
    max_fwd: int = 100
    max_bwd: int = 100
    backward: str = "implicit"

    def __post_init__(self) -> None:
        real("mol.alpha", self.alpha, 0.0, 2.0, kind_error=ValueError)
        real("mol.lam", self.lam, 0.0, kind_error=ValueError)
        if not isinstance(self.learn_lam, bool):
            raise ValueError(f"mol.learn_lam must be true or false; got {self.learn_lam!r}")  # noqa: TRY004
        if self.constraint not in CONSTRAINTS:
            raise ValueError(f"mol.constraint must be one of {list(CONSTRAINTS)}; got {self.constraint!r}")
        if not isinstance(self.residual, bool):
            raise ValueError(f"mol.residual must be true or false; got {self.residual!r}")  # noqa: TRY004
        if self.constraint == "sn" and self.residual:
            raise ValueError("mol.residual must be false with mol.constraint = 'sn' (spectral normalisation "
                             "bounds the CNN H itself; Lip(I - F) is not bounded by it)")
        real("mol.l_max", self.l_max, 0.0, 1.0, kind_error=ValueError)
        real("mol.barrier_e", self.barrier_e, 0.0, self.l_max, kind_error=ValueError)
        real("mol.mu", self.mu, 0.0, lo_open=False, kind_error=ValueError)
        integer("mol.power_iters", self.power_iters, 0, kind_error=ValueError)
        integer("mol.lip_samples", self.lip_samples, 1, kind_error=ValueError)
        real("mol.sn_bound", self.sn_bound, 0.0, 1.0, hi_open=False, kind_error=ValueError)
        real("mol.init_lipschitz", self.init_lipschitz, 0.0, 1.0, lo_open=False, hi_open=False,
             kind_error=ValueError)
        real("mol.init_noise", self.init_noise, 0.0, lo_open=False, kind_error=ValueError)
        try:  # the DEQ fields: DEQConfig's checks, named as fields of this section
            self.deq()
        except ValueError as exc:
            raise ValueError(str(exc).replace("deq.", "mol.", 1)) from None

    def deq(self) -> DEQConfig:
        return DEQConfig(kappa_fwd=self.kappa_fwd, kappa_bwd=self.kappa_bwd, max_fwd=self.max_fwd,
                         max_bwd=self.max_bwd, backward=self.backward)


class MOLMap:
    r"""The map of eq. (1) for one batch of data: ``step(x) = T(x) + z`` with
    ``T(x) = R((1-a) x + a H(x))``, ``z = R(a lam A^H b)``, ``R = (I + a lam A^H A)^{-1}``.

    ``H``: the CNN; ``A``: a :class:`~lda_opt.operators.LinearOperator`; ``b``: the data
    (B, ...); ``alpha``: ``a``; ``lam``: ``lambda`` (a number or a 0-dim tensor that may carry
    gradients).  The only implementation of eq. (1) in the library.
    """

    def __init__(self, H: nn.Module, A, b: torch.Tensor, alpha: float, lam) -> None:
        self.H, self.A, self.b, self.alpha, self.lam = H, A, b, float(alpha), lam
        self.c = self.alpha * lam
        self.z = A.normal_resolvent(self.c, self.c * A.adjoint(b))

    def T(self, x: torch.Tensor) -> torch.Tensor:
        """``T(x) = R((1-a) x + a H(x))`` (eq. 1)."""
        return self.A.normal_resolvent(self.c, (1 - self.alpha) * x + self.alpha * self.H(x))

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """``T(x) + z`` (eq. 2)."""
        return self.T(x) + self.z

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """``F(x) + lam A^H (A x - b)`` with ``F = I - H`` per sample (B,): its norm; 0 exactly at
        the fixed point, whatever ``a``."""
        r = x - self.H(x) + self.lam * self.A.adjoint(self.A(x) - self.b)
        return torch.linalg.vector_norm(r.reshape(r.shape[0], -1), dim=1)


class MOLNet(nn.Module):
    """The MOL network: the CNN ``H`` (``cnn``), the learned ``lambda = exp(raw_lam)``, the
    step ``alpha`` and the DEQ tolerances ``deq``.

    Duck-types the LDA-Net interface :func:`lda_opt.learning.train.evaluate` uses:
    ``problem(fidelity)`` is the :class:`MOLMap` of a :class:`~lda_opt.LeastSquares`
    ``(A, y)`` and ``reconstruct(map, x0)`` returns ``(x, forward result)`` (Algorithm 1 from
    ``x0``; with grad mode on, ``x`` carries the implicit backward of Algorithm 2).
    ``lip_v`` (a buffer, ``(2 lip_samples, C, H, W)``, real view for complex images) is the
    warm start of the power iteration of MOL-LR; ``last_backward`` holds the statistics of
    the last implicit backward.
    """

    def __init__(self, cnn: MOLCNN, *, alpha: float = 1.0, lam: float = 1.0, learn_lam: bool = True,
                 deq: DEQConfig | None = None, lip_shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        if not isinstance(cnn, MOLCNN):
            raise TypeError(f"cnn must be a MOLCNN; got {type(cnn).__name__}")
        real("alpha", alpha, 0.0, 2.0)
        real("lam", lam, 0.0)
        self.cnn = cnn
        self.alpha = float(alpha)
        self.raw_lam = nn.Parameter(torch.tensor(math.log(lam)), requires_grad=learn_lam)
        self.deq = deq or DEQConfig()
        if lip_shape is not None:
            shape = (*lip_shape, 2) if cnn.complex else tuple(lip_shape)
            self.register_buffer("lip_v", torch.zeros(shape))
        #: the training constraint (a :class:`MOLConfig`, set by :func:`build_mol`; None at inference)
        self.penalty: MOLConfig | None = None
        #: one record per training forward: forward / backward iterations, the Lipschitz estimate
        self.step_stats: list[dict] = []
        self.last_backward: dict = {}

    #: a DEQ is not unrolled: no phases (the trainer's resume helpers read ``net.phases``)
    phases = 0

    @property
    def lam(self) -> torch.Tensor:
        return self.raw_lam.exp()

    def problem(self, fidelity) -> MOLMap:
        """The :class:`MOLMap` of ``fidelity = LeastSquares(A, y)``."""
        return MOLMap(self.cnn, fidelity.A, fidelity.y, self.alpha, self.lam)

    def reconstruct(self, mapping: MOLMap, x0: torch.Tensor) -> tuple[torch.Tensor, FixedPointResult]:
        """Algorithm 1 from ``x0``: ``(x, result)`` (see :func:`lda_opt.learning.deq.equilibrium`).

        In training (grad mode on, :attr:`penalty` set) a record is appended to
        :attr:`step_stats` (the implicit backward fills in its iterations) and, for MOL-LR,
        the barrier of the Lipschitz estimate at ``x*`` is added to the gradient of whatever
        loss is taken of ``x`` (:class:`_AddToLoss`: ``d(loss + barrier)``), the power
        iteration warm-started from :attr:`lip_v`."""
        self.last_backward = {}
        training = torch.is_grad_enabled() and self.penalty is not None
        if training:
            self.step_stats.append(self.last_backward)
        x, res = equilibrium(mapping.step, x0, self.deq, self.last_backward)
        if training:
            self.last_backward.update(fwd_iters=float(res.iterations.double().mean()),
                                      fwd_converged=float(res.converged.double().mean()))
            if self.penalty.constraint == "lr" and hasattr(self, "lip_v"):
                k = self.penalty.lip_samples
                probe = torch.cat([x0.detach()[:k], x.detach()[:k]])  # the start and the end of the path
                v0 = _complex_view(self.lip_v, self.cnn.complex)[:probe.shape[0]]
                l_hat, v = lipschitz_estimate(self.cnn, probe, v0, iters=self.penalty.power_iters)
                with torch.no_grad():
                    self.lip_v[:probe.shape[0]] = torch.view_as_real(v) if self.cnn.complex else v
                self.last_backward["lipschitz"] = float(l_hat.detach())
                x = _AddToLoss.apply(x, _barrier(l_hat, self.penalty))
        return x, res

    def forward(self, mapping: MOLMap, x0: torch.Tensor) -> tuple[torch.Tensor, FixedPointResult]:
        """``net(net.problem(fidelity), x0)``, as for LDA-Net: :meth:`reconstruct`."""
        return self.reconstruct(mapping, x0)

    def metadata(self) -> dict:
        """``kind``, ``alpha``, ``lam``, ``raw_lam`` (bit-exact) and ``deq`` of the checkpoint."""
        return {"schema": 1, "kind": KIND, "alpha": self.alpha, "lam": float(self.lam.detach()),
                "raw_lam": float(self.raw_lam.detach()), "learn_lam": bool(self.raw_lam.requires_grad),
                "deq": dataclasses.asdict(self.deq)}


def build_mol(config) -> MOLNet:
    """The MOL network of a training config (seeded Xavier initialization of the CNN)."""
    n, mc = config.net, config.mol
    cnn = MOLCNN(1, n.width, n.depth, n.kernel_size, complex=config.task.kind == "mri", delta=n.delta,
                 residual=mc.residual)
    gen = torch.Generator().manual_seed(config.seed)
    identity_init_(cnn, mc.init_lipschitz, mc.init_noise, generator=gen)
    shape = (2 * mc.lip_samples, 1, *config.task.build().shape) if config.task.kind == "mri" else None
    net = MOLNet(cnn, alpha=mc.alpha, lam=mc.lam, learn_lam=mc.learn_lam, deq=mc.deq(), lip_shape=shape)
    if shape is not None:
        net.lip_v.copy_(torch.randn(net.lip_v.shape, generator=gen, dtype=torch.float64))
    net.penalty = mc
    return net.to(torch.float64 if config.train.dtype == "float64" else torch.float32)


# ---------------------------------------------------------------------------------------
# the checker of the convergence guarantee
# ---------------------------------------------------------------------------------------
@dataclass
class ContractionReport:
    """What :func:`check_contraction` found.  ``ok``: no violation.  ``certified_lipschitz``:
    the certified bound of ``Lip(H)``; ``certified_factor``: ``|1-a| + a L_H`` with it
    (certified ``Lip(T)``; < 1 proves the contraction); ``estimated_lipschitz``: the largest
    power-iteration estimate of ``||J_T(x)||`` at the given points; ``pair_ratio``: the
    largest ``||T(x) - T(y)|| / ||x - y||`` over the probed pairs; ``violations``: one line
    each."""

    ok: bool
    certified_lipschitz: float
    certified_factor: float
    estimated_lipschitz: float
    pair_ratio: float
    violations: list[str]


def check_contraction(mapping: MOLMap, x: torch.Tensor, *, pairs: int = 8, radius: float = 0.1,
                      power_iters: int = 30, seed: int = 0) -> ContractionReport:
    r"""Check that ``T`` of ``mapping`` is a contraction near the images ``x`` (B, C, H, W).

    Violations: (1) the power-iteration estimate of ``||J_T(x_b)||`` is >= 1 at a sample;
    (2) a probed pair ``(x_b + r u, x_b + r u')`` (``u, u'`` seeded Gaussian directions of norm
    ``||x_b||``, ``r = radius``) has ``||T(x) - T(y)|| / ||x - y|| >= 1``; (3) when the
    certified factor ``|1-a| + a L_H`` is below 1, an estimate or ratio exceeding it (which
    would falsify Lemma 1 of ``theory/mol.md``).  A certified factor >= 1 alone is not a
    violation (the certified bound of a CNN is loose; the local estimates decide).
    """
    integer("pairs", pairs, 1)
    with torch.no_grad():
        L_cert = certified_lipschitz(mapping.H, tuple(x.shape[-2:]))
    factor = mol_contraction_factor(mapping.alpha, L_cert)
    gen = torch.Generator().manual_seed(seed)
    violations = []
    est = 0.0
    for b in range(x.shape[0]):
        e, _ = lipschitz_estimate(mapping.T, x[b:b + 1], iters=power_iters, generator=gen)
        e = float(e.detach())
        est = max(est, e)
        if e >= 1:
            violations.append(f"sample {b}: ||J_T(x)|| estimated {e:.6g} >= 1 (not a contraction there)")
    ratio = 0.0
    with torch.no_grad():
        for b in range(x.shape[0]):
            scale = radius * float(torch.linalg.vector_norm(x[b])) or radius
            for _ in range(pairs):
                u = torch.randn(x[b:b + 1].shape, generator=gen, dtype=x.dtype).to(x.device)
                w = torch.randn(x[b:b + 1].shape, generator=gen, dtype=x.dtype).to(x.device)
                p = x[b:b + 1] + scale * u / torch.linalg.vector_norm(u)
                q = x[b:b + 1] + scale * w / torch.linalg.vector_norm(w)
                r = float(torch.linalg.vector_norm(mapping.T(p) - mapping.T(q)) / torch.linalg.vector_norm(p - q))
                ratio = max(ratio, r)
                if r >= 1:
                    violations.append(f"sample {b}: ||T(x) - T(y)|| / ||x - y|| = {r:.6g} >= 1")
    if factor < 1:
        tol = 1e-6 if x.real.dtype == torch.float64 else 1e-4
        for name, v in (("estimated ||J_T||", est), ("pair ratio", ratio)):
            if v > factor * (1 + tol):
                violations.append(f"{name} {v:.6g} exceeds the certified factor {factor:.6g}")
    return ContractionReport(not violations, L_cert, factor, est, ratio, violations)


# ---------------------------------------------------------------------------------------
# training (train.mode = "mol")
# ---------------------------------------------------------------------------------------
def _barrier(l_hat: torch.Tensor, mc: MOLConfig) -> torch.Tensor:
    """``-mu log(l_max - l)`` for ``l <= l_max - e``; beyond, its tangent at ``l_max - e``
    (value ``-mu log e``, slope ``mu / e``), so the penalty stays finite and increasing."""
    knee = mc.l_max - mc.barrier_e
    inside = -mc.mu * torch.log(torch.clamp(mc.l_max - l_hat, min=mc.barrier_e))
    outside = -mc.mu * math.log(mc.barrier_e) + mc.mu / mc.barrier_e * (l_hat - knee)
    return torch.where(l_hat <= knee, inside, outside)


def _complex_view(t: torch.Tensor, complex_: bool) -> torch.Tensor:
    return torch.view_as_complex(t.contiguous()) if complex_ else t


class _AddToLoss(torch.autograd.Function):
    """``x`` unchanged; in the backward the scalar ``penalty`` receives gradient 1, so that
    ``loss(x).backward()`` computes the gradient of ``loss(x) + penalty``."""

    @staticmethod
    def forward(ctx, x, penalty):
        ctx.save_for_backward(penalty)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        (penalty,) = ctx.saved_tensors
        return g, torch.ones_like(penalty)


def mol_metadata(net: MOLNet, config, training: dict | None = None) -> dict:
    """The metadata stored with a trained MOL network (see the module docstring)."""
    meta = net.metadata()
    meta["constraint"] = config.mol.constraint
    meta["dtype"] = config.train.dtype
    meta["problem"] = config.task.build().metadata()
    meta["training"] = {"config": config.to_dict(), **(training or {})}
    return meta


def _mean(recs: list[dict], key: str) -> float:
    vals = [r[key] for r in recs if key in r]
    return sum(vals) / len(vals) if vals else math.nan


def _plot_mol(out: Path, log: list[dict], title: str) -> None:
    from lda_opt._plotting import pyplot

    plt = pyplot()

    from .._atomic import atomic_write
    from .train import CURVES_FILE

    ep = [r["epoch"] for r in log]
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.4))
    ax[0].semilogy(ep, [r["train_loss"] for r in log], "o-", label="train")
    ax[0].semilogy(ep, [r["val_loss"] for r in log], "s--", label="val")
    ax[0].set_ylabel("loss 1/2||x* - x||^2")
    ax[0].legend()
    ax[1].plot(ep, [r["val_psnr"] for r in log], "o-")
    ax[1].set_ylabel("val PSNR (dB)")
    ax[2].plot(ep, [r["lipschitz"] for r in log], "o-", label="Lip(H) estimate")
    ax[2].plot(ep, [r["fwd_iters"] / 100 for r in log], "s--", label="forward iterations / 100")
    ax[2].axhline(1.0, color="gray", lw=0.8, ls=":")
    ax[2].legend(fontsize=8)
    for a in ax:
        a.set_xlabel("epoch")
    fig.suptitle(f"{title}: MOL deep-equilibrium training")
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.15, top=0.86, wspace=0.3)
    atomic_write(out / CURVES_FILE, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    plt.close(fig)


def _epoch_lipschitz(net: MOLNet, va, config) -> float:
    """The power-iteration estimate of ``Lip(H)`` (30 iterations, seeded) at the starts ``x_0``
    and the fixed points ``x*`` of the first ``lip_samples`` validation images: what the log
    reports each epoch."""
    gen = torch.Generator().manual_seed(config.seed)
    k = config.mol.lip_samples
    with torch.no_grad():
        sub = va.select(torch.arange(min(k, va.y.shape[0])))
        x_star, _ = net(net.problem(sub.fidelity()), sub.x0)
    est, _ = lipschitz_estimate(net.cnn, torch.cat([sub.x0, x_star]), iters=30, generator=gen)
    return float(est.detach())


def train_mol(config, out: Path, *, resume: bool = False, quiet: bool = False, stop_after: int | None = None,
              data=None) -> dict:
    """Train the MOL network of ``config`` (``train.mode = "mol"``) into ``out``: Adam over
    ``train.epochs_first`` epochs with the loop of :func:`lda_opt.learning.train._train_epoch`
    (seeded batches, learning-rate schedule, non-finite steps skipped), the implicit
    backward, the constraint of ``mol.constraint``; per epoch ``model.safetensors`` (and
    ``best.*`` with ``train.select = "best_val"``), ``state.safetensors`` (exact resume) and
    ``log.json``; ``curves.png`` at the end.  Returns the ``log.json`` summary."""
    from . import train as _  # noqa: F401 - the module (the package re-exports a function of its name)
    from .datasets import training_data

    T = sys.modules["lda_opt.learning.train"]

    tc = config.train
    plan = [(0, "deq", j) for j in range(tc.epochs_first)]
    cfg_dict = config.to_dict()

    def make_opt(net):
        return torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=tc.lr, betas=tuple(tc.betas))

    net = build_mol(config)
    opt = make_opt(net)
    log: list[dict] = []
    start, seconds_before, best = 0, 0.0, None
    remove_stale_temps(out, T._RUN_FILES)
    if resume:
        if not (out / T.STATE_FILE).is_file():
            raise ValueError(f"resume: no {T.STATE_FILE} in {out}")
        tensors, info = T._load_state(out)
        if info.get("config") != cfg_dict:
            raise ValueError(f"resume: the config differs from the one {out} was trained with")
        opt = T._restore(net, tensors, info, make_opt)
        log, start, seconds_before, best = list(info["summary"]["epochs"]), int(info["epoch"]), \
            float(info.get("seconds", 0.0)), info.get("best")
    else:
        T._write_json(out / T.CONFIG_FILE, cfg_dict)
    if data is None:
        data = training_data(config)
    tr, va = data.train, data.val
    x0_psnr = float(psnr(va.x0, va.truth, T._data_range(va)).mean())
    n = tr.y.shape[0]
    steps_per_epoch = -(-n // tc.batch_size)
    end = len(plan) if stop_after is None else min(len(plan), stop_after)
    bar = T._progress_bar(config, quiet, start, end, steps_per_epoch)
    if config.mol.constraint == "sn":  # MOL-SN: the projection after every Adam step (and at the start)
        hw = tuple(config.task.build().shape)
        spectral_project_(net.cnn, config.mol.sn_bound, hw)
        opt.register_step_post_hook(lambda *_: spectral_project_(net.cnn, config.mol.sn_bound, hw))
    summary = None
    t_run = time.perf_counter()
    for e in range(start, end):
        t0 = time.perf_counter()
        net.step_stats = []
        total, skipped = T._train_epoch(net, opt, tr, config, plan, e, steps_per_epoch, bar, log)
        stats = [{**r, "bwd_iters": float(r["iterations"].double().mean()),
                  "bwd_converged": float(r["converged"].double().mean())} if "iterations" in r else r
                 for r in net.step_stats]
        val = T.evaluate(net, va, batch_size=max(tc.batch_size, 64), ssim_weight=tc.ssim_weight)
        rec = {"epoch": e + 1, "phases": 0, "train_loss": total / n, "val_loss": val["loss"], "val_psnr": val["psnr"],
               "val_ssim": val["ssim"], "steps": steps_per_epoch, "skipped_steps": skipped,
               "lr_last": opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t0,
               "lam": float(net.lam.detach()), "lipschitz": _epoch_lipschitz(net, va, config),
               "lipschitz_step_mean": _mean(stats, "lipschitz"), "fwd_iters": _mean(stats, "fwd_iters"),
               "bwd_iters": _mean(stats, "bwd_iters"), "fwd_converged": _mean(stats, "fwd_converged"),
               "bwd_converged": _mean(stats, "bwd_converged")}
        if config.mol.constraint == "sn":
            rec["lipschitz_certified"] = certified_lipschitz(net.cnn, tuple(config.task.build().shape))
        log.append(rec)
        seconds = seconds_before + (time.perf_counter() - t_run)
        training = {"epochs": e + 1, "steps": sum(r["steps"] for r in log), "seconds": seconds,
                    "threads": tc.threads, "final_val_psnr": rec["val_psnr"], "train_samples": n,
                    "val_samples": va.y.shape[0]}
        meta = mol_metadata(net, config, training)
        meta["lipschitz"] = {"estimate": rec["lipschitz"],
                             "certified": certified_lipschitz(net.cnn, tuple(config.task.build().shape))}
        save_checkpoint(net.cnn, out / T.MODEL_FILE, **meta)
        if tc.select == "best_val" and (best is None or rec["val_psnr"] > best["val_psnr"]):
            best = {"epoch": e + 1, "val_psnr": rec["val_psnr"]}
            save_checkpoint(net.cnn, out / T.BEST_FILE, **meta)
        summary = {"name": config.name, "mode": "mol", "config": cfg_dict, "val_psnr_x0": x0_psnr, "epochs": log,
                   "budget": training, "parameters": sum(p.numel() for p in net.parameters()),
                   "complete": e + 1 == len(plan), "best": best}
        T._save_state(out, net, opt, {"epoch": e + 1, "phases": 0, "config": cfg_dict, "summary": summary, "seconds": seconds,
                                      "best": best})
        T._write_json(out / T.LOG_FILE, summary)
    if bar is not None:
        bar.close()
    if not log:
        raise ValueError("nothing to train: the config has no epochs")
    if summary is None:  # resumed with nothing left: the log from the state
        summary = dict(info["summary"], complete=start == len(plan))
        T._write_json(out / T.LOG_FILE, summary)
    _plot_mol(out, log, config.name)
    return json.loads((out / T.LOG_FILE).read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------
# checkpoints and `lda-opt solve --checkpoint`
# ---------------------------------------------------------------------------------------
def is_mol_checkpoint(path) -> bool:
    """Whether the checkpoint ``path`` (``.safetensors``) is a MOL network (metadata kind
    ``"mol-deq"``); reads the JSON config only (named errors for a missing or bad file)."""
    meta = read_checkpoint_config(path)["metadata"]
    return isinstance(meta, dict) and meta.get("kind") == KIND


def load_mol(path, device=None, dtype: torch.dtype | None = None) -> MOLNet:
    """The trained :class:`MOLNet` of a checkpoint, in eval mode, with its metadata as
    ``net.checkpoint_metadata`` (``lambda`` restored bit-exactly from ``raw_lam``)."""
    ck = load_checkpoint(path, device=device, dtype=dtype)
    meta = ck.metadata
    if not isinstance(meta, dict) or meta.get("kind") != KIND or not isinstance(ck.module, MOLCNN):
        raise ValueError(f"{path} is not a MOL checkpoint (metadata kind != {KIND!r})")
    try:
        deq = DEQConfig(**meta["deq"])
        net = MOLNet(ck.module, alpha=float(meta["alpha"]), lam=1.0, deq=deq)
        raw = float(meta["raw_lam"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: MOL metadata lacks or mistypes a field ({exc})") from None
    with torch.no_grad():
        net.raw_lam.fill_(raw)
    net.raw_lam.requires_grad_(False)
    for p in net.cnn.parameters():
        p.requires_grad_(False)
    net = net.to(next(ck.module.parameters()).dtype)
    if device is not None:
        net = net.to(device)
    net.eval()
    net.checkpoint_metadata = meta
    return net


def solve_mol_checkpoint(args) -> int:
    """``lda-opt solve --checkpoint PATH`` for a MOL checkpoint: builds the instance of
    ``--problem mri`` with the checkpoint's sensing task (mask from its stored seed), runs
    Algorithm 1 from the zero-filling ``A^H y`` to the checkpoint's tolerance (``--max-iter``
    overrides ``max_fwd``), and writes ``--out DIR`` at once: ``result.json`` (iterations,
    converged, reason, final relative change ``e_n``, the fixed-point residual ``||F(x) +
    lam A^H(Ax - b)||``, PSNR, the Lipschitz estimate, seconds), ``trace.csv`` (``e_n`` per
    iteration), ``x.npy``, ``recon.png`` and ``convergence.png``.  Returns 0."""
    from .._atomic import check_replaceable, fault_point, staged_dir
    from .._validate import out_dir
    from ..commands.solve import _plot_recon, _psnr, resolve_device
    from ..instances import make_instance

    device = resolve_device(args.device)
    if args.problem != "mri":
        raise ValueError(f"this --checkpoint is a MOL network trained for MRI; it needs --problem mri "
                         f"(got {args.problem})")
    for opt_name in ("regularizer", "weight", "eps0", "eps_tol", "sigma", "noise"):
        if getattr(args, opt_name, None) is not None:
            raise ValueError(f"--{opt_name.replace('_', '-')} does not apply to a MOL checkpoint")
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype or "float32"]
    out = out_dir("out", args.out)
    files = ("result.json", "trace.csv", "x.npy", "recon.png", "convergence.png")
    check_replaceable(out, files)
    net = load_mol(args.checkpoint, device=device, dtype=dtype)
    if args.max_iter is not None:
        net.deq = dataclasses.replace(net.deq, max_fwd=integer("max_iter", args.max_iter, 1, kind_error=ValueError))
    task = task_from_metadata(net.checkpoint_metadata)
    if args.ratio is not None and abs(args.ratio - task.ratio) > 1e-6:
        raise ValueError(f"ratio {args.ratio} differs from the checkpoint's {task.ratio}")
    size = args.size if args.size is not None else task.shape[0]
    if (tuple(size) if isinstance(size, (tuple, list)) else (size, size)) != tuple(task.shape):
        raise ValueError(f"size must be the checkpoint's {task.shape[0]} x {task.shape[1]} (its mask and training "
                         f"size); got {size}")
    inst = make_instance("mri", image=args.image, size=task.shape[0], seed=args.seed, dtype=dtype, device=device,
                         task=task)
    fid = inst.problem.fidelity
    t0 = time.perf_counter()
    fault_point("solve:run")
    with torch.no_grad():
        mapping = net.problem(fid)
        _, res = net.reconstruct(mapping, inst.x0)
        resid = mapping.residual(res.x)
    seconds = time.perf_counter() - t0
    lip, _ = lipschitz_estimate(net.cnn, inst.x0, iters=30, generator=torch.Generator().manual_seed(0))
    result = {"algorithm": "mol-deq", "iterations": int(res.iterations.max()), "converged": bool(res.converged.all()),
              "reason": next((r for r in res.reason if r != "converged"), "converged"),
              "relative_change_final": float(res.residual.max()), "kappa": net.deq.kappa_fwd,
              "fixed_point_residual": float(resid.max()), "psnr": _psnr(res.x, inst.truth),
              "psnr_x0": _psnr(inst.x0, inst.truth), "seconds": seconds, "batch_size": int(inst.x0.shape[0]),
              "lipschitz_estimate": float(lip.detach()), "alpha": net.alpha, "lam": float(net.lam),
              "config": {k: v for k, v in vars(args).items() if not k.startswith("_")},
              "problem": {**inst.meta, "shape": list(inst.x0.shape), "dtype": str(dtype).replace("torch.", ""),
                          "checkpoint": str(args.checkpoint), "device": str(device)},
              "torch": torch.__version__}
    hist = torch.stack(res.history).cpu()
    mag = (lambda t: t.abs()) if inst.truth.is_complex() else (lambda t: t)
    import numpy as np

    with staged_dir(out, files) as tmp:
        (tmp / "result.json").write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
        lines = ["iteration," + ",".join(f"e_{b}" for b in range(hist.shape[1]))]
        lines += [f"{n + 1}," + ",".join("" if math.isnan(v) else repr(v) for v in row.tolist())
                  for n, row in enumerate(hist)]
        (tmp / "trace.csv").write_text("\n".join(lines) + "\n")
        np.save(tmp / "x.npy", res.x.detach().cpu().numpy(), allow_pickle=False)
        _plot_recon(tmp / "recon.png", mag(inst.truth), mag(inst.x0), mag(res.x), result["psnr_x0"], result["psnr"],
                    argparse.Namespace(**{**vars(args), "algorithm": "mol-deq"}))
        _plot_history(tmp / "convergence.png", hist, net.deq.kappa_fwd)
    if not args.quiet:
        print(f"mol-deq on mri: {result['reason']} after {result['iterations']} iterations, e_n "
              f"{result['relative_change_final']:.3g} (kappa {net.deq.kappa_fwd:g}), PSNR {result['psnr_x0']:.2f} -> "
              f"{result['psnr']:.2f} dB, {seconds:.2f} s")
        print(f"wrote {', '.join(str(out / f) for f in files)}")
    return 0


def _plot_history(path: Path, hist: torch.Tensor, kappa: float) -> None:
    from lda_opt._plotting import pyplot

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(5, 3.6))
    n = torch.arange(1, hist.shape[0] + 1).numpy()
    for b in range(hist.shape[1]):
        ax.semilogy(n, hist[:, b].numpy(), lw=1)
    ax.axhline(kappa, color="gray", ls=":", label=f"kappa = {kappa:g}")
    ax.set_xlabel("iteration n")
    ax.set_ylabel("e_n = ||x_n - x_{n-1}|| / ||x_{n-1}||")
    ax.legend()
    fig.suptitle("MOL forward (supplement eq. 3)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

