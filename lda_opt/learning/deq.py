r"""Deep equilibrium: a per-sample fixed-point forward and an implicit fixed-point backward.

For a map ``x -> T(x) + z`` (``step``; MOL supplement eq. 2) that is a contraction, the
forward pass (supplement Algorithm 1) iterates

.. math:: x_{n+1} = T(x_n) + z \quad \text{until} \quad
          e_n = \frac{\|x_n - x_{n-1}\|_2}{\|x_{n-1}\|_2} < \kappa_{fwd}            \tag{3}

per sample (each sample stops at the first ``n`` with ``e_n < kappa_fwd`` and is frozen),
without a graph.  The backward pass (supplement eqs. 4-5, Algorithm 2) differentiates the
fixed point implicitly: with ``v = grad_{x*} C``,

.. math:: q = (\nabla_x T(x^*))^{T} q + v,\ q_0 = 0, \qquad
          \nabla_\theta C = (\nabla_\theta T(x^*))^{T} q,                             \tag{4-5}

iterated per sample with vector-Jacobian products until
``e = ||q_old - q||^2 / ||q_old||^2 < kappa_bwd`` (Algorithm 2, line 6: the *squared*
relative change; tested from the second iterate on, since ``q_0 = 0``).  Only the one-step
graph of ``T`` at ``x*`` is ever built, so the memory does not grow with the number of
iterations.  :func:`equilibrium` returns ``step(x*)`` carrying that one-step graph, with the
implicit backward attached by :class:`ImplicitBackward`.

Backward modes (:class:`DEQConfig.backward`): ``"implicit"`` (the above), ``"jfb"`` (the
Jacobian-free backward ``q = v``, Fung et al. 2022: a cheaper descent direction, not the
gradient) and ``"unrolled"`` (autograd through every forward iteration: the reference the
implicit gradient converges to, with memory linear in the iterations).
Theory: ``theory/mol.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .._validate import integer, real

__all__ = ["BACKWARD_MODES", "DEQConfig", "FixedPointResult", "ImplicitBackward", "equilibrium", "fixed_point",
           "relative_change"]

#: the backward modes of :class:`DEQConfig`
BACKWARD_MODES = ("implicit", "jfb", "unrolled")


@dataclass(kw_only=True)
class DEQConfig:
    """Tolerances of the forward and backward fixed-point iterations.

    ``kappa_fwd``: stop rule (3) of the forward (supplement: 1e-4); ``kappa_bwd``: stop rule
    of Algorithm 2 (squared relative change; supplement: the same 1e-4); ``max_fwd`` /
    ``max_bwd``: iteration caps (a sample that reaches its cap stops with reason
    ``"max_iter"``); ``backward``: one of :data:`BACKWARD_MODES`.  ``kappa_fwd = 0`` runs
    exactly ``max_fwd`` iterations (the benchmarks' fixed-depth runs).
    """

    kappa_fwd: float = 1e-4
    kappa_bwd: float = 1e-4
    max_fwd: int = 100
    max_bwd: int = 100
    backward: str = "implicit"

    def __post_init__(self) -> None:
        real("deq.kappa_fwd", self.kappa_fwd, 0.0, lo_open=False, kind_error=ValueError)
        real("deq.kappa_bwd", self.kappa_bwd, 0.0, lo_open=False, kind_error=ValueError)
        integer("deq.max_fwd", self.max_fwd, 1, kind_error=ValueError)
        integer("deq.max_bwd", self.max_bwd, 1, kind_error=ValueError)
        if self.backward not in BACKWARD_MODES:
            raise ValueError(f"deq.backward must be one of {list(BACKWARD_MODES)}; got {self.backward!r}")


@dataclass
class FixedPointResult:
    """Per-sample outcome of :func:`fixed_point`: ``x`` (the last iterate), ``iterations``
    (B,) (the ``n`` of the returned ``x_n``), ``converged`` (B,), ``reason`` (one string per
    sample: ``"converged"``, ``"max_iter"`` or ``"non-finite"``), ``residual`` (B,) (the last
    ``e_n``) and ``history`` (one (B,) tensor of ``e_n`` per iteration, NaN once a sample has
    stopped)."""

    x: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor
    reason: list[str]
    residual: torch.Tensor
    history: list[torch.Tensor] = field(default_factory=list)


def _norms(t: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(t.reshape(t.shape[0], -1), dim=1)


def relative_change(new: torch.Tensor, old: torch.Tensor, power: int = 1) -> torch.Tensor:
    """Per sample ``(||new - old|| / ||old||)^power`` (eq. 3 with ``power = 1``; Algorithm 2
    line 6 with ``power = 2``); 0 when both are 0, ``inf`` when only ``old`` is 0."""
    num, den = _norms(new - old), _norms(old)
    ratio = torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)),
                        torch.where(num > 0, torch.full_like(num, math.inf), torch.zeros_like(num)))
    return ratio**power


def _col(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.reshape(-1, *([1] * (like.dim() - 1)))


def fixed_point(step: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, *, kappa: float = 1e-4,
                max_iter: int = 100, power: int = 1, first_test: int = 1) -> FixedPointResult:
    """Iterate ``x_{n+1} = step(x_n)`` per sample until ``relative_change(x_n, x_{n-1}, power)
    < kappa`` (eq. 3; tested from ``n = first_test`` on) or ``max_iter`` iterations.

    ``step`` maps the whole batch (B, ...) to (B, ...) sample by sample; a stopped sample is
    frozen at its last iterate (``step`` still sees it, its new value is discarded), so a
    batch gives every sample the iterate it gets alone.  A sample whose iterate turns
    non-finite stops at its last finite iterate with reason ``"non-finite"``.  Runs under
    whatever grad mode the caller set (the DEQ forward calls it under ``torch.no_grad``).
    """
    real("kappa", kappa, 0.0, lo_open=False, kind_error=ValueError)
    max_iter = integer("max_iter", max_iter, 1)
    B = x0.shape[0]
    x = x0
    active = torch.ones(B, dtype=torch.bool, device=x0.device)
    iters = torch.zeros(B, dtype=torch.long, device=x0.device)
    residual = torch.full((B,), math.inf, dtype=torch.float64, device=x0.device)
    converged = torch.zeros(B, dtype=torch.bool, device=x0.device)
    nonfinite = torch.zeros(B, dtype=torch.bool, device=x0.device)
    history = []
    for n in range(1, max_iter + 1):
        new = step(x)
        finite = torch.isfinite(torch.view_as_real(new) if new.is_complex() else new).reshape(B, -1).all(dim=1)
        bad = active & ~finite
        nonfinite |= bad
        active = active & finite
        e = relative_change(new, x, power).to(torch.float64)
        x = torch.where(_col(active, x), new, x)
        iters = iters + active.long()
        residual = torch.where(active, e, residual)
        history.append(torch.where(active, e, torch.full_like(e, math.nan)))
        done = active & (e < kappa) if n >= first_test else torch.zeros_like(active)
        converged |= done
        active = active & ~done
        if not bool(active.any()):
            break
    reason = ["converged" if c else "non-finite" if f else "max_iter" for c, f in zip(converged.tolist(),
                                                                                     nonfinite.tolist())]
    return FixedPointResult(x, iters, converged, reason, residual, history)


class ImplicitBackward(torch.autograd.Function):
    """Identity on ``y = step(x*)`` in the forward; in the backward, replaces the incoming
    ``v = grad_y C`` by the solution ``q`` of ``q = J^T q + v`` (eq. 5, Algorithm 2), with
    ``J = d step / dx`` at ``x*`` applied by vector-Jacobian products of a one-step graph
    rebuilt in the backward.  Autograd then carries ``q`` through the one-step graph of ``y``
    into the parameters, ``b`` and ``lambda``: ``grad_theta C = (d_theta T(x*))^T q`` (eq. 4).

    ``apply(y, step, x_star, cfg, stats)``: ``stats`` (a dict) receives the backward's
    per-sample ``iterations``, ``converged`` and ``residual``.
    """

    @staticmethod
    def forward(ctx, y, step, x_star, cfg, stats):
        ctx.step, ctx.cfg, ctx.stats = step, cfg, stats
        ctx.save_for_backward(x_star)
        return y.view_as(y)

    @staticmethod
    def backward(ctx, v):
        (x_star,) = ctx.saved_tensors
        cfg = ctx.cfg
        with torch.enable_grad():
            x0 = x_star.detach().requires_grad_(True)
            fx = ctx.step(x0)

        def vjp_step(q: torch.Tensor) -> torch.Tensor:
            (g,) = torch.autograd.grad(fx, x0, q, retain_graph=True)
            return g + v

        # q_0 = 0 gives q_1 = v; the stop rule (squared change) is tested from q_2 on
        res = fixed_point(vjp_step, torch.zeros_like(v), kappa=cfg.kappa_bwd, max_iter=cfg.max_bwd, power=2,
                          first_test=2)
        ctx.stats.update(iterations=res.iterations, converged=res.converged, residual=res.residual,
                         reason=res.reason)
        return res.x, None, None, None, None


def equilibrium(step: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, cfg: DEQConfig,
                stats: dict | None = None) -> tuple[torch.Tensor, FixedPointResult]:
    """The DEQ layer: ``(x, forward result)`` with ``x = step(x*)`` (one more application of
    the map at the fixed point ``x*`` of Algorithm 1, so ``x`` carries the one-step graph and
    equals ``x*`` up to the forward tolerance).

    ``cfg.backward``: ``"implicit"`` attaches :class:`ImplicitBackward` (Algorithm 2; its
    statistics go into ``stats``), ``"jfb"`` keeps only the one-step graph, ``"unrolled"``
    iterates with the graph of every step (memory linear in the iterations).  Without grad
    mode (inference) no graph is built at all.
    """
    if not isinstance(cfg, DEQConfig):
        raise TypeError(f"cfg must be a DEQConfig; got {type(cfg).__name__}")
    stats = {} if stats is None else stats
    if cfg.backward == "unrolled" and torch.is_grad_enabled():
        res = fixed_point(step, x0, kappa=cfg.kappa_fwd, max_iter=cfg.max_fwd)
        return res.x, res
    with torch.no_grad():
        res = fixed_point(step, x0.detach(), kappa=cfg.kappa_fwd, max_iter=cfg.max_fwd)
    if not torch.is_grad_enabled():
        return res.x, res
    x_star = res.x.detach()
    y = step(x_star)
    if cfg.backward == "implicit" and y.requires_grad:
        y = ImplicitBackward.apply(y, step, x_star, cfg, stats)
    return y, res
