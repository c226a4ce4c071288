"""The composite problem ``min_x phi(x) = f(x) + kappa * ||q(x)||_{2,1}``.

* :class:`LeastSquares` -- the fidelity ``f(x) = 1/2 ||A x - y||^2`` per sample, with
  ``grad f(x) = A^H (A x - y)`` (for complex ``x`` this is the gradient with respect to
  ``(Re x, Im x)`` packed as a complex tensor, the convention of PyTorch's autograd).
* :class:`Problem` -- a fidelity, a feature map ``q`` (any ``nn.Module``) and a weight
  ``kappa`` (a float, or a tensor of shape (B,) for one weight per sample).

``Problem.phi(x)`` is the exact nonsmooth objective of shape (B,).
"""

from __future__ import annotations

import torch
from torch import nn

from ._validate import real
from .operators import DTYPES, LinearOperator
from .smoothing import Smoothing

__all__ = ["LeastSquares", "Problem"]


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
    def phi(self, x: torch.Tensor) -> torch.Tensor:
        """The exact nonsmooth objective ``f(x) + kappa ||q(x)||_{2,1}``, shape (B,)."""
        with torch.no_grad():
            f = self.fidelity.value(x)
            return f + self.kappa(f) * Smoothing.exact(self.features(x))

    def phi_eps(self, x: torch.Tensor, eps: torch.Tensor | float, smoothing: Smoothing) -> torch.Tensor:
        """The smoothed objective ``f(x) + kappa r_eps(x)``, shape (B,)."""
        with torch.no_grad():
            f = self.fidelity.value(x)
            return f + self.kappa(f) * smoothing.value(self.features(x), eps)

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
