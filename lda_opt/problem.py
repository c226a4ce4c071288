"""The composite problem ``min_x phi(x) = f(x) + kappa * ||q(x)||_{2,1}``.

* :class:`LeastSquares` -- the fidelity ``f(x) = 1/2 ||A x - y||^2`` per sample, with
  ``grad f(x) = A^H (A x - y)`` (for complex ``x`` this is the gradient with respect to
  ``(Re x, Im x)`` packed as a complex tensor, the convention of PyTorch's autograd).
* :class:`Problem` -- a fidelity, a feature map ``q`` (any ``nn.Module``) and a weight
  ``kappa`` (a float, or a tensor of shape (B,) for one weight per sample).

``Problem.phi(x)`` is the exact nonsmooth objective of shape (B,), ``Problem.phi_eps(x, eps,
smoothing)`` the smoothed one; both run without autograd unless ``differentiable=True``,
which keeps the graph to ``x`` (and to the feature map's parameters), e.g. for a
``torch.optim`` closure.  :class:`SmoothedObjective` (``Problem.smoothed(eps)``) is
``phi_eps`` as an objective for ``torch.optim`` / ``scipy.optimize``: differentiable calls,
``value_and_grad`` with the library's own gradient (``grad f + kappa grad q^T y*_eps``, LDA eq.
10) and a cache of the last forwards, so that re-evaluating a point costs no pass of ``q``
and its gradient at a new ``eps`` one backward (the reuse the library's solvers get).
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ._validate import flag, integer, real
from .operators import DTYPES, LinearOperator
from .smoothing import Huber, Smoothing

__all__ = ["LeastSquares", "Problem", "SmoothedObjective"]


def _check_dtype(t: torch.Tensor, name: str) -> None:
    if t.dtype not in DTYPES:
        raise TypeError(f"{name} must have dtype float32, float64, complex64 or complex128; "
                        f"got {t.dtype}")


def _check_finite(t: torch.Tensor, name: str) -> None:
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or Inf")


def _check_weight(weight) -> float | torch.Tensor:
    """``kappa``: a finite number > 0, or a real tensor of shape () or (B,) with finite
    entries > 0 (it may require gradients: a learned task weight)."""
    if isinstance(weight, torch.Tensor):
        if weight.is_complex() or weight.dtype == torch.bool:
            raise TypeError(f"weight must be a real tensor; got dtype {weight.dtype}")
        if weight.dim() > 1:
            raise ValueError(f"weight must be a float or a tensor of shape (B,); got {tuple(weight.shape)}")
        if weight.numel() == 0:
            raise ValueError("weight must not be empty: a float or a tensor of shape (B,) with B >= 1")
        _check_finite(weight.detach(), "weight")
        if not torch.all(weight.detach() > 0):
            raise ValueError("weight must be > 0 (the valid range is (0, inf))")
        return weight
    return real("weight", weight, 0)


class LeastSquares:
    """``f(x) = 1/2 ||A x - y||^2`` per sample; ``L_f = ||A||^2``."""

    def __init__(self, A: LinearOperator, y: torch.Tensor) -> None:
        if not isinstance(A, LinearOperator):
            raise TypeError(f"A must be an lda_opt.operators.LinearOperator; got {type(A).__name__}")
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"y must be a torch.Tensor; got {type(y).__name__}")
        _check_dtype(y, "y")
        if y.dim() < 2:
            raise ValueError(f"y must have a batch dimension: shape (B, ...); got {tuple(y.shape)}")
        if y.numel() == 0:
            raise ValueError(f"y must not be empty (an empty batch or a zero-size axis); got shape {tuple(y.shape)}")
        _check_finite(y, "y")
        A.check_data(y)
        self.A = A
        self.y = y

    @property
    def batch_size(self) -> int:
        return self.y.shape[0]

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.A(x) - self.y

    def value(self, x: torch.Tensor) -> torch.Tensor:
        """``f(x)`` per sample, shape (B,)."""
        res = self.residual(x)
        return 0.5 * _sq_norm(res)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """``grad f(x) = A^H (A x - y)``."""
        return self.A.adjoint(self.residual(x))

    def value_and_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        res = self.residual(x)
        return 0.5 * _sq_norm(res), self.A.adjoint(res)

    def select(self, index: torch.Tensor) -> LeastSquares:
        out = LeastSquares.__new__(LeastSquares)
        out.A = self.A.select(index)
        out.y = self.y[index]
        return out

    def check_input(self, x: torch.Tensor, name: str = "x0") -> None:
        self.A.check_input(x, name)
        if x.shape[0] != self.y.shape[0]:
            raise ValueError(f"{name} has batch size {x.shape[0]} but y has {self.y.shape[0]}")
        expected = self.A.output_shape(tuple(x.shape[1:]))
        if tuple(self.y.shape[1:]) != tuple(expected):
            raise ValueError(
                f"y has per-sample shape {tuple(self.y.shape[1:])} but A maps {name} to "
                f"{tuple(expected)}"
            )
        if x.real.dtype != self.y.real.dtype:
            raise TypeError(f"{name} has dtype {x.dtype} but y has dtype {self.y.dtype}")
        if self.y.is_complex() != (x.is_complex() or self.A.complex_valued):
            raise TypeError(
                f"{name} has dtype {x.dtype} but y has dtype {self.y.dtype}: A {name} is "
                f"{'complex' if x.is_complex() or self.A.complex_valued else 'real'}, so y must be too "
                "(real vs complex mismatch)")
        if x.device != self.y.device:
            raise ValueError(f"{name} is on {x.device} but y is on {self.y.device}")


def _sq_norm(t: torch.Tensor) -> torch.Tensor:
    t = torch.view_as_real(t) if t.is_complex() else t
    return t.reshape(t.shape[0], -1).square().sum(dim=1)


class Problem:
    """``phi(x) = f(x) + kappa * sum_i ||q_i(x)||`` with per-sample semantics.

    Parameters
    ----------
    fidelity:
        An object with ``value_and_grad(x)``, ``select(index)`` and ``check_input(x)``
        (e.g. :class:`LeastSquares`).
    features:
        The feature map ``q``: any ``nn.Module`` mapping (B, C, H, W) -> (B, d, H', W')
        that acts on each sample independently.
    weight:
        ``kappa > 0``: a float or a tensor of shape (B,).
    """

    def __init__(self, fidelity: LeastSquares, features: nn.Module, weight: float | torch.Tensor) -> None:
        missing = [m for m in ("value", "value_and_grad", "select", "check_input")
                   if not callable(getattr(fidelity, m, None))]
        if missing:
            raise TypeError(f"fidelity must be a fidelity such as lda_opt.LeastSquares (with "
                            f"value, value_and_grad, select, check_input); got "
                            f"{type(fidelity).__name__}, which lacks {', '.join(missing)}")
        if not isinstance(features, nn.Module):
            raise TypeError(f"features must be a torch.nn.Module; got {type(features).__name__}")
        weight = _check_weight(weight)
        self.fidelity = fidelity
        self.features = features
        self.weight = weight

    # -- per-sample helpers ---------------------------------------------------------------
    def kappa(self, like: torch.Tensor) -> torch.Tensor | float:
        """``kappa`` broadcastable against a (b,) tensor ``like``."""
        if isinstance(self.weight, torch.Tensor):
            return self.weight.to(device=like.device, dtype=like.dtype)
        return self.weight

    def select(self, index: torch.Tensor) -> Problem:
        """The sub-problem of the samples ``index`` (every sample is its own problem)."""
        out = Problem.__new__(Problem)
        out.fidelity = self.fidelity.select(index)
        out.features = self.features
        out.weight = self.weight[index] if isinstance(self.weight, torch.Tensor) and self.weight.dim() == 1 else self.weight
        return out

    # -- objective ------------------------------------------------------------------------
    def phi(self, x: torch.Tensor, *, differentiable: bool = False) -> torch.Tensor:
        """The exact nonsmooth objective ``f(x) + kappa ||q(x)||_{2,1}``, shape (B,).
        ``differentiable=True`` keeps the autograd graph (a subgradient where a group
        ``q_i(x)`` is zero is whatever autograd gives; prefer :meth:`phi_eps`)."""
        flag("differentiable", differentiable)
        with _grad_mode(differentiable):
            f = self.fidelity.value(x)
            return f + self.kappa(f) * Smoothing.exact(self.features(x))

    def phi_eps(self, x: torch.Tensor, eps: torch.Tensor | float, smoothing: Smoothing, *,
                differentiable: bool = False) -> torch.Tensor:
        """The smoothed objective ``f(x) + kappa r_eps(x)``, shape (B,) (``eps``: a number or
        a (B,) tensor).  ``differentiable=True`` keeps the autograd graph to ``x`` and to the
        feature map's parameters: ``phi_eps(x, eps, s, differentiable=True).sum().backward()``
        gives ``grad phi_eps`` per sample (for complex ``x``, with respect to ``(Re x, Im x)``
        packed as a complex tensor, PyTorch's convention, as ``grad f`` here)."""
        flag("differentiable", differentiable)
        _check_smoothing(smoothing)
        with _grad_mode(differentiable):
            f = self.fidelity.value(x)
            return f + self.kappa(f) * smoothing.value(self.features(x), eps)

    def smoothed(self, eps: float, smoothing: Smoothing | None = None, *, cache: int = 4) -> SmoothedObjective:
        """``phi_eps`` as an objective for ``torch.optim`` / ``scipy.optimize``: a
        :class:`SmoothedObjective` at level ``eps`` (``smoothing`` default Huber)."""
        return SmoothedObjective(self, eps, smoothing, cache=cache)

    def check_input(self, x0: torch.Tensor, name: str = "x0") -> None:
        """Raise a clear error if ``x0`` cannot start an iteration on this problem."""
        if not isinstance(x0, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(x0).__name__}")
        if not (x0.is_floating_point() or x0.is_complex()):
            raise TypeError(f"{name} must be a floating-point or complex tensor; got {x0.dtype}")
        _check_dtype(x0, name)
        if x0.dim() >= 1 and x0.shape[0] == 0:
            raise ValueError(f"{name} must hold at least one sample; got an empty batch of shape {tuple(x0.shape)}")
        _check_finite(x0, name)
        self.fidelity.check_input(x0, name)
        if isinstance(self.weight, torch.Tensor) and self.weight.dim() == 1 and self.weight.shape[0] != x0.shape[0]:
            raise ValueError(f"weight has {self.weight.shape[0]} entries but {name} has batch size {x0.shape[0]}")
        for p in self.features.parameters():
            if (p.real.dtype if p.is_complex() else p.dtype) != x0.real.dtype:
                raise TypeError(
                    f"feature map parameters have dtype {p.dtype} but {name} has dtype {x0.dtype}; "
                    f"convert one of them (e.g. features.to({x0.real.dtype}))"
                )
            if p.device != x0.device:
                raise ValueError(f"feature map is on {p.device} but {name} is on {x0.device}")


def _grad_mode(differentiable: bool):
    return contextlib.nullcontext() if differentiable else torch.no_grad()


def _check_smoothing(smoothing) -> None:
    if not isinstance(smoothing, Smoothing) or type(smoothing).value is Smoothing.value:
        raise TypeError(f"smoothing must be an lda_opt.smoothing.Smoothing such as Huber() or Sqrt(); "
                        f"got {type(smoothing).__name__}")


class SmoothedObjective:
    r"""``phi_eps(x) = f(x) + kappa r_eps(x)`` of a :class:`Problem` as an objective for
    ``torch.optim`` and ``scipy.optimize`` (per sample: values of shape (B,)).

    * ``obj(x)``: the differentiable value (autograd graph to ``x`` and to ``q``'s
      parameters); ``obj(x).sum().backward()`` fills ``x.grad`` with ``grad phi_eps``.
    * ``obj.value_and_grad(x)``: ``(phi_eps(x), grad phi_eps(x))`` without differentiating
      through them, the gradient as the library's solvers compute it,
      ``grad f(x) + kappa grad q(x)^T y*_eps(q(x))`` (LDA eq. 10): one forward of ``q`` (graph
      kept) per new point, one backward per (point, ``eps``).  The last ``cache`` points are
      kept, so a re-evaluated point costs no pass and, after ``obj.eps`` is lowered (an
      eps-continuation), its gradient one backward.
    * ``obj.phi(x)``: the exact objective at a cached (or new) point, no extra pass.

    ``eps`` (settable) is a number ``> 0``; ``smoothing`` defaults to :class:`Huber`.
    """

    def __init__(self, problem: Problem, eps: float, smoothing: Smoothing | None = None, *,
                 cache: int = 4) -> None:
        if not isinstance(problem, Problem):
            raise TypeError(f"problem must be an lda_opt.Problem; got {type(problem).__name__}")
        smoothing = Huber() if smoothing is None else smoothing
        _check_smoothing(smoothing)
        self.problem = problem
        self.smoothing = smoothing
        self.cache = integer("cache", cache, 1)
        self.eps = eps
        self._entries: list[dict] = []

    @property
    def eps(self) -> float:
        """The smoothing level ``eps > 0``."""
        return self._eps

    @eps.setter
    def eps(self, value: float) -> None:
        self._eps = real("eps", value, 0)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``phi_eps(x)``, shape (B,), differentiable (no cache)."""
        return self.problem.phi_eps(x, self._eps, self.smoothing, differentiable=True)

    def _entry(self, x: torch.Tensor) -> dict:
        """The cached forward at ``x`` (one forward of ``q`` if ``x`` is new)."""
        xd = x.detach()
        for e in self._entries:
            if e["x"].shape == xd.shape and e["x"].dtype == xd.dtype and torch.equal(e["x"], xd):
                return e
        self.problem.check_input(xd, "x")
        leaf = xd.clone().requires_grad_(True)
        with torch.enable_grad():
            g = self.problem.features(leaf)
        with torch.no_grad():
            f, grad_f = self.problem.fidelity.value_and_grad(xd)
        e = {"x": xd.clone(), "leaf": leaf, "g": g, "f": f, "grad_f": grad_f, "grads": {}}
        self._entries.append(e)
        if len(self._entries) > self.cache:
            self._entries.pop(0)
        return e

    def value(self, x: torch.Tensor) -> torch.Tensor:
        """``phi_eps(x)``, shape (B,), not differentiable (cached forward)."""
        e = self._entry(x)
        with torch.no_grad():
            return e["f"] + self.problem.kappa(e["f"]) * self.smoothing.value(e["g"].detach(), self._eps)

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """``grad phi_eps(x)`` shaped like ``x`` (one backward per point and ``eps``)."""
        e = self._entry(x)
        if self._eps not in e["grads"]:
            y = self.smoothing.dual(e["g"].detach(), self._eps)
            (v,) = torch.autograd.grad(e["g"], e["leaf"], y, retain_graph=True)
            k = self.problem.kappa(e["f"])
            if isinstance(k, torch.Tensor):
                k = k.reshape(-1, *([1] * (v.dim() - 1)))
            e["grads"][self._eps] = e["grad_f"] + k * v
        return e["grads"][self._eps]

    def value_and_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(phi_eps(x), grad phi_eps(x))``: (B,) and shaped like ``x``."""
        return self.value(x), self.grad(x)

    def phi(self, x: torch.Tensor) -> torch.Tensor:
        """The exact objective ``phi(x)``, shape (B,), from the cached forward."""
        e = self._entry(x)
        with torch.no_grad():
            return e["f"] + self.problem.kappa(e["f"]) * Smoothing.exact(e["g"].detach())
