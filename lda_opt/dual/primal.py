"""Primal two-layer soft-thresholding CNN (dual-st-cnn-2024, eqs. 4, 20-21).

.. math::

    p(U, v) = \\Big\\| \\sum_{k=1}^K \\tau(Y u_k)_\\lambda v_k - x \\Big\\|_2^2
              + \\beta \\sum_{k=1}^K \\big(\\|u_k\\|_2^2 + v_k^2\\big)          (21)

with ``tau(a)_lambda = sign(a) (|a| - lambda)_+`` element-wise (eq. 4), ``Y`` the
``I x m^2`` patch matrix (:func:`lda_opt.dual.data.im2col`), ``U = [u_1 ... u_K]`` of shape
``(m^2, K)`` (K filters of size m x m), ``v`` of shape ``(K,)`` (the 1x1 combination), and
summed squares without a factor 1/2.

Training (paper Sec. IV-A) uses SGD, ASGD or Adam from three initializations: Kaiming
uniform (PyTorch's default ``Conv2d`` initialisation, ``kaiming_uniform_(a=sqrt(5))``,
i.e. ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with ``fan_in = m^2`` for ``u`` and ``K`` for
``v``), ``N(0, 0.001^2)`` and ``N(0, 0.005^2)``.  The gradient step is taken on ``p / I``
(a positive constant multiple of (21): same minimisers, learning rates that do not depend
on the number of pixels); every recorded objective is the exact (21), in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .._validate import integer, real

__all__ = [
    "INITS",
    "OPTIMIZERS",
    "PrimalConfig",
    "PrimalRun",
    "init_weights",
    "primal_objective",
    "primal_output",
    "soft_threshold",
    "train_primal",
]

OPTIMIZERS = ("sgd", "asgd", "adam")
INITS = ("kaiming_uniform", "normal_0.001", "normal_0.005")


def soft_threshold(a, lam: float):
    """ST of eq. (4): ``tau(a)_lambda = sign(a) * max(|a| - lambda, 0)`` (numpy or torch).

    ``lam`` must be a finite number >= 0 (eq. 4 is not a soft threshold for ``lam < 0``).
    """
    _check_lam(lam)
    if isinstance(a, torch.Tensor):
        return torch.sign(a) * torch.clamp(a.abs() - lam, min=0.0)
    a = np.asarray(a, dtype=np.float64)
    return np.sign(a) * np.maximum(np.abs(a) - lam, 0.0)


def primal_output(Y: np.ndarray, U: np.ndarray, v: np.ndarray, lam: float) -> np.ndarray:
    """Network output ``sum_k tau(Y u_k)_lambda v_k`` of eq. (21), shape ``(I,)``."""
    Y, U, v = _check_weights(Y, U, v)
    return soft_threshold(Y @ U, lam) @ v


def _check_lam(lam) -> None:
    """The threshold ``lam >= 0`` (ValueError for any bad value)."""
    real("lam", lam, 0.0, lo_open=False, kind_error=ValueError)


def _check_beta(beta) -> None:
    """The weight-decay ``beta > 0`` (ValueError for any bad value)."""
    real("beta", beta, 0.0, kind_error=ValueError)


def _check_data(Y, x) -> tuple[np.ndarray, np.ndarray]:
    """``Y (I, m^2)`` and ``x (I,)``, finite, float64."""
    Y = np.asarray(Y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if Y.ndim != 2 or Y.shape[0] < 1 or Y.shape[1] < 1:
        raise ValueError(f"Y must have shape (I, m^2) with I, m^2 >= 1; got {Y.shape}")
    if x.shape != (Y.shape[0],):
        raise ValueError(f"x must have shape (I,) = ({Y.shape[0]},); got {x.shape}")
    for name, arr in (("Y", Y), ("x", x)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or Inf")
    return Y, x


def primal_objective(
    Y: np.ndarray, x: np.ndarray, U: np.ndarray, v: np.ndarray, lam: float, beta: float
) -> float:
    """Exact primal objective (21) in float64 (the true ST nonlinearity, no 1/2)."""
    _check_beta(beta)
    Y, x = _check_data(Y, x)
    r = primal_output(Y, U, v, lam) - x
    U = np.asarray(U, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    return float(r @ r + beta * (np.sum(U * U) + v @ v))


def _check_weights(Y, U, v):
    Y = np.asarray(Y, dtype=np.float64)
    U = np.asarray(U, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    if U.ndim != 2 or U.shape[0] != Y.shape[1]:
        raise ValueError(f"U must have shape (m^2, K) = ({Y.shape[1]}, K); got {U.shape}")
    if v.shape != (U.shape[1],):
        raise ValueError(f"v must have shape (K,) = ({U.shape[1]},); got {v.shape}")
    for name, arr in (("Y", Y), ("U", U), ("v", v)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or Inf")
    return Y, U, v


@dataclass(frozen=True, kw_only=True)
class PrimalConfig:
    """Hyper-parameters of the primal ST-CNN (eq. 21) and of its training.

    ``batch_size=None`` means full-batch gradients (every row of ``Y``), so SGD is then
    plain gradient descent; an integer gives mini-batches of that many rows, with the
    batch loss rescaled to an unbiased estimate of (21)/I.
    """

    n_filters: int = 8
    lam: float = 0.1
    beta: float = 0.1
    epochs: int = 300
    lr_sgd: float = 0.2
    lr_asgd: float = 0.2
    lr_adam: float = 0.01
    batch_size: int | None = None

    def __post_init__(self) -> None:
        integer("n_filters", self.n_filters, 1, kind_error=ValueError)
        _check_lam(self.lam)
        _check_beta(self.beta)
        integer("epochs", self.epochs, 1, kind_error=ValueError)
        for name in ("lr_sgd", "lr_asgd", "lr_adam"):
            real(name, getattr(self, name), 0.0, kind_error=ValueError)
        if self.batch_size is not None:
            integer("batch_size", self.batch_size, 1, kind_error=ValueError)

    def lr(self, optimizer: str) -> float:
        _check_name("optimizer", optimizer, OPTIMIZERS)
        return getattr(self, f"lr_{optimizer}")


@dataclass(frozen=True, kw_only=True)
class PrimalRun:
    """One training run: last weights and the exact objective (21) after every epoch.

    ``objective[0]`` is the value at initialisation, ``objective[e]`` after epoch ``e``.
    ``U_best, v_best`` are the weights with the smallest recorded objective ``best``.
    ``status`` is ``"completed"`` or says at which epoch a non-finite objective stopped
    the run (the non-finite value is not recorded).
    """

    optimizer: str
    init: str
    seed: int
    U: np.ndarray
    v: np.ndarray
    U_best: np.ndarray
    v_best: np.ndarray
    objective: np.ndarray
    best: float
    final: float
    status: str


def _check_name(what: str, name: str, allowed: tuple[str, ...]) -> None:
    if name not in allowed:
        raise ValueError(f"{what} must be one of {allowed}; got {name!r}")


def init_weights(init: str, m2: int, K: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Initial ``(U, v)`` (float64) for one of :data:`INITS`, reproducible from ``seed``."""
    _check_name("init", init, INITS)
    g = torch.Generator().manual_seed(int(seed))
    if init == "kaiming_uniform":
        # kaiming_uniform_(a=sqrt(5)) on a conv weight gives bound sqrt(6/((1+5) fan_in)).
        bu = 1.0 / math.sqrt(m2)
        bv = 1.0 / math.sqrt(K)
        U = (torch.rand(m2, K, generator=g, dtype=torch.float64) * 2 - 1) * bu
        v = (torch.rand(K, generator=g, dtype=torch.float64) * 2 - 1) * bv
    else:
        std = float(init.split("_")[1])
        U = torch.randn(m2, K, generator=g, dtype=torch.float64) * std
        v = torch.randn(K, generator=g, dtype=torch.float64) * std
    return U, v


def _make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "asgd":
        return torch.optim.ASGD(params, lr=lr)
    return torch.optim.Adam(params, lr=lr)


def train_primal(
    Y: np.ndarray,
    x: np.ndarray,
    config: PrimalConfig,
    *,
    optimizer: str,
    init: str,
    seed: int,
    start: tuple[np.ndarray, np.ndarray] | None = None,
) -> PrimalRun:
    """Train the primal ST-CNN (21) with ``optimizer`` from ``init``; float64 throughout.

    ``start = (U0, v0)`` warm-starts from given weights instead (any number of filters,
    ``U0`` of shape ``(m^2, K')``); ``init`` is then only the label recorded in the run and
    ``config.n_filters`` is not used.  ``seed`` drives the mini-batch order.
    """
    _check_name("optimizer", optimizer, OPTIMIZERS)
    Y, x = _check_data(Y, x)
    Yt = torch.as_tensor(Y)
    xt = torch.as_tensor(x)
    n_rows, m2 = Yt.shape
    if start is None:
        _check_name("init", init, INITS)
        U0, v0 = init_weights(init, m2, config.n_filters, seed)
    else:
        Us, vs = _check_weights(Y, *start)[1:]
        U0, v0 = torch.as_tensor(Us).clone(), torch.as_tensor(vs).clone()
    U = U0.clone().requires_grad_(True)
    v = v0.clone().requires_grad_(True)
    opt = _make_optimizer(optimizer, [U, v], config.lr(optimizer))
    lam, beta = config.lam, config.beta
    gen = torch.Generator().manual_seed(int(seed) + 7919)

    def exact(Uc: torch.Tensor, vc: torch.Tensor) -> float:
        with torch.no_grad():
            r = soft_threshold(Yt @ Uc, lam) @ vc - xt
            return float(r @ r + beta * ((Uc * Uc).sum() + vc @ vc))

    history = [exact(U, v)]
    best, U_best, v_best = history[0], U0.clone(), v0.clone()
    bs = config.batch_size
    status = "completed"
    U_last, v_last = U0.clone(), v0.clone()
    for epoch in range(1, config.epochs + 1):
        if bs is None or bs >= n_rows:
            batches = [None]
        else:
            perm = torch.randperm(n_rows, generator=gen)
            batches = list(torch.split(perm, bs))
        for idx in batches:
            Yb, xb = (Yt, xt) if idx is None else (Yt[idx], xt[idx])
            opt.zero_grad(set_to_none=True)
            r = soft_threshold(Yb @ U, lam) @ v - xb
            # unbiased estimate of (21) / I
            loss = (r @ r) / Yb.shape[0] + beta * ((U * U).sum() + v @ v) / n_rows
            loss.backward()
            opt.step()
        val = exact(U, v)  # (21) at the weights after this epoch
        if not math.isfinite(val):
            status = f"stopped: non-finite objective at epoch {epoch}"
            break
        history.append(val)
        U_last, v_last = U.detach().clone(), v.detach().clone()
        if val < best:
            best, U_best, v_best = val, U.detach().clone(), v.detach().clone()
    return PrimalRun(
        optimizer=optimizer,
        init=init,
        seed=int(seed),
        U=U_last.numpy().copy(),
        v=v_last.numpy().copy(),
        U_best=U_best.numpy().copy(),
        v_best=v_best.numpy().copy(),
        objective=np.asarray(history),
        best=float(best),
        final=float(history[-1]),
        status=status,
    )
