"""The constants of the bounds: :func:`estimate_constants` (``L_f, M, L_g, m`` of a
:class:`~lda_opt.Problem`) and the validation of a supplied constants dict."""

from __future__ import annotations

import math

import torch

from .. import bounds

__all__ = ["CONSTANT_KEYS", "estimate_constants", "validate_constants"]

#: the keys a constants dict may have
CONSTANT_KEYS = {"L_f", "M", "L_g", "phi_x0", "phi_star", "m", "kappa", "certified"}
#: relative inflation of a dense SVD norm so that it certifies ||A||^2 despite rounding
_SVD_INFLATE = 1e-10


def validate_constants(constants: dict | None) -> dict:
    if constants is None:
        return {}
    if not isinstance(constants, dict):
        raise TypeError(f"constants must be a dict; got {type(constants).__name__}")
    unknown = set(constants) - CONSTANT_KEYS
    if unknown:
        raise ValueError(
            f"constants has unknown keys {sorted(unknown)}; valid: {sorted(CONSTANT_KEYS)}"
        )
    out = dict(constants)
    for key in ("L_f", "M", "L_g"):
        if out.get(key) is not None:
            try:
                v = float(out[key])
            except (TypeError, ValueError):
                raise ValueError(
                    f"constants[{key!r}] must be a number in [0, inf); got {out[key]!r}"
                ) from None
            if not (v >= 0 and math.isfinite(v)):
                raise ValueError(f"constants[{key!r}] must be in [0, inf); got {out[key]!r}")
            out[key] = v
    if out.get("phi_star") is not None:
        v = float(out["phi_star"])
        if not math.isfinite(v):
            raise ValueError(f"constants['phi_star'] must be finite; got {out['phi_star']!r}")
        out["phi_star"] = v
    cert = out.get("certified")
    if cert is not None and not isinstance(cert, dict):
        raise ValueError(f"constants['certified'] must be a dict {{name: bool}}; got {cert!r}")
    return out


def _image_like(problem) -> torch.Tensor:
    from ..operators import MRI, Identity, Matrix

    A = problem.fidelity.A
    y = problem.fidelity.y
    if isinstance(A, Matrix):
        return torch.zeros((1, *A.input_shape), dtype=y.dtype, device=y.device)
    if isinstance(A, (MRI, Identity)):
        return torch.zeros((1, *y.shape[1:]), dtype=y.dtype, device=y.device)
    raise ValueError(
        "cannot infer the image shape of this problem's operator; pass x (an image) "
        "to estimate_constants"
    )


def estimate_constants(problem, x: torch.Tensor | None = None) -> dict:
    r"""``{"L_f", "M", "L_g", "m", "certified"}`` for a :class:`~lda_opt.Problem`.

    * ``L_f = ||A||^2``: 1 for ``Identity`` and ``MRI`` (``||P F|| = 1`` for a binary mask
      with a sampled frequency; certified); the dense spectral norm for ``Matrix``
      (SVD, inflated by a relative 1e-10 for rounding; certified); otherwise power
      iteration (:func:`~lda_opt.bounds.operator_norm_sq`; an estimate, a lower bound).
    * ``(M, L_g)``: ``(sqrt 8, 0)`` for ``FiniteDifference`` and ``(1, 0)`` for ``Identity``
      features (certified); :func:`~lda_opt.bounds.cnn_constants` for smoothed-activation
      CNNs (``FeatureCNN``, ``Adapter``, ``Composed``; certified); for any other module with
      ``linear = True``, :func:`~lda_opt.bounds.linear_feature_constants` (``M`` an estimate,
      ``L_g = 0``).  Anything else raises ``ValueError``: pass the constants to :func:`check`.
    * ``m``: the number of groups, ``H' W'`` of ``q(x)``.

    ``x``: an image of the problem's shape (needed only for operators other than the
    library's ``Identity``, ``Matrix`` and ``MRI``).  ``certified`` maps each of ``L_f, M,
    L_g`` to whether it is a certified upper bound.
    """
    from .. import features as F
    from ..operators import MRI, Identity, Matrix
    from ..problem import Problem

    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be an lda_opt.Problem; got {type(problem).__name__}")
    if x is None:
        x = _image_like(problem)
    if not isinstance(x, torch.Tensor) or x.dim() < 3:
        raise ValueError("x must be an image tensor of shape (B, C, H, W)")
    x1 = x[:1].detach()
    A = problem.fidelity.A
    certified: dict[str, bool] = {}
    if isinstance(A, (Identity, MRI)):
        L_f, certified["L_f"] = 1.0, True
    elif isinstance(A, Matrix):
        L_f, certified["L_f"] = bounds.operator_norm_sq(A.Phi) * (1.0 + _SVD_INFLATE), True
    else:
        L_f = bounds.operator_norm_sq(A, tuple(x1.shape), dtype=x1.dtype)
        certified["L_f"] = False
    q = problem.features
    with torch.no_grad():
        g = q(x1)
    m = math.prod(g.shape[2:]) if g.dim() > 2 else 1
    if isinstance(q, F.FiniteDifference):
        M, L_g = bounds.finite_difference_norm_bound(), 0.0
        certified.update(M=True, L_g=True)
    elif isinstance(q, F.Identity):
        M, L_g = 1.0, 0.0
        certified.update(M=True, L_g=True)
    elif any(getattr(q, name, None) is not None for name in ("convs", "conv", "g")):
        M, L_g = bounds.cnn_constants(q, tuple(x1.shape[-2:]))
        certified.update(M=True, L_g=True)
    elif getattr(q, "linear", False):
        M, L_g = bounds.linear_feature_constants(q, tuple(x1.shape), dtype=x1.dtype)
        certified.update(M=False, L_g=True)
    else:
        raise ValueError(
            f"cannot estimate M and L_g for the feature map {type(q).__name__}; "
            "pass constants={'L_f': ..., 'M': ..., 'L_g': ...}"
        )
    return {
        "L_f": float(L_f),
        "M": float(M),
        "L_g": float(L_g),
        "m": int(m),
        "certified": certified,
    }
