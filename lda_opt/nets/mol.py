r"""The MOL network ``H_theta``: an image-to-image CNN with a controlled Lipschitz constant.

MOL (Pramanik, Zimmerman, Jacob; supplement eq. 1) iterates ``T(x) = R((1-a) x + a H(x))``;
``T`` is a contraction when ``Lip(H) = L_H < 1`` (``theory/mol.md``), which makes
``F = I - H`` ``(1 - L_H)``-strongly monotone.  :class:`MOLCNN` is that ``H``: the
:class:`~lda_opt.nets.FeatureCNN` body (``depth - 1`` convolutions, each followed by the
smoothed ReLU) and a linear convolution back to the image channels,

.. math:: H(x) = W_L\, a(W_{L-1} \cdots a(W_1 x)),

real or complex (MRI).  Its Lipschitz constant is controlled in one of the two ways of the
supplement (Sec. II):

* **MOL-LR** (a penalty on an *estimate*): :func:`lipschitz_estimate` runs warm-started
  power iteration on ``J_H(x)^T J_H(x)`` (JVP via a double VJP) at training images and
  returns ``||J_H(x) v||`` for the top singular vector ``v``, differentiable in the weights;
  the trainer penalizes it (``lda_opt.learning.mol``).
* **MOL-SN** (a normalisation, certified): :func:`spectral_project_` rescales every
  convolution so that its certified operator norm (:func:`lda_opt.bounds.conv_operator_norm`)
  is at most ``l^(1/L)``, hence ``L_H <= prod_l ||W_l|| <= l`` (the activation is
  1-Lipschitz).  :func:`certified_lipschitz` is that certified bound for any weights.
"""

from __future__ import annotations

import torch
from torch import nn

from .checkpoint import register_architecture
from .cnn import FeatureCNN, _check_bool, _check_input, _make_conv, xavier_init_
from .conv import _check_int

__all__ = ["MOLCNN", "certified_lipschitz", "identity_init_", "lipschitz_estimate", "spectral_project_"]


class MOLCNN(nn.Module):
    """``H_theta`` of MOL.  The CNN ``G``: ``depth`` convolutions (``width`` channels inside, no
    bias, ``kernel_size`` x ``kernel_size``, size-preserving zero padding), the smoothed ReLU
    after all but the last (:class:`~lda_opt.nets.FeatureCNN` body + a linear head), mapping
    (B, in_channels, H, W) to the same shape; ``depth >= 2``.  ``residual=False``:
    ``H = G`` (MOL-SN bounds ``Lip(G)``); ``residual=True``: ``H = I - F_theta`` with
    ``F_theta = G`` (the supplement's form: ``F_theta`` is the CNN, the constraint is on
    ``Lip(I - F_theta)``, estimated by :func:`lipschitz_estimate`; the certified bound is
    then only ``1 + Lip(G)``).

    Attributes ``convs`` (all convolutions of ``G`` in order), ``act`` and ``activate_last =
    False`` let :func:`lda_opt.bounds.cnn_constants` bound ``G``.  Parameter count
    ``k^2 (2 in_channels width + (depth - 2) width^2)``, doubled when complex.
    """

    activate_last = False

    def __init__(self, in_channels: int = 1, width: int = 16, depth: int = 4, kernel_size: int = 3,
                 complex: bool = False, delta: float = 0.01, residual: bool = False) -> None:
        super().__init__()
        _check_int("depth", depth, 2)
        self.residual = _check_bool("residual", residual)
        self.body = FeatureCNN(in_channels, width, depth - 1, kernel_size, complex, delta)
        self.head = _make_conv(width, in_channels, kernel_size, _check_bool("complex", complex))
        xavier_init_(self.head)  # like the body (global RNG; seeded callers call xavier_init_ again)

    @property
    def in_channels(self) -> int:
        return self.body.in_channels

    @property
    def complex(self) -> bool:
        return self.body.complex

    @property
    def convs(self) -> list[nn.Module]:
        return [*self.body.convs, self.head]

    @property
    def act(self) -> nn.Module:
        return self.body.act

    def config(self) -> dict:
        """Constructor keyword arguments (used by :func:`lda_opt.nets.save_checkpoint`)."""
        c = self.body.config()
        c["depth"] = self.body.depth + 1
        c["residual"] = self.residual
        return c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.in_channels, self.complex, "MOLCNN")
        out = self.head(self.body(x))
        return x - out if self.residual else out


register_architecture(MOLCNN)


@torch.no_grad()
def identity_init_(net: MOLCNN, lipschitz: float, noise: float, generator: torch.Generator | None = None) -> MOLCNN:
    r"""Start ``H`` near ``lipschitz * I``: a Xavier draw times ``noise`` plus the exact
    pass-through ``s (a(x) - a(-x)) = s x`` of the smoothed ReLU (``a(u) - a(-u) = u`` for
    every ``u``, LDA eq. 33): layer 1 puts ``+x`` and ``-x`` on channels ``2c, 2c+1``, the
    middle layers pass them on (``a(a(u)) = a(u)`` up to ``delta / 4``), the head returns
    ``s`` times their difference, with ``s = lipschitz`` (``H`` is the CNN) or ``1 -
    lipschitz`` (``residual``: ``H = I - F``).  Needs ``width >= 2 in_channels``.  Real
    kernels only (the imaginary kernels of complex convolutions get the noise only).
    Returns ``net``."""
    if not (isinstance(lipschitz, (int, float)) and 0 <= lipschitz <= 1):
        raise ValueError(f"lipschitz must be in [0, 1]; got {lipschitz!r}")
    if not (isinstance(noise, (int, float)) and noise >= 0):
        raise ValueError(f"noise must be >= 0; got {noise!r}")
    c_in, width = net.in_channels, net.body.width
    if width < 2 * c_in:
        raise ValueError(f"identity_init_ needs width >= 2 * in_channels = {2 * c_in}; got {width}")
    xavier_init_(net, generator=generator)
    s = (1.0 - lipschitz) if net.residual else lipschitz
    convs = net.convs
    k = net.body.kernel_size // 2
    for conv in convs:
        for w in _weights(conv):
            w.mul_(noise)
    real_w = [(conv.real.weight if hasattr(conv, "real") else conv.weight) for conv in convs]
    for c in range(c_in):
        real_w[0][2 * c, c, k, k] += 1.0
        real_w[0][2 * c + 1, c, k, k] -= 1.0
        for w in real_w[1:-1]:
            w[2 * c, 2 * c, k, k] += 1.0
            w[2 * c + 1, 2 * c + 1, k, k] += 1.0
        real_w[-1][c, 2 * c, k, k] += s
        real_w[-1][c, 2 * c + 1, k, k] -= s
    return net


def _weights(conv: nn.Module) -> list[torch.Tensor]:
    return [conv.real.weight, conv.imag.weight] if hasattr(conv, "real") else [conv.weight]


def certified_lipschitz(net: MOLCNN, image_hw: tuple[int, int]) -> float:
    """A **certified upper bound** of ``Lip(H)`` on ``image_hw`` images: the product ``M`` of
    the certified convolution norms of ``G`` (:func:`lda_opt.bounds.cnn_constants`, the last
    layer linear; the smoothed ReLU is 1-Lipschitz), plus 1 when ``residual``.  Catalogue: ``theory/mol.md``."""
    from ..bounds import cnn_constants

    lip_g = cnn_constants(net, image_hw)[0]
    return 1.0 + lip_g if net.residual else lip_g


@torch.no_grad()
def spectral_project_(net: MOLCNN, bound: float, image_hw: tuple[int, int]) -> float:
    """MOL-SN as a projection: scale every convolution ``W_l`` of ``G`` whose certified norm
    exceeds ``bound^(1/L)`` down to it, so that ``Lip(G) <= bound`` (certified; ``= Lip(H)``
    unless ``residual``).  Returns the certified ``Lip(G)`` after the projection.  ``bound``
    in (0, 1]."""
    from ..bounds import _conv_layer

    if not (isinstance(bound, (int, float)) and 0 < bound <= 1):
        raise ValueError(f"bound must be in (0, 1]; got {bound!r}")
    convs = net.convs
    per_layer = bound ** (1.0 / len(convs))
    hw = tuple(image_hw)
    for i, conv in enumerate(convs):
        nrm, hw = _conv_layer(conv, hw, i)
        if nrm > per_layer:
            for w in _weights(conv):
                w.mul_(per_layer / nrm)
    from ..bounds import cnn_constants

    return cnn_constants(net, image_hw)[0]


def lipschitz_estimate(net: nn.Module, x: torch.Tensor, v: torch.Tensor | None = None, iters: int = 5,
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""MOL-LR's estimate of ``Lip(H)``: power iteration on ``J_H(x)^T J_H(x)`` (real inner
    product, complex images as real vectors), jointly over the batch ``x``, warm-started at
    ``v`` (default: a Gaussian draw from ``generator``).

    Each step ``v <- J^T J v / ||J^T J v||`` uses a JVP (the double-VJP trick) and a VJP;
    the returned estimate ``||J_H(x) v||`` (a 0-dim tensor) is differentiable in the
    weights (``v`` is detached), with the next warm start ``v``.  An *estimate from below*
    of ``||J_H(x)||`` (and so of ``Lip(H)``), not a certified bound
    (:func:`certified_lipschitz` is one).
    """
    n_iters = _check_int("iters", iters, 0)
    if v is None:
        v = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    v = v.detach() / torch.linalg.vector_norm(v)
    xg = x.detach().requires_grad_(True)

    def jvp(vec: torch.Tensor, create_graph: bool) -> torch.Tensor:
        out = net(xg)
        u = torch.zeros_like(out, requires_grad=True)
        (g,) = torch.autograd.grad(out, xg, u, create_graph=True)
        (jv,) = torch.autograd.grad(g, u, vec, create_graph=create_graph)
        return jv, out

    for _ in range(n_iters):
        jv, out = jvp(v, False)
        (jtjv,) = torch.autograd.grad(out, xg, jv.detach())
        nrm = torch.linalg.vector_norm(jtjv)
        if float(nrm) == 0.0:
            break
        v = (jtjv / nrm).detach()
    jv, _ = jvp(v, True)
    return torch.linalg.vector_norm(jv), v
