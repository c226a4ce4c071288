"""Ready-made imaging instances: TV denoising, block compressed sensing and MRI.

:func:`make_instance` builds, from the offline data of :mod:`lda_opt.data`, everything a run
needs: the :class:`~lda_opt.Problem`, the initial guess ``x0`` (the paper's), the ground
truth, and the functions that turn a batch of solutions back into an image, for the CLI
(``lda-opt solve``) and :mod:`lda_opt.experiments.compare`.  The forward models, their noise
and the starting points are the tasks of :mod:`lda_opt.tasks`; this module adds the
bundled images, the regularizer and the weight.

=============  ======================================================================  =========================
kind           forward model and data                                                  x0
=============  ======================================================================  =========================
``tv-denoise`` ``A = I``; ``y = x + noise * n``, n standard Gaussian                   ``y``
``cs``         33 x 33 block CS (LDA Sec. 4.2.1): every block is one sample of the     ``Q b`` (LDA Sec. 4.2.1)
               batch, ``b = Phi vec(block) + noise * n``, Phi Gaussian with
               orthonormal rows at ``ratio``; the image is zero-padded to whole
               blocks and cropped back
``mri``        ``A = P F`` (orthonormal FFT, :class:`~lda_opt.operators.MRI`),         ``A^H y`` (zero filling)
               radial or Cartesian mask at ``ratio``; ``y = A x + noise * P n``,
               n standard complex Gaussian (``E|n_i|^2 = 1``)
=============  ======================================================================  =========================

Every random draw (noise, mask, sensing matrix) comes from ``seed``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from . import features as F
from ._validate import MAX_SIZE, choice, integer, real
from .operators import MRI, Identity, Matrix
from .problem import LeastSquares, Problem
from .tasks import BlockCSTask, DenoiseTask, MRITask

__all__ = [
    "KINDS",
    "MASKS",
    "REGULARIZERS",
    "Instance",
    "default_weight",
    "load_truth",
    "make_instance",
]

KINDS = ("tv-denoise", "cs", "mri")
MASKS = ("radial", "cartesian")
REGULARIZERS = ("tv", "l1")

#: kappa for the hand-crafted regularizers, chosen on a training image (see
#: ``lda_opt.commands.solve`` docs); a learned checkpoint brings its own weight.
_DEFAULT_WEIGHT = {"tv-denoise": 0.08, "cs": 0.02, "mri": 0.003}
_DEFAULT_SIZE = {"tv-denoise": 64, "cs": 99, "mri": 64}
_DEFAULT_IMAGE = {"tv-denoise": "camera", "cs": "camera", "mri": "shepp-logan"}
_DEFAULT_NOISE = {"tv-denoise": 0.1, "cs": 0.0, "mri": 0.0}
_DEFAULT_RATIO = {"cs": 0.25, "mri": 0.2}


def default_weight(kind: str, regularizer: str = "tv") -> float:
    """The default kappa of a hand-crafted regularizer on instance ``kind``."""
    choice("kind", kind, KINDS)
    choice("regularizer", regularizer, REGULARIZERS)
    return _DEFAULT_WEIGHT[kind]


@dataclass
class Instance:
    """One imaging instance.

    ``truth`` is the ground-truth image (1, 1, H, W); ``to_image(x)`` maps a solution batch
    (shaped like ``x0``) to an image shaped like ``truth``.  ``meta`` holds what produced it
    (JSON-able).
    """

    kind: str
    problem: Problem
    x0: torch.Tensor
    truth: torch.Tensor
    to_image: Callable[[torch.Tensor], torch.Tensor]
    meta: dict = field(default_factory=dict)


def load_truth(kind: str, image: str | None, size, dtype: torch.dtype) -> torch.Tensor:
    """The ground truth (1, 1, size, size), or (1, 1, H, W) for ``size = (H, W)``: ``image``
    is a bundled name, a PNG/NPY path, or ``"shepp-logan"``; real ``dtype`` (the MRI instance
    makes it complex)."""
    from .data import load_image, shepp_logan

    name = _DEFAULT_IMAGE[kind] if image is None else image
    if name == "shepp-logan":
        return shepp_logan(size, dtype=dtype)
    try:
        return load_image(name, size=size, dtype=dtype)
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise FileNotFoundError(f"image: {exc}") from exc
    except ValueError as exc:  # an unknown name, or a file of the wrong content
        raise ValueError(f"image {str(name)!r}: {exc}") from exc
    except Exception as exc:  # the image decoders raise OSError, EOFError, struct.error,
        # SyntaxError, ... on a damaged file: all of them mean "cannot be read"
        raise ValueError(f"image {str(name)!r} cannot be read: {type(exc).__name__}: {exc}") from exc


def _hw(size) -> tuple[int, int]:
    """``(H, W)`` of a validated ``size`` (an int n: n x n)."""
    return tuple(size) if isinstance(size, tuple) else (size, size)


def _features(regularizer: str) -> nn.Module:
    return F.FiniteDifference() if regularizer == "tv" else F.Identity()


def _checked_numbers(kind: str, size, ratio, noise, weight, seed, sensing_seed) -> tuple:
    """Validate :func:`make_instance`'s numbers and fill in the per-kind defaults; returns
    ``(size, ratio, noise, weight, seed, sensing_seed)`` (``size`` an int, or a pair (H, W)
    of ints when one was given)."""
    size = _DEFAULT_SIZE[kind] if size is None else size
    if isinstance(size, (tuple, list)):
        if len(size) != 2:
            raise ValueError(f"size must be an int or a pair (H, W); got {size!r}")
        size = tuple(integer(f"size[{i}]", s, 4, MAX_SIZE, kind_error=ValueError) for i, s in enumerate(size))
    else:
        size = integer("size", size, 4, MAX_SIZE, kind_error=ValueError)
    noise = real("noise", _DEFAULT_NOISE[kind] if noise is None else noise, 0, lo_open=False)
    if kind != "tv-denoise":
        ratio = real("ratio", _DEFAULT_RATIO[kind] if ratio is None else ratio, 0, 1, hi_open=False)
    elif ratio is not None:
        raise ValueError("ratio applies to --problem cs and mri only")
    if weight is None:
        weight = _DEFAULT_WEIGHT[kind]
    real("weight", weight, 0, kind_error=ValueError)
    seed = integer("seed", seed, 0, kind_error=ValueError)
    sensing_seed = seed if sensing_seed is None else sensing_seed
    return size, ratio, noise, weight, seed, sensing_seed


def _tv_instance(truth: torch.Tensor, q, weight, noise, seed: int, dtype: torch.dtype, device: torch.device,
                 meta: dict) -> Instance:
    """TV denoising: ``y = truth + noise`` (Gaussian, seeded by ``seed``), ``x0 = y``."""
    y = DenoiseTask(noise=noise, noise_seed=seed).measure(truth).y.to(device=device, dtype=dtype)
    problem = Problem(LeastSquares(Identity(), y), q, weight)
    return Instance("tv-denoise", problem, y.clone(), truth.to(device=device, dtype=dtype),
                    lambda x: x, meta)


def _cs_instance(truth: torch.Tensor, q, weight, size: int, ratio, noise, seed: int, sensing_seed: int, task,
                 dtype: torch.dtype, device: torch.device, meta: dict) -> Instance:
    """Block compressed sensing with ``task`` (default: a :class:`~lda_opt.tasks.BlockCSTask`
    of ``ratio`` drawn with ``sensing_seed``)."""
    from .data import block_cs as bcs

    if task is None:
        task = BlockCSTask(ratio, matrix_seed=sensing_seed)
    # b = A x + noise (seed ``seed``, a checkpoint's task too), x0 = Q b (LDA Sec. 4.2.1);
    # meta["task"] records the sensing model, meta["noise"] and meta["seed"] the noise
    m = dataclasses.replace(task, noise=noise, noise_seed=seed).measure(truth)
    A64 = task.matrices(torch.float64)[0]
    A = Matrix(A64.to(device=device, dtype=dtype), image_shape=(1, bcs.BLOCK_SIZE, bcs.BLOCK_SIZE))
    problem = Problem(LeastSquares(A, m.y.to(device=device, dtype=dtype)), q, weight)
    meta.update(ratio=task.ratio, sensing_seed=task.matrix_seed, blocks=int(m.y.shape[0]),
                measurements=int(A64.shape[0]), task=task.metadata())
    return Instance("cs", problem, m.x0.to(device=device, dtype=dtype),
                    truth.to(device=device, dtype=dtype),
                    lambda x: bcs.blocks_to_image(x, *_hw(size)), meta)


def _mri_instance(truth: torch.Tensor, q, weight, size: int, ratio, mask: str, noise, seed: int,
                  sensing_seed: int, task, dtype: torch.dtype, device: torch.device, meta: dict) -> Instance:
    """MRI with ``task`` (default: an :class:`~lda_opt.tasks.MRITask` of ``ratio`` and
    ``mask`` drawn with ``sensing_seed``; a checkpoint's task must match ``size``), in the
    complex dtype matching ``dtype``."""
    if task is None:
        task = MRITask(ratio, mask=mask, mask_seed=sensing_seed, shape=_hw(size), noise=noise,
                       noise_seed=seed)
    elif tuple(task.shape) != _hw(size):
        raise ValueError(f"size must be {task.shape[0]} for this checkpoint's MRI mask "
                         f"(trained on {task.shape[0]} x {task.shape[1]}); got {size} "
                         "(lda_opt.tasks.task_at_shape rebuilds the mask at another size)")
    m = task.measure(truth.to(torch.complex128))
    cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    A = MRI(m.operator.mask.to(device=device, dtype=dtype))
    y = m.y.to(device=device, dtype=cdtype)
    problem = Problem(LeastSquares(A, y), q, weight)
    meta.update(ratio=task.ratio, mask=task.mask, sensing_seed=task.mask_seed, noise=task.noise,
                sampling_ratio=float(m.operator.mask.double().mean()), task=task.metadata())
    return Instance("mri", problem, A.H(y), m.truth.to(device=device, dtype=cdtype), lambda x: x, meta)


def make_instance(kind: str, *, image: str | None = None, size: int | None = None,
                  ratio: float | None = None, mask: str = "radial", noise: float | None = None,
                  regularizer: str = "tv", weight: float | None = None,
                  features: nn.Module | None = None, seed: int = 0,
                  dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu",
                  sensing_seed: int | None = None, task=None) -> Instance:
    """Build the instance ``kind`` (see the module docstring).

    ``features`` (a learned feature map) replaces ``regularizer``; ``weight`` defaults to
    :func:`default_weight`; ``size``, ``image``, ``noise`` and ``ratio`` default per kind
    (64 / camera / 0.1 for TV denoising; 99 / camera / 0 / 0.25 for CS; 64 / Shepp-Logan /
    0 / 0.2 for MRI); ``size`` is an int n (n x n) or a pair (H, W).  ``dtype`` is the real
    dtype (MRI runs in the matching complex dtype).
    ``sensing_seed`` (default ``seed``) draws the CS matrix or the MRI mask.  The sensing
    model is :class:`~lda_opt.tasks.BlockCSTask` / :class:`~lda_opt.tasks.MRITask`
    (the ones LDA-Net trains on; TV denoising: :class:`~lda_opt.tasks.DenoiseTask`);
    ``task`` (e.g. from a checkpoint's metadata) replaces the one built from ``ratio``,
    ``mask`` and ``sensing_seed``.  The noise models (:mod:`lda_opt.tasks.noise`), seeded by
    ``seed``: ``"gaussian"`` for TV denoising and CS, ``"kspace"`` (``noise * P F n`` with
    ``n`` standard complex Gaussian) for MRI; an MRI checkpoint's task brings its own noise.
    """
    choice("problem", kind, KINDS)
    choice("mask", mask, MASKS)
    choice("regularizer", regularizer, REGULARIZERS)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be float32 or float64; got {dtype}")
    size, ratio, noise, weight, seed, sensing_seed = _checked_numbers(kind, size, ratio, noise, weight, seed,
                                                                       sensing_seed)
    device = torch.device(device)
    q = _features(regularizer) if features is None else features
    truth = load_truth(kind, image, size, torch.float64)
    meta = {"kind": kind, "image": image or _DEFAULT_IMAGE[kind], "size": size, "noise": noise,
            "ratio": ratio, "mask": mask if kind == "mri" else None, "seed": seed,
            "sensing_seed": sensing_seed if kind != "tv-denoise" else None,
            "regularizer": regularizer if features is None else "learned", "weight": float(weight)}

    if task is not None and task.kind != {"cs": "block-cs", "mri": "mri"}.get(kind):
        raise ValueError(f"the checkpoint's task is {task.kind!r}; it cannot serve --problem {kind}")
    if kind == "tv-denoise":
        return _tv_instance(truth, q, weight, noise, seed, dtype, device, meta)
    if kind == "cs":
        return _cs_instance(truth, q, weight, size, ratio, noise, seed, sensing_seed, task, dtype, device, meta)
    return _mri_instance(truth, q, weight, size, ratio, mask, noise, seed, sensing_seed, task, dtype, device, meta)
