r"""LDA-Net: ``K`` phases of the solver's own step with learned step sizes (LDA Sec. 4.1).

Phase ``k`` (``k = 0, ..., K-1``) is one call of :meth:`lda_opt.algorithms.Solver.iterate`
with gradients enabled (``differentiable=True``) and the learned per-phase parameters passed
as ``overrides``; there is no second copy of the iteration.  For ``algorithm="lda"``
(LDA Algorithm 1, eqs. 12-15, fixed step: ``linesearch=False``)

.. math::
    z = x_k - \alpha_k\nabla f(x_k),\quad u = z - \tau_k\nabla r_{\varepsilon_k}(z),\quad
    v = z - \alpha_k\nabla r_{\varepsilon_k}(x_k),\quad
    x_{k+1} = u \text{ if } \phi_{\varepsilon_k}(u)\le\phi_{\varepsilon_k}(v) \text{ else } v,

followed by the smoothing update of Algorithm 1 line 7
(``eps_{k+1} = gamma eps_k`` when ``||grad phi_eps_k(x_{k+1})|| < sigma gamma eps_k``).
The u/v choice is a hard selection: gradients flow through the branch taken.
``algorithm="gd"`` is GD-Net (the v-step only) and ``algorithm="agd"`` AGD-Net (the inertial
step ``x_k - alpha_k grad phi_eps(x_k) + theta_k (x_k - x_{k-1})``), LDA Sec. 4.3.1.

Trainable parameters: the shared :class:`~lda_opt.nets.FeatureCNN` ``q`` (convolutions without
bias), ``alpha_k`` and ``tau_k`` (lda; ``theta_k`` for agd) for every phase, kept positive by
a log parametrization (``theta_k in (0, 1)`` by a logistic one), and the starting smoothing
level ``eps_0`` (log-parametrized).  The weight ``kappa`` is fixed (default 1: LDA's
``r(x) = ||g(x)||_{2,1}`` has no weight, the scale is learned inside ``g``).  With
``width=32, depth=4, K=15`` this is ``27,936 + 2 * 15 + 1 = 27,967`` parameters (LDA Table 1).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._validate import integer, real
from ..algorithms import ALGORITHMS
from ..algorithms.base import PhaseParams, State
from ..nets import FeatureCNN, count_parameters
from ..problem import Problem

__all__ = ["NET_ALGORITHMS", "LDANet", "tv_init_"]

#: algorithm name -> the per-phase parameters it learns (besides the CNN and eps0)
NET_ALGORITHMS: dict[str, tuple[str, ...]] = {"lda": ("alpha", "tau"), "gd": ("alpha",), "agd": ("alpha", "theta"),
                                               "meta-lda": ("alpha", "tau"), "elda": ("alpha", "gamma_u")}
#: the algorithms whose phases run with the solver's own safeguard line search (meta-LDA
#: Algorithm 1 lines 5-10, modified ELDA (4.10)-(4.11)); the others take a fixed step
_SEARCHING = ("meta-lda", "elda")

#: the smallest eps_tol the phase solver is built with (phases never stop early)
_TINY_TOL = 1e-30


def tv_init_(features: nn.Module, noise: float = 0.0, generator: torch.Generator | None = None) -> nn.Module:
    r"""Initialize a :class:`~lda_opt.nets.FeatureCNN` (width >= 4) so that ``q`` is isotropic TV.

    The first convolution computes the forward differences ``+-D_h x`` and ``+-D_v x`` in
    channels 0-3, every later convolution passes channels 0-3 through (centre tap 1), so
    ``q_i(x) ~= (a(D_h x), a(-D_h x), a(D_v x), a(-D_v x), ...)`` and
    ``||q_i(x)|| ~= ||(D x)_i||`` (exactly so where the differences exceed the activation's
    ``delta``; zero padding makes the differences past the last row/column ``-x``).  For a
    complex CNN the real kernels are set and the imaginary ones are zero, so
    ``||q_i||`` is the complex TV.  Every weight then gets ``noise`` times its Xavier draw
    added (``noise = 0``: exactly the TV network; the other channels then start at 0).
    An optional starting point for training (not the paper's Xavier initialization).
    """
    from ..nets import xavier_init_
    from ..nets.conv import ComplexConv2d

    convs = list(getattr(features, "convs", []))
    if not convs or getattr(features, "width", 0) < 4:
        raise ValueError("tv_init_ needs a FeatureCNN with width >= 4")
    real("noise", noise, 0.0, lo_open=False, kind_error=ValueError)
    xavier_init_(features, generator=generator)
    with torch.no_grad():
        for i, conv in enumerate(convs):
            parts = (conv.real, conv.imag) if isinstance(conv, ComplexConv2d) else (conv,)
            for part in parts:
                part.weight.mul_(noise)
            w = parts[0].weight
            c = w.shape[-1] // 2
            if w.shape[-1] < 3:
                raise ValueError("tv_init_ needs kernel_size >= 3")
            if i == 0:
                for ch, (sign, dr, dc) in enumerate(((1, 0, 1), (-1, 0, 1), (1, 1, 0), (-1, 1, 0))):
                    w[ch, 0, c, c] -= sign
                    w[ch, 0, c + dr, c + dc] += sign
            else:
                for ch in range(4):
                    w[ch, ch, c, c] += 1.0
    return features


class LDANet(nn.Module):
    """The unrolled network of LDA Sec. 4.1 (and GD-Net / AGD-Net of Sec. 4.3.1).

    Parameters
    ----------
    phases: number of phases ``K >= 1`` (grown by :meth:`grow` during stair training).
    width, depth, kernel_size, in_channels, complex, delta: the :class:`FeatureCNN` ``q``
        (``d``, number of convolutions ``l``, 3x3 kernels, ``complex=True`` for MRI).
    algorithm: ``"lda"``, ``"gd"``, ``"agd"``, ``"meta-lda"`` (meta-LDA Algorithm 1 per phase,
        learned ``alpha_k``, ``tau_k``, sqrt smoothing) or ``"elda"`` (modified ELDA per phase,
        U-LDA Algorithm 1, learned ``alpha_k``, ``gamma_k``; ``beta_k = alpha_k gamma_k /
        (alpha_k + gamma_k)``, eq. 4.8).
    alpha, tau, theta, gamma_u: initial per-phase values (``alpha, tau, gamma_u > 0``,
        ``0 < theta < 1``).
    eps0: initial ``eps_0 > 0`` (learned).
    gamma, sigma: the reduction rule of Algorithm 1 line 7 (fixed, not learned).
    weight: the fixed ``kappa > 0``.
    features: an existing feature map to use instead of building a FeatureCNN (its
        ``config()`` then describes it).
    """

    def __init__(
        self,
        phases: int,
        width: int = 32,
        depth: int = 4,
        algorithm: str = "lda",
        *,
        in_channels: int = 1,
        kernel_size: int = 3,
        complex: bool = False,
        delta: float = 0.01,
        alpha: float = 0.5,
        tau: float = 0.5,
        theta: float = 0.2,
        gamma_u: float = 1.0,
        eps0: float = 1e-3,
        gamma: float = 0.9,
        sigma: float = 1e3,
        weight: float = 1.0,
        features: nn.Module | None = None,
    ) -> None:
        super().__init__()
        integer("phases", phases, 1, kind_error=ValueError)
        if algorithm not in NET_ALGORITHMS:
            raise ValueError(f"algorithm must be one of {sorted(NET_ALGORITHMS)}; got {algorithm!r}")
        self.algorithm = algorithm
        self.features = features if features is not None else FeatureCNN(
            in_channels, width, depth, kernel_size, complex, delta)
        alpha, tau, gamma_u, eps0, weight, sigma = (real(n, v, 0.0) for n, v in (
            ("alpha", alpha), ("tau", tau), ("gamma_u", gamma_u), ("eps0", eps0), ("weight", weight),
            ("sigma", sigma)))
        theta, gamma = real("theta", theta, 0.0, 1.0), real("gamma", gamma, 0.0, 1.0)
        self.gamma, self.sigma, self.weight = gamma, sigma, weight
        init = {"alpha": math.log(alpha), "tau": math.log(tau), "theta": math.log(theta / (1 - theta)),
                "gamma_u": math.log(gamma_u)}
        for name in NET_ALGORITHMS[algorithm]:
            self.register_parameter(f"raw_{name}", nn.Parameter(torch.full((phases,), init[name])))
        self.raw_eps0 = nn.Parameter(torch.tensor(math.log(eps0)))

    # -- parameters ----------------------------------------------------------------------
    @property
    def phases(self) -> int:
        """The number of phases ``K``."""
        return int(self.raw_alpha.shape[0])

    def phase_params(self) -> dict[str, torch.Tensor]:
        """The positive per-phase parameters, each of shape (K,): ``alpha``, ``tau`` / ``theta`` /
        ``gamma_u``."""
        out = {}
        for name in NET_ALGORITHMS[self.algorithm]:
            raw = getattr(self, f"raw_{name}")
            out[name] = torch.sigmoid(raw) if name == "theta" else raw.exp()
        return out

    @property
    def eps0(self) -> torch.Tensor:
        """The learned starting smoothing level ``eps_0 > 0`` (a 0-dim tensor)."""
        return self.raw_eps0.exp()

    def num_parameters(self) -> int:
        """Trainable scalars: the CNN's weights, the per-phase parameters and ``eps_0``."""
        return count_parameters(self, trainable_only=True)

    def grow(self, phases: int) -> None:
        """Add phases (stair training, LDA Sec. 4.1): the new phases start from the values of
        the last trained phase (warm start); the trained ones are kept."""
        integer("phases", phases, 1, kind_error=ValueError)
        K = self.phases
        if phases < K:
            raise ValueError(f"phases must be >= the current number of phases {K}; got {phases}")
        with torch.no_grad():
            for name in NET_ALGORITHMS[self.algorithm]:
                raw = getattr(self, f"raw_{name}")
                new = torch.cat([raw.detach(), raw.detach()[-1:].expand(phases - K)])
                setattr(self, f"raw_{name}", nn.Parameter(new))

    # -- the solver the phases run -------------------------------------------------------
    def phase_solver(self):
        """The solver whose ``iterate`` is every phase, never stopping early (tiny ``eps_tol``):
        LDA / GD / AGD with fixed steps (``linesearch=False``); meta-LDA and modified ELDA
        with their own safeguard search (the phase is one iteration of their Algorithm 1),
        their other constants at the solver's defaults."""
        cls = ALGORITHMS[self.algorithm]
        extra = {} if self.algorithm in _SEARCHING else {"linesearch": False}
        return cls(eps0=float(self.eps0.detach()), gamma=self.gamma, sigma=self.sigma, eps_tol=_TINY_TOL,
                   max_iter=10**9, **extra)

    def problem(self, fidelity, weight: float | torch.Tensor | None = None) -> Problem:
        """``Problem(fidelity, self.features, weight)``; ``weight`` defaults to the fixed
        ``kappa``; a (B,) tensor gives every sample its own weight and may carry gradients
        (meta-LDA eq. 12: ``kappa = sigmoid(omega_i)`` for the task of each sample)."""
        return Problem(fidelity, self.features, weight=self.weight if weight is None else weight)

    def forward(self, problem: Problem, x0: torch.Tensor, phases: int | None = None,
                callback=None) -> tuple[torch.Tensor, State]:
        """Run ``phases`` (default all ``K``) phases from ``x0``; returns ``(x_K, state)``.

        Differentiable whenever gradients are enabled.  ``callback(k, state, record)`` sees
        every phase (``record``: the trace fields of :mod:`lda_opt.trace`).
        """
        if problem.features is not self.features:
            raise ValueError("problem.features must be this network's feature map (use net.problem(fidelity))")
        problem.check_input(x0)
        K = self.phases if phases is None else integer("phases", phases, 1, kind_error=ValueError)
        if K > self.phases:
            raise ValueError(f"phases must be <= {self.phases}; got {K}")
        solver = self.phase_solver()
        diff = torch.is_grad_enabled()
        params = self.phase_params()
        state = solver.init_state(problem, x0, differentiable=diff, overrides=PhaseParams(eps0=self.eps0))
        for k in range(K):
            over = PhaseParams(**{name: v[k] for name, v in params.items()})
            state, rec = solver.iterate(problem, state, overrides=over, differentiable=diff)
            if callback is not None:
                callback(k, state, rec)
        return state.point.x, state

    @torch.no_grad()
    def reconstruct(self, problem: Problem, x0: torch.Tensor, phases: int | None = None) -> tuple[torch.Tensor, State]:
        """:meth:`forward` without gradients (inference)."""
        return self.forward(problem, x0, phases)

    # -- after phase K: Algorithm 1 to tolerance (LDA Sec. 4.3.3, Fig. 7) -----------------
    def continuation_solver(self, eps: float, *, eps_tol: float = 1.5e-5, alpha: float | None = None,
                            c: float = 0.35, shrink: float = 0.5, max_iter: int = 100_000,
                            max_linesearch: int = 60):
        """The solver that continues Algorithm 1 after phase ``K`` from smoothing level ``eps``
        (``eps_K``): LDA (GD for ``algorithm="gd"``) with backtracking (Sec. 4.3.3: shrink 0.5,
        ``phi_eps(v) - phi_eps(x) <= -c ||v - x||^2``, ``c = 0.35``), started at ``alpha``
        (default: the last learned ``alpha_K``), ``tau_k = alpha_k``, and the network's ``gamma``,
        ``sigma``.  AGD-Net continues with AGD (backtracking).  Meta-LDA and ELDA nets continue
        with their own Algorithm 1 (its safeguard search; ``c`` and ``shrink`` do not apply)
        from the last learned ``alpha_K``, ``tau_K`` / ``gamma_K``."""
        learned = {k: float(v[-1].detach()) for k, v in self.phase_params().items()}
        if alpha is None:
            alpha = learned["alpha"]
        cls = ALGORITHMS[self.algorithm]
        if self.algorithm in _SEARCHING:
            learned.pop("alpha")
            return cls(eps0=float(eps), gamma=self.gamma, sigma=self.sigma, eps_tol=eps_tol, alpha=alpha,
                       max_iter=max_iter, max_linesearch=max_linesearch, **learned)
        return cls(eps0=float(eps), gamma=self.gamma, sigma=self.sigma, eps_tol=eps_tol, alpha=alpha,
                   c=c, shrink=shrink, max_iter=max_iter, max_linesearch=max_linesearch)

    # -- (de)serialization -----------------------------------------------------------------
    def metadata(self) -> dict:
        """The JSON-able description of everything but the CNN weights (see
        :mod:`lda_opt.learning`): algorithm, phases, weight, eps0, per-phase values, solver."""
        params = {k: [float(t) for t in v.detach().cpu().to(torch.float64)] for k, v in self.phase_params().items()}
        return {
            "schema": 1,
            "kind": "lda-net",
            "algorithm": self.algorithm,
            "phases": self.phases,
            "weight": self.weight,
            "eps0": float(self.eps0.detach().to(torch.float64)),
            **params,
            "raw": {k: [float(t) for t in getattr(self, f"raw_{k}").detach().cpu().to(torch.float64)]
                    for k in NET_ALGORITHMS[self.algorithm]} | {"eps0": float(self.raw_eps0.detach())},
            "solver": {"gamma": self.gamma, "sigma": self.sigma, "smoothing": self.phase_solver().smoothing.name,
                       "linesearch": self.algorithm in _SEARCHING},
            "dtype": str(self.raw_eps0.dtype).removeprefix("torch."),
        }

    @classmethod
    def from_parts(cls, features: nn.Module, metadata: dict) -> LDANet:
        """Rebuild a network from its feature map and :meth:`metadata` (bit-exact: the raw
        parameters are stored)."""
        def field(where: dict, key: str, convert, default=None, label: str | None = None):
            label = label or key
            if not isinstance(where, dict) or (key not in where and default is None):
                raise ValueError(f"checkpoint metadata does not describe an LDA-Net: missing {label!r}")
            value = where.get(key, default)
            try:
                out = convert(value)
            except (TypeError, ValueError, OverflowError, RuntimeError) as exc:
                raise ValueError(f"checkpoint metadata {label!r}: {value!r} is not valid ({exc})") from exc
            if isinstance(out, torch.Tensor) and not bool(torch.isfinite(out).all()):
                raise ValueError(f"checkpoint metadata {label!r} contains NaN or Inf")
            return out

        algorithm = field(metadata, "algorithm", str)
        if algorithm not in NET_ALGORITHMS:
            raise ValueError(f"checkpoint metadata 'algorithm' must be one of {sorted(NET_ALGORITHMS)}; got {algorithm!r}")
        K = field(metadata, "phases", int)
        raw = field(metadata, "raw", dict)
        solver = field(metadata, "solver", dict, {})
        net = cls(K, algorithm=algorithm, features=features, weight=field(metadata, "weight", float, 1.0),
                  gamma=field(solver, "gamma", float, 0.9, "solver.gamma"),
                  sigma=field(solver, "sigma", float, 1e3, "solver.sigma"))
        dtype = next(features.parameters()).dtype
        net = net.to(dtype)
        as_tensor = lambda v: torch.tensor(v, dtype=torch.float64)
        with torch.no_grad():
            for name in NET_ALGORITHMS[algorithm]:
                vals = field(raw, name, as_tensor, label=f"raw.{name}")
                if vals.shape != (K,):
                    raise ValueError(f"metadata raw[{name!r}] must have {K} entries; got {vals.numel()}")
                getattr(net, f"raw_{name}").copy_(vals.to(dtype))
            eps0 = field(raw, "eps0", lambda v: as_tensor(float(v)), label="raw.eps0")
            net.raw_eps0.copy_(eps0.to(dtype))
        return net
