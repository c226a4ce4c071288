"""Linear forward models ``A`` with exact adjoints ``A.H``.

Every operator acts sample-wise on a batch ``x`` of shape (B, C, H, W); ``A(x)`` and the
adjoint ``A.H(y)`` satisfy ``<A x, y> = <x, A^H y>`` exactly (up to rounding) for the real
inner product ``Re sum conj(a) b``.  ``norm_estimate`` gives ``||A||`` by power iteration.

Operators:

* :class:`Identity` -- denoising, ``y`` has the shape of ``x``.
* :class:`Matrix` -- a dense matrix ``Phi`` of shape (M, C*H*W) acting on each flattened
  sample (block compressed sensing, LDA Sec. 4.2.1); ``y`` has shape (B, M).
* :class:`MRI` -- ``P F`` with the orthonormal 2-D FFT ``F`` and a binary sampling mask
  ``P`` (meta-LDA eq. 2); complex; ``y`` has shape (B, C, H, W) and is zero off the mask.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ._validate import integer

#: the dtypes operators and problems compute in: float64 (theory), float32 (learned networks)
#: and their complex counterparts (MRI).  Half precision, integers and bools are refused.
DTYPES = (torch.float32, torch.float64, torch.complex64, torch.complex128)

__all__ = ["CG_TOL", "DTYPES", "MRI", "Identity", "LinearOperator", "Matrix", "conjugate_gradient", "norm_estimate",
           "power_iteration"]

#: relative residual ``||r|| <= CG_TOL ||v||`` (per sample) at which :func:`conjugate_gradient`
#: stops by default: the stated tolerance of :meth:`LinearOperator.normal_resolvent` for an
#: operator without a closed-form resolvent
CG_TOL = 1e-10


def _per_sample(c, v: torch.Tensor) -> torch.Tensor | float:
    """``c`` (a float, a 0-dim tensor or a (B,) tensor) broadcast against the batch ``v``."""
    if isinstance(c, torch.Tensor) and c.dim() > 0:
        if c.shape != (v.shape[0],):
            raise ValueError(f"c must be a number or a (B,) tensor with B = {v.shape[0]}; got shape {tuple(c.shape)}")
        return c.reshape(-1, *([1] * (v.dim() - 1)))
    return c


def _check_c(c) -> None:
    t = torch.as_tensor(c.detach() if isinstance(c, torch.Tensor) else c)
    if t.is_complex() or not torch.isfinite(t).all() or bool((t < 0).any()):
        raise ValueError(f"c must be real, finite and >= 0; got {c!r}")


class LinearOperator:
    """Base class: subclasses implement ``forward`` and ``adjoint``.

    ``input_shape`` is the per-sample image shape (C, H, W) the operator accepts, or
    ``None`` when any shape is accepted.
    """

    input_shape: tuple[int, ...] | None = None
    #: whether ``forward`` maps real images to complex data (x must then be complex).
    complex_valued: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    @property
    def H(self) -> _Adjoint:
        """The adjoint operator ``A^H`` (callable)."""
        return _Adjoint(self)

    def output_shape(self, image_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Per-sample shape of ``A x`` for an image of per-sample shape ``image_shape``."""
        return tuple(image_shape)

    def select(self, index: torch.Tensor) -> LinearOperator:
        """The operator restricted to the samples ``index`` (for batch-dependent operators)."""
        return self

    def normal_resolvent(self, c, v: torch.Tensor, *, tol: float = CG_TOL, max_iter: int = 1000) -> torch.Tensor:
        r"""The resolvent of the normal operator, ``(I + c A^H A)^{-1} v`` (MOL supplement eq. 1).

        ``c >= 0`` is a number or a (B,) tensor (one value per sample; it may carry
        gradients).  The base class solves ``(I + c A^H A) u = v`` by
        :func:`conjugate_gradient` (the matrix is Hermitian positive definite with
        eigenvalues in ``[1, 1 + c ||A||^2]``) to the per-sample relative residual ``tol``
        (default :data:`CG_TOL`) in at most ``max_iter`` iterations; subclasses with a
        closed form (:class:`Identity`, :class:`MRI`) override it and are exact.
        """
        _check_c(c)
        cc = _per_sample(c, v)
        u, _, _ = conjugate_gradient(lambda w: w + cc * self.adjoint(self.forward(w)), v, tol=tol, max_iter=max_iter)
        return u

    def check_data(self, y: torch.Tensor, name: str = "y") -> None:
        """Raise ValueError/TypeError when ``y`` cannot be data ``A x`` of this operator
        (called by :class:`~lda_opt.LeastSquares`; ``y`` has a batch axis and a valid dtype)."""
        if self.complex_valued and not y.is_complex():
            raise TypeError(f"{name} must be complex for the complex operator {type(self).__name__}; "
                            f"got dtype {y.dtype}")
        if self.input_shape is not None:
            expected = tuple(self.output_shape(tuple(self.input_shape)))
            if tuple(y.shape[1:]) != expected:
                raise ValueError(f"{name} must have shape (B, {', '.join(map(str, expected))}) for "
                                 f"{self!r}; got {tuple(y.shape)}")

    def check_input(self, x: torch.Tensor, name: str = "x0") -> None:
        """Raise ValueError/TypeError when ``x`` cannot be an input of this operator."""
        if x.dim() != 4:
            raise ValueError(f"{name} must have shape (B, C, H, W); got {tuple(x.shape)}")
        if self.input_shape is not None and tuple(x.shape[1:]) != tuple(self.input_shape):
            raise ValueError(
                f"{name} has per-sample shape {tuple(x.shape[1:])} but the operator expects "
                f"{tuple(self.input_shape)}"
            )
        if self.complex_valued and not x.is_complex():
            raise TypeError(
                f"{name} must be complex for the complex operator {type(self).__name__}; "
                f"got dtype {x.dtype} (use e.g. x.to(torch.complex64))"
            )


class _Adjoint:
    def __init__(self, op: LinearOperator) -> None:
        self.op = op

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        return self.op.adjoint(y)

    @property
    def H(self) -> LinearOperator:
        return self.op


class Identity(LinearOperator):
    """``A = I``: ``A x = x``, ``A^H y = y`` (denoising)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def normal_resolvent(self, c, v: torch.Tensor, *, tol: float = CG_TOL, max_iter: int = 1000) -> torch.Tensor:
        """``(I + c I)^{-1} v = v / (1 + c)`` (exact; ``tol``/``max_iter`` unused)."""
        _check_c(c)
        return v / (1 + _per_sample(c, v))

    def check_data(self, y: torch.Tensor, name: str = "y") -> None:
        if y.dim() != 4:
            raise ValueError(f"{name} must have shape (B, C, H, W) for Identity() (the shape of x); "
                             f"got {tuple(y.shape)}")

    def __repr__(self) -> str:
        return "Identity()"


class Matrix(LinearOperator):
    """Dense ``Phi`` (M, N) acting on each flattened sample, ``N = C*H*W``.

    ``A x = Phi vec(x)`` with ``y`` of shape (B, M); ``A^H y = reshape(Phi^H y)``.
    Used for block compressed sensing (LDA Sec. 4.2.1) with ``image_shape=(1, 33, 33)``.
    """

    def __init__(self, Phi: torch.Tensor, image_shape: tuple[int, int, int]) -> None:
        if not isinstance(Phi, torch.Tensor):
            raise TypeError(f"Phi must be a torch.Tensor of shape (M, C*H*W); got {type(Phi).__name__}")
        if Phi.dim() != 2:
            raise ValueError(f"Phi must be a 2-D tensor of shape (M, C*H*W); got shape {tuple(Phi.shape)}")
        if Phi.dtype not in DTYPES:
            raise TypeError(f"Phi must have dtype float32, float64, complex64 or complex128; got {Phi.dtype}")
        if Phi.shape[0] < 1:
            raise ValueError(f"Phi must have at least one row (M >= 1); got shape {tuple(Phi.shape)}")
        if not isinstance(image_shape, (tuple, list, torch.Size)) or len(image_shape) != 3:
            raise ValueError(f"image_shape must be (C, H, W) with positive sizes; got {image_shape!r}")
        image_shape = tuple(integer(f"image_shape[{i}]", s, 1) for i, s in enumerate(image_shape))
        n = math.prod(image_shape)
        if Phi.shape[1] != n:
            raise ValueError(
                f"Phi has {Phi.shape[1]} columns but image_shape {tuple(image_shape)} has {n} pixels"
            )
        if not torch.isfinite(Phi).all():
            raise ValueError("Phi contains NaN or Inf")
        self.Phi = Phi
        self.input_shape = tuple(int(s) for s in image_shape)
        self.complex_valued = Phi.is_complex()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1) @ self.Phi.to(x.dtype).T

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return (y @ self.Phi.to(y.dtype).conj()).reshape(y.shape[0], *self.input_shape)

    def output_shape(self, image_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.Phi.shape[0],)

    def to(self, *args, **kwargs) -> Matrix:
        return Matrix(self.Phi.to(*args, **kwargs), self.input_shape)

    def __repr__(self) -> str:
        return f"Matrix(Phi={tuple(self.Phi.shape)}, image_shape={self.input_shape})"


class MRI(LinearOperator):
    """Under-sampled MRI ``A = P F`` (meta-LDA eq. 2).

    ``F`` is the orthonormal 2-D FFT over the last two axes (``norm="ortho"``) and ``P``
    multiplies by a 0/1 ``mask`` in the unshifted FFT layout (DC at index [0, 0]).
    ``mask`` has shape (H, W), (C, H, W) or (B, C, H, W); it broadcasts over the batch.
    ``A^H y = F^{-1}(P y)``.  Since ``F`` is unitary and ``P`` a projection, ``||A|| = 1``
    whenever the mask samples at least one frequency.
    """

    complex_valued = True

    def __init__(self, mask: torch.Tensor) -> None:
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"mask must be a torch.Tensor of 0/1 entries; got {type(mask).__name__}")
        if mask.dim() not in (2, 3, 4):
            raise ValueError("mask must be a tensor of shape (H, W), (C, H, W) or (B, C, H, W); "
                             f"got {tuple(mask.shape)}")
        if mask.is_complex():
            raise TypeError(f"mask must be real (0/1 entries); got dtype {mask.dtype}")
        m = mask.to(torch.float64) if not mask.is_floating_point() or mask.dtype not in DTYPES else mask
        if not torch.all((m == 0) | (m == 1)):
            raise ValueError("mask must contain only zeros and ones")
        if m.sum() == 0:
            raise ValueError("mask samples no frequency (all zeros)")
        while m.dim() < 4:
            m = m.unsqueeze(0)
        self.mask = m
        self.input_shape = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mask.to(x.real.dtype) * torch.fft.fft2(x, norm="ortho")

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return torch.fft.ifft2(self.mask.to(y.real.dtype) * y, norm="ortho")

    def normal_resolvent(self, c, v: torch.Tensor, *, tol: float = CG_TOL, max_iter: int = 1000) -> torch.Tensor:
        r"""``(I + c F^H P F)^{-1} v = F^{-1}(F v / (1 + c P))``: with ``F`` unitary and the mask
        ``P`` a 0/1 diagonal, ``I + c A^H A = F^H (I + c P) F`` is diagonal in k-space, so
        the resolvent is exact (no inner CG; ``tol``/``max_iter`` unused)."""
        _check_c(c)
        cc = _per_sample(c, v)
        return torch.fft.ifft2(torch.fft.fft2(v, norm="ortho") / (1 + cc * self.mask.to(v.real.dtype)), norm="ortho")

    def select(self, index: torch.Tensor) -> MRI:
        if self.mask.shape[0] == 1:
            return self
        out = MRI.__new__(MRI)
        out.mask = self.mask[index]
        out.input_shape = None
        return out

    def check_data(self, y: torch.Tensor, name: str = "y") -> None:
        super().check_data(y, name)
        if y.dim() != 4:
            raise ValueError(f"{name} must have shape (B, C, H, W) for MRI (k-space of x); got {tuple(y.shape)}")
        self._check_layout(y, name)

    def check_input(self, x: torch.Tensor, name: str = "x0") -> None:
        super().check_input(x, name)
        self._check_layout(x, name)

    def _check_layout(self, x: torch.Tensor, name: str) -> None:
        mh, mw = self.mask.shape[-2:]
        if tuple(x.shape[-2:]) != (mh, mw):
            raise ValueError(
                f"{name} has spatial size {tuple(x.shape[-2:])} but the mask is {(mh, mw)}"
            )
        if self.mask.shape[1] not in (1, x.shape[1]):
            raise ValueError(f"mask has {self.mask.shape[1]} channels but {name} has {x.shape[1]}")
        if self.mask.shape[0] not in (1, x.shape[0]):
            raise ValueError(f"mask has batch size {self.mask.shape[0]} but {name} has {x.shape[0]}")

    @property
    def sampling_ratio(self) -> float:
        return float(self.mask.mean())

    def __repr__(self) -> str:
        return f"MRI(mask={tuple(self.mask.shape)}, ratio={self.sampling_ratio:.4f})"


def norm_estimate(
    A: LinearOperator,
    shape: tuple[int, ...],
    *,
    iters: int = 100,
    tol: float = 1e-7,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
) -> float:
    """Estimate ``||A||`` (spectral norm) by power iteration on ``A^H A``.

    ``shape`` is the full input shape (B, C, H, W); the estimate is the norm over the whole
    batch, i.e. the largest per-sample norm.  Power iteration converges from below: the
    returned value is an *estimate* (a lower bound up to rounding), not a certified upper
    bound.  Stops when the relative change is below ``tol``.
    """
    if iters < 1:
        raise ValueError(f"iters must be >= 1; got {iters}")
    if getattr(A, "complex_valued", False) and not dtype.is_complex:
        dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    if dtype.is_complex:
        x = torch.complex(x, torch.randn(shape, generator=gen, dtype=torch.float64))
    x = x.to(dtype)
    est, _ = power_iteration(lambda v: A.adjoint(A.forward(v)), x, iters, tol)
    return math.sqrt(est)


def power_iteration(
    normal: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, iters: int, tol: float = 0.0
) -> tuple[float, torch.Tensor]:
    """Power iteration on a self-adjoint positive semidefinite map (e.g. ``v -> A^H A v``).

    Starts from ``x`` (normalized here), runs at most ``iters`` steps and stops early once
    the relative change of ``||normal(x)||`` is at most ``tol``.  Returns ``(lam, x)``: the
    last ``||normal(x)||`` with ``||x|| = 1`` (an estimate of the largest eigenvalue, from
    below) and the final unit vector.  A zero image of ``normal`` returns ``(0.0, x)``.
    The one power-iteration loop of the library (:func:`norm_estimate`,
    :func:`lda_opt.bounds.operator_norm_sq`).
    """
    x = x / torch.linalg.vector_norm(x)
    est = 0.0
    for _ in range(iters):
        y = normal(x)
        nrm = float(torch.linalg.vector_norm(y))
        if nrm == 0.0:
            return 0.0, x
        x = y / nrm
        done = abs(nrm - est) <= tol * nrm
        est = nrm
        if done:
            break
    return est, x


def conjugate_gradient(
    apply: Callable[[torch.Tensor], torch.Tensor], v: torch.Tensor, *, tol: float = CG_TOL, max_iter: int = 1000
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Solve ``M u = v`` for a Hermitian positive definite ``M = apply``, per sample.

    Conjugate gradients from ``u_0 = 0`` with the real inner product ``Re <a, b>`` summed
    over each sample; a sample stops (is frozen) once ``||v - M u|| <= tol ||v||``.
    Returns ``(u, iterations (B,), relative residual (B,))``; a sample that did not reach
    ``tol`` in ``max_iter`` steps is returned as it is, its residual telling how far it got.
    ``tol`` must be > 0 (float32 reaches about 1e-6).
    """
    if not (isinstance(tol, (int, float)) and math.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a finite number > 0; got {tol!r}")
    max_iter = integer("max_iter", max_iter, 1)
    B = v.shape[0]

    def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a.conj() * b).real.reshape(B, -1).sum(dim=1)

    def col(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(-1, *([1] * (v.dim() - 1)))

    u = torch.zeros_like(v)
    r = v
    p = r
    rr = dot(r, r)
    vnorm = rr.sqrt()
    iters = torch.zeros(B, dtype=torch.long, device=v.device)
    active = rr.sqrt() > tol * vnorm
    for _ in range(max_iter):
        if not bool(active.any()):
            break
        Mp = apply(p)
        pMp = dot(p, Mp)
        a = torch.where(active, rr / torch.where(active, pMp, torch.ones_like(pMp)), torch.zeros_like(rr))
        u = u + col(a) * p
        r = r - col(a) * Mp
        rr_new = dot(r, r)
        beta = torch.where(active, rr_new / torch.where(active, rr, torch.ones_like(rr)), torch.zeros_like(rr))
        p = torch.where(col(active), r + col(beta) * p, p)
        rr = torch.where(active, rr_new, rr)
        iters = iters + active.long()
        active = active & (rr.sqrt() > tol * vnorm)
    return u, iters, rr.sqrt() / torch.where(vnorm > 0, vnorm, torch.ones_like(vnorm))
