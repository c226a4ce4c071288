r"""U-LDA transfer learning (U-LDA Sec. 3 and 5.1): a universal feature extractor g, one small
adapter per domain, the lower level solved by unrolled modified-ELDA phases.

The regularizer of domain ``i`` is ``r_i(x) = ||h_i(g(x))||_{2,1}`` (eq. 4.2), ``q = h o g``
(:class:`~lda_opt.nets.Composed`); the network is :class:`~lda_opt.learning.LDANet` with
``algorithm = "elda"`` (U-LDA Algorithm 1 per phase, eqs. 4.8-4.11, Sec. 4.3) whose feature
map is an :class:`AdapterBank` (Step 1) or ``Composed(g, h^)`` (Step 2).

* **Initialisation** (Sec. 5.1, ``transfer.init = "average"``): a plain LDA-Net ``q = g_i`` is
  trained on each source set ``D_i`` alone (the standard training loop, one stage of
  ``transfer.init_epochs`` epochs, ``out/init_<name>/``); Step 1 starts g at the parameter
  mean ``(1/I) sum_i g_i`` (:func:`average_parameters`).  Every ``g_i`` starts from the same
  seeded Xavier draw (see ``theory/transfer.md``).
* **Step 1** (eq. 3.2, ``train.mode = "transfer_step1"``): Adam over g, every ``h_i`` and the
  per-phase step sizes on the loss (3.2a)
  ``(1/IM) sum_i sum_m ||x_m^(i) - \hat x_m^(i)||^2 - alpha S(x_m^(i), \hat x_m^(i))``.
  Every Adam step takes one batch of every source domain, the domain's adapter active, and
  accumulates the gradients of ``(1/I) * batch mean`` (:func:`step1_gradients`): the gradient
  of the minibatch estimate of (3.2a).
* **Step 2** (eq. 3.3, ``train.mode = "transfer_step2"``): g and the phase parameters of the
  Step-1 checkpoint ``transfer.g`` are frozen (``requires_grad_(False)``, not in the
  optimizer); Adam trains only a new adapter ``h^`` on the ``N`` samples of
  ``transfer.target`` with the loss (3.3a).  The adapter checkpoint stores the path and SHA-256
  of g's file and is refused against any other g (:func:`load_transfer_net`).

``transfer.step2 = "finetune"`` (g, h^ and the phases all trained from the Step-1 values)
and ``"scratch"`` (a fresh ``h o g`` trained on the N samples alone) are the baselines of the
benchmark, not U-LDA.

Files of a run directory (all written atomically, per epoch; ``state.safetensors`` resumes
exactly as in :mod:`lda_opt.learning.train`): Step 1 ``g.safetensors`` (g with the network
metadata: phases, learned step sizes), ``adapter_<name>.safetensors`` per source (referencing
``g.safetensors``), ``init_<name>/`` (the initialisation runs); Step 2
``adapter.safetensors`` (h^ referencing ``transfer.g``) and ``model.safetensors``
(``Composed(g, h^)`` with the standard LDA-Net metadata: ``lda-opt solve --checkpoint`` reads
it); both ``config.json``, ``log.json``, ``curves.png``, ``state.safetensors``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._atomic import fault_point, remove_stale_temps
from .._validate import integer, real
from ..data import TRAIN_IMAGES, load_images, random_ellipses
from ..data.images import test_images as _test_image_names
from ..data.mri import apply_phase
from ..metrics import psnr
from ..nets import (
    Adapter,
    Composed,
    FeatureCNN,
    count_parameters,
    load_checkpoint,
    save_checkpoint,
    xavier_init_,
)
from ..nets.checkpoint import checkpoint_reference, config_path, load_composed
from ..tasks import Measurement, MRITask
from .config import TrainConfig
from .datasets import MRI_TEST_SEED, VAL_OFFSET, TrainData, _crops
from .losses import ulda_loss
from .net import LDANet, tv_init_
from .train import (
    CONFIG_FILE,
    CURVES_FILE,
    LOG_FILE,
    MODEL_FILE,
    STATE_FILE,
    _load_state,
    _plot,
    _progress_bar,
    _restore,
    _save_state,
    _write_json,
    checkpoint_metadata,
    evaluate,
    train,
)

__all__ = ["IMAGE_FAMILIES", "STEP2_MODES", "AdapterBank", "DomainConfig", "TransferConfig", "average_parameters",
           "domain_measurement", "load_transfer_net", "step1_gradients", "train_transfer"]

#: the image families a domain can draw its ground truths from (all offline): random-ellipse
#: phantoms, crops of the natural training-split images (test: the test split), and the face
#: photographs of scikit-image's ``lfw_subset`` (100 faces: 60 train, 10 val, 30 test)
IMAGE_FAMILIES = ("phantoms", "natural", "faces")
#: ``transfer.step2``: U-LDA (only h^ trained) and the two baselines of the benchmark
STEP2_MODES = ("adapter", "finetune", "scratch")
G_FILE = "g.safetensors"
ADAPTER_FILE = "adapter.safetensors"
_FACES_SPLIT = {"train": (0, 60), "val": (60, 70), "test": (70, 100)}
#: validation crops of the natural family come from these training-split images only
_NATURAL_VAL = ("rocket", "text")


def _where(exc: ValueError, where: str) -> ValueError:
    return ValueError(str(exc).replace("domain.", f"{where}.", 1))


@dataclass(kw_only=True)
class DomainConfig:
    """One data set ``D_i`` (source) or ``\\hat D_j`` (target): MRI with its own mask.

    ``name``: a label (letters, digits, ``-_``; file names ``adapter_<name>``).  ``images``:
    one of :data:`IMAGE_FAMILIES`.  ``mask``, ``ratio``, ``mask_seed``: the k-space mask (the
    image shape, noise and dtype are the config's ``task`` / ``train``).  ``train`` (``M`` or
    ``N``), ``val``: sample counts; ``seed``: the images drawn.
    """

    name: str = "cartesian_20"
    images: str = "phantoms"
    mask: str = "cartesian"
    ratio: float = 0.2
    mask_seed: int = 0
    train: int = 64
    val: int = 8
    seed: int = 1

    def __post_init__(self) -> None:
        if (not isinstance(self.name, str) or not self.name
                or not all(c.isalnum() or c in "-_" for c in self.name)):
            raise ValueError(f"domain.name must be a non-empty string of letters, digits, '-', '_'; got {self.name!r}")
        if self.images not in IMAGE_FAMILIES:
            raise ValueError(f"domain.images must be one of {list(IMAGE_FAMILIES)}; got {self.images!r}")
        real("domain.ratio", self.ratio, 0.0, 1.0, hi_open=False, kind_error=ValueError)
        for n, lo in (("mask_seed", 0), ("train", 1), ("val", 1), ("seed", 0)):
            integer(f"domain.{n}", getattr(self, n), lo, kind_error=ValueError)
        if self.images == "faces":
            for split in ("train", "val"):
                lo, hi = _FACES_SPLIT[split]
                if getattr(self, split) > hi - lo:
                    raise ValueError(f"domain.{split} must be <= {hi - lo} for images = 'faces' (lfw_subset: "
                                     f"{hi - lo} {split} faces); got {getattr(self, split)}")
        try:
            MRITask(self.ratio, mask=self.mask, mask_seed=self.mask_seed, shape=(64, 64))
        except ValueError as exc:
            raise ValueError(f"domain.mask / domain.ratio: {exc}") from None

    def task(self, config: TrainConfig) -> MRITask:
        """The domain's MRI task on ``config.task.shape`` (its noise settings too)."""
        t = config.task
        return MRITask(self.ratio, mask=self.mask, mask_seed=self.mask_seed, shape=tuple(t.shape), noise=t.noise,
                       noise_seed=t.noise_seed)


def _domain(value: Any, where: str) -> DomainConfig:
    if isinstance(value, DomainConfig):
        return value
    from .config import _from_dict

    try:
        return _from_dict(DomainConfig, value, where)
    except ValueError as exc:
        raise _where(exc, where) from None


def _default_sources() -> tuple[DomainConfig, ...]:
    return tuple(DomainConfig(name=f"cartesian_{p}", ratio=p / 100) for p in (10, 20, 30))


@dataclass(kw_only=True)
class TransferConfig:
    """The ``transfer`` section of a config (``train.mode = "transfer_step1"`` or
    ``"transfer_step2"``).

    ``sources``: the source sets ``D_1..D_I`` of Step 1 (equal ``train`` counts: ``|D_i| = M``,
    Sec. 3); ``target``: the small set ``\\hat D`` of Step 2.  ``alpha``: the SSIM weight of
    (3.2a)/(3.3a) (paper 0.01, Table 5).  ``init``: ``"average"`` (Sec. 5.1, the mean of the
    ``g_i``) or ``"xavier"`` (a seeded draw); ``init_epochs``: epochs of each ``g_i`` run.
    ``g``: Step 2's frozen feature extractor, the ``g.safetensors`` of a Step-1 run.
    ``step2``: one of :data:`STEP2_MODES` (``"adapter"`` is U-LDA).
    """

    sources: tuple = field(default_factory=_default_sources)
    target: Any = field(default_factory=lambda: DomainConfig(name="cartesian_15", ratio=0.15, train=20))
    alpha: float = 0.01
    init: str = "average"
    init_epochs: int = 3
    g: str | None = None
    step2: str = "adapter"

    def __post_init__(self) -> None:
        if not isinstance(self.sources, (tuple, list)) or not self.sources:
            raise ValueError(f"transfer.sources must be a non-empty list of domains; got {self.sources!r}")
        self.sources = tuple(_domain(d, f"transfer.sources[{i}]") for i, d in enumerate(self.sources))
        self.target = _domain(self.target, "transfer.target")
        names = [d.name for d in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"transfer.sources must have distinct names; got {names}")
        if len({d.train for d in self.sources}) != 1:
            raise ValueError("transfer.sources must all have the same train count (|D_i| = M, U-LDA Sec. 3); got "
                             f"{[d.train for d in self.sources]}")
        real("transfer.alpha", self.alpha, 0.0, lo_open=False, kind_error=ValueError)
        if self.init not in ("average", "xavier"):
            raise ValueError(f"transfer.init must be 'average' or 'xavier'; got {self.init!r}")
        integer("transfer.init_epochs", self.init_epochs, 1, kind_error=ValueError)
        if self.g is not None and (not isinstance(self.g, str) or not self.g.endswith(".safetensors")):
            raise ValueError(f"transfer.g must be the path of a Step-1 g.safetensors or null; got {self.g!r}")
        if self.step2 not in STEP2_MODES:
            raise ValueError(f"transfer.step2 must be one of {list(STEP2_MODES)}; got {self.step2!r}")


# ---------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------
def _faces(split: str, n: int, seed: int, size: int) -> torch.Tensor:
    import numpy as np
    from skimage.data import lfw_subset
    from skimage.transform import resize

    lo, hi = _FACES_SPLIT[split]
    if n > hi - lo:
        raise ValueError(f"the faces family has {hi - lo} {split} images; asked for {n}")
    faces = lfw_subset()[:100]  # the first 100 of lfw_subset are faces
    order = np.random.default_rng(seed).permutation(hi - lo)[:n] + lo if split == "train" else np.arange(lo, lo + n)
    imgs = np.stack([resize(faces[i], (size, size), anti_aliasing=True) for i in order])
    return torch.from_numpy(imgs).to(torch.float64)[:, None]


def domain_images(domain: DomainConfig, split: str, n: int, shape: tuple[int, int], dtype: torch.dtype,
                  max_phase: float = 0.0, min_std: float = 0.0) -> torch.Tensor:
    """``n`` ground truths (n, 1, H, W) of ``domain`` for ``split`` in ``train`` / ``val`` /
    ``test`` (seeded, offline; the splits never overlap: phantom seeds ``seed``,
    ``seed + VAL_OFFSET``, ``MRI_TEST_SEED``; natural crops of the training images but
    rocket/text, of rocket/text, of the test split; faces by index, see
    :data:`IMAGE_FAMILIES`), complex ``dtype`` with a smooth phase up to ``max_phase``."""
    h, w = shape
    seed = {"train": domain.seed, "val": domain.seed + VAL_OFFSET, "test": MRI_TEST_SEED}[split]
    if domain.images == "phantoms":
        return random_ellipses(n, size=shape, seed=seed, dtype=dtype, max_phase=max_phase)
    if h != w:
        raise ValueError(f"images = {domain.images!r} needs a square task.shape; got {shape}")
    if domain.images == "natural":
        names = {"train": [m for m in TRAIN_IMAGES if m not in _NATURAL_VAL], "val": list(_NATURAL_VAL),
                 "test": list(_test_image_names())}[split]
        real_imgs = _crops(load_images(names, size=4 * h, dtype=torch.float64), n, seed, h,
                           min_std if split == "train" else 0.0)
    else:
        real_imgs = _faces(split, n, domain.seed, h)
    return apply_phase(real_imgs, seed + 3, max_phase, dtype)


def domain_measurement(config: TrainConfig, domain: DomainConfig, split: str, n: int | None = None) -> Measurement:
    """The measured samples of ``domain`` (``n`` default: the domain's ``train`` / ``val``
    count) in the config's dtype and shape."""
    n = getattr(domain, split) if n is None else n
    dt = torch.complex128 if config.train.dtype == "float64" else torch.complex64
    imgs = domain_images(domain, split, n, tuple(config.task.shape), dt, config.data.max_phase, config.data.min_std)
    return domain.task(config).measure(imgs)


# ---------------------------------------------------------------------------------------
# networks
# ---------------------------------------------------------------------------------------
class AdapterBank(nn.Module):
    """The Step-1 feature maps ``q_i = h_i o g`` (eq. 3.2b) in one module: a shared ``g``, the
    adapters ``h_1..h_I`` and the index ``active`` of the one applied (:meth:`select`); every
    batch of Step 1 comes from one domain (its adapter active)."""

    def __init__(self, g: nn.Module, adapters: list[nn.Module]) -> None:
        super().__init__()
        if not adapters:
            raise ValueError("adapters must hold at least one adapter")
        for h in adapters:
            Composed(g, h)  # the compatibility checks of q = h o g
        self.g = g
        self.adapters = nn.ModuleList(adapters)
        self.active = 0

    @property
    def in_channels(self):
        return getattr(self.g, "in_channels", None)

    @property
    def out_channels(self):
        return getattr(self.adapters[0], "out_channels", None)

    def select(self, i: int) -> None:
        """Make ``q = h_i o g``."""
        self.active = integer("i", i, 0, len(self.adapters) - 1, kind_error=ValueError)

    def composed(self, i: int) -> Composed:
        """``Composed(g, h_i)`` sharing this bank's modules."""
        return Composed(self.g, self.adapters[integer("i", i, 0, len(self.adapters) - 1, kind_error=ValueError)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapters[self.active](self.g(x))


def _dtype(config: TrainConfig) -> torch.dtype:
    return torch.float64 if config.train.dtype == "float64" else torch.float32


def _new_g(config: TrainConfig) -> FeatureCNN:
    """g (Sec. 5.1: complex convolutions, smoothed ReLU) with the seeded draw of ``config``."""
    n = config.net
    g = FeatureCNN(1, n.width, n.depth, n.kernel_size, complex=True, delta=n.delta)
    gen = torch.Generator().manual_seed(config.seed)
    if n.init == "tv":
        tv_init_(g, n.init_noise, generator=gen)
    else:
        xavier_init_(g, generator=gen)
    return g.to(_dtype(config))


def _new_adapter(config: TrainConfig, k: int) -> Adapter:
    """Adapter ``k`` (Sec. 5.1: one complex convolution ``width -> width``), seeded by
    ``(seed, k)``."""
    n = config.net
    h = Adapter(n.width, n.width, n.kernel_size, complex=True, delta=n.delta)
    xavier_init_(h, generator=torch.Generator().manual_seed(config.seed * 1_000_003 + 17 + k))
    return h.to(_dtype(config))


def _net(config: TrainConfig, features: nn.Module, phases: int) -> LDANet:
    n = config.net
    return LDANet(phases, algorithm=n.algorithm, alpha=n.alpha, tau=n.tau, theta=n.theta, gamma_u=n.gamma_u,
                  eps0=n.eps0, gamma=n.gamma, sigma=n.sigma, weight=n.weight, features=features).to(_dtype(config))


@torch.no_grad()
def average_parameters(target: nn.Module, modules: list[nn.Module]) -> nn.Module:
    """Set every parameter and buffer of ``target`` to the mean of the same tensor over
    ``modules`` (U-LDA Sec. 5.1: g starts at the average of the ``g_i``); the mean is taken in
    float64 (``sum / I``) and rounded once to ``target``'s dtype.  Returns ``target``."""
    if not modules:
        raise ValueError("modules must hold at least one module")
    states = [m.state_dict() for m in modules]
    own = target.state_dict()
    for s in states:
        if set(s) != set(own) or any(s[k].shape != own[k].shape for k in own):
            raise ValueError("every module must have the tensors of target (same architecture)")
    for k, t in own.items():
        mean = sum(s[k].detach().to(torch.float64) for s in states) / len(states)
        t.copy_(mean.to(t.dtype))
    return target


# ---------------------------------------------------------------------------------------
# one Adam step of Step 1 / Step 2
# ---------------------------------------------------------------------------------------
def step1_gradients(net: LDANet, batches: list[Measurement], alpha: float,
                    select: Callable[[int], None] | None = None) -> tuple[float, bool]:
    """Accumulate into ``.grad`` the gradient of the minibatch estimate of (3.2a),
    ``(1/I) sum_i mean_{m in batch_i} (||x_m - \\hat x_m||^2 + alpha (1 - S))``: batch ``i``
    runs with ``select(i)`` (its adapter active) and its term is back-propagated alone, so
    only one domain's graph is alive at a time.  Returns ``(loss, finite)``; at the first
    non-finite term the accumulation stops (``finite`` False: the caller skips the step)."""
    total = 0.0
    for i, b in enumerate(batches):
        if select is not None:
            select(i)
        x, _ = net(net.problem(b.fidelity()), b.x0)
        loss = ulda_loss(x, b.truth, alpha) / len(batches)
        if not bool(torch.isfinite(loss)):
            return math.nan, False
        loss.backward()
        total += float(loss.detach())
    return total, True


# ---------------------------------------------------------------------------------------
# the loop shared by Step 1 and Step 2
# ---------------------------------------------------------------------------------------
@dataclass
class _Run:
    """What the loop needs: the network, its optimizer factory, the domains (train / val
    measurements, names), how to activate a domain, and the per-epoch checkpoint writer."""

    net: LDANet
    make_opt: Callable[[LDANet], torch.optim.Optimizer]
    names: list[str]
    train: list[Measurement]
    val: list[Measurement]
    select: Callable[[int], None] | None
    save: Callable[[dict], None]
    plan: list[tuple[int, int, int]]
    extra: dict = field(default_factory=dict)


def _evaluate(run: _Run, alpha: float, batch: int) -> dict:
    per = {}
    for i, (name, va) in enumerate(zip(run.names, run.val)):
        if run.select is not None:
            run.select(i)
        ev = evaluate(run.net, va, batch_size=batch, ssim_weight=alpha / 2.0)
        per[name] = {"loss": 2.0 * ev["loss"], "psnr": ev["psnr"], "ssim": ev["ssim"]}
    mean = {k: sum(v[k] for v in per.values()) / len(per) for k in ("loss", "psnr", "ssim")}
    return {"mean": mean, "domains": per}


def _fit(config: TrainConfig, out: Path, run: _Run, resume: bool, quiet: bool, stop_after: int | None) -> dict:
    tc, alpha = config.train, config.transfer.alpha
    cfg_dict = config.to_dict()
    net, log, start, seconds_before, summary = run.net, [], 0, 0.0, None
    opt = run.make_opt(net)
    if resume:
        if not (out / STATE_FILE).is_file():
            raise ValueError(f"resume: no {STATE_FILE} in {out}")
        tensors, info = _load_state(out)
        if info.get("config") != cfg_dict:
            raise ValueError(f"resume: the config differs from the one {out} was trained with")
        changed = sorted(k for k, v in run.extra.items() if info["summary"].get(k) != v)
        if changed:
            raise ValueError(f"resume: {changed} differ from the run in {out} (another g file?)")
        opt = _restore(net, tensors, info, run.make_opt)
        summary = info["summary"]
        log, start, seconds_before = list(summary["epochs"]), int(info["epoch"]), float(info["seconds"])
    else:
        _write_json(out / CONFIG_FILE, cfg_dict)
    n = run.train[0].y.shape[0]
    spe = -(-n // tc.batch_size)
    end = len(run.plan) if stop_after is None else min(len(run.plan), stop_after)
    bar = _progress_bar(config, quiet, start, end, spe)
    x0_psnr = {nm: float(psnr(va.x0, va.truth).mean()) for nm, va in zip(run.names, run.val)}
    t_run = time.perf_counter()
    for e in range(start, end):
        stage, K, j = run.plan[e]
        if K != net.phases:  # a stage boundary of Step 1: more phases, fresh Adam
            net.grow(K)
            opt = run.make_opt(net)
        stage_steps = sum(1 for p in run.plan if p[0] == stage) * spe
        perms = [torch.randperm(n, generator=torch.Generator().manual_seed(config.seed * 1_000_003 + 101 * e + i))
                 for i in range(len(run.train))]
        t0, total, skipped = time.perf_counter(), 0.0, 0
        for s in range(spe):
            for group in opt.param_groups:
                group["lr"] = tc.lr_at(j * spe + s, stage_steps, stage)
            opt.zero_grad(set_to_none=True)
            batches = [tr.select(p[s * tc.batch_size:(s + 1) * tc.batch_size]) for tr, p in zip(run.train, perms)]
            loss, finite = step1_gradients(net, batches, alpha, run.select)
            if finite:
                opt.step()
                total += loss * batches[0].y.shape[0]
            else:
                opt.zero_grad(set_to_none=True)
                skipped += 1
            fault_point("step")
            if bar is not None:
                bar.update(1)
                bar.set_postfix(K=K, loss=f"{loss:.4g}", val_psnr=f"{log[-1]['val_psnr']:.2f}" if log else "-")
        val = _evaluate(run, alpha, max(tc.batch_size, 16))
        pp = {k: [float(t) for t in v.detach()] for k, v in net.phase_params().items()}
        log.append({"epoch": e + 1, "stage": stage + 1, "phases": K, "epoch_in_stage": j + 1, "train_loss": total / n,
                    "val_loss": val["mean"]["loss"], "val_psnr": val["mean"]["psnr"], "val_ssim": val["mean"]["ssim"],
                    "domains": val["domains"], "steps": spe, "skipped_steps": skipped,
                    "lr_last": opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t0,
                    "eps0": float(net.eps0.detach()), **pp})
        seconds = seconds_before + (time.perf_counter() - t_run)
        trainable = sum(p.numel() for g in opt.param_groups for p in g["params"])
        budget = {"epochs": e + 1, "adam_steps": (e + 1) * spe, "domain_batches": (e + 1) * spe * len(run.train),
                  "batch_size": tc.batch_size, "samples_per_domain": n, "domains": len(run.train),
                  "samples_seen": (e + 1) * n * len(run.train), "seconds": seconds, "threads": tc.threads,
                  "trainable_parameters": trainable, "phases": K}
        summary = {"name": config.name, "mode": tc.mode, "config": cfg_dict, "val_psnr_x0": x0_psnr, "epochs": log,
                   "budget": budget, "complete": e + 1 == len(run.plan), **run.extra}
        run.save(summary)
        _save_state(out, net, opt, {"epoch": e + 1, "phases": net.phases, "config": cfg_dict, "summary": summary,
                                    "seconds": seconds})
        _write_json(out / LOG_FILE, summary)
        if e + 1 == end or run.plan[e + 1][1] != K:
            _plot(out, log, config.name)
    if bar is not None:
        bar.close()
    if not log:
        raise ValueError("nothing to train: the config has no epochs")
    if start >= end:  # resumed with nothing left: the log and curves from the state
        _write_json(out / LOG_FILE, dict(summary, complete=start == len(run.plan)))
        _plot(out, log, config.name)
    return json.loads((out / LOG_FILE).read_text(encoding="utf-8"))


def _adam_over(params_of: Callable[[LDANet], list[nn.Parameter]], tc) -> Callable[[LDANet], torch.optim.Optimizer]:
    return lambda net: torch.optim.Adam(params_of(net), lr=tc.lr, betas=tuple(tc.betas))


def _domain_config(config: TrainConfig, domain: DomainConfig, **train: Any) -> TrainConfig:
    """A standard-mode copy of ``config`` whose task is ``domain``'s (the initialisation runs;
    the metadata of an exported ``model.safetensors``)."""
    d = config.to_dict()
    del d["transfer"]
    d["task"].update(kind="mri", mask=domain.mask, ratio=domain.ratio, mask_seed=domain.mask_seed)
    d["train"].update(mode="standard", **train)
    d["name"] = f"{config.name}_{domain.name}"
    return TrainConfig.from_dict(d)


def _check(config: TrainConfig) -> None:
    if config.task.kind != "mri":
        raise ValueError(f"train.mode = {config.train.mode!r} needs task.kind = 'mri' (U-LDA Sec. 5); got "
                         f"{config.task.kind!r}")
    if config.train.ssim_weight != 0:
        raise ValueError("train.ssim_weight must be 0 in the transfer modes: the SSIM weight of (3.2a) is "
                         "transfer.alpha")
    if config.train.select != "last":
        raise ValueError("train.select must be 'last' in the transfer modes")
    if config.data.natural != 0:
        raise ValueError("data.natural does not apply to the transfer modes: give a domain images = 'natural'")
    tr = config.transfer
    domains = [(f"transfer.sources[{i}]", d) for i, d in enumerate(tr.sources)] + [("transfer.target", tr.target)]
    for where, d in domains:  # the masks on the actual image shape, before any work
        try:
            d.task(config).mask_tensor()
        except ValueError as exc:
            raise ValueError(f"{where} on task.shape = {list(config.task.shape)}: {exc}") from None


# ---------------------------------------------------------------------------------------
# Step 1
# ---------------------------------------------------------------------------------------
def _initial_g(config: TrainConfig, out: Path, resume: bool, quiet: bool, data: list[TrainData]) -> tuple[FeatureCNN, dict]:
    """g's starting point: the seeded draw, or the mean of the ``g_i`` trained by plain LDA
    training on each ``D_i`` (``out/init_<name>/``, Sec. 5.1)."""
    tr = config.transfer
    g = _new_g(config)
    if tr.init == "xavier":
        return g, {"init": "xavier"}
    K = config.train.phases
    gs, runs = [], {}
    for dom, d in zip(tr.sources, data):
        cfg = _domain_config(config, dom, phases=K, first_phases=K, epochs_first=tr.init_epochs, epochs_stage=0,
                             stage_lr=None, ssim_weight=tr.alpha / 2.0)
        sub = out / f"init_{dom.name}"
        log = train(cfg, sub, resume=resume and (sub / STATE_FILE).is_file(), quiet=quiet, data=d)
        gs.append(load_checkpoint(sub / MODEL_FILE).module)
        runs[dom.name] = {"dir": sub.name, "final_val_psnr": log["epochs"][-1]["val_psnr"], "budget": log["budget"]}
    return average_parameters(g, gs), {"init": "average", "init_runs": runs}


def _g_metadata(net: LDANet, config: TrainConfig, summary: dict, role: str) -> dict:
    meta = net.metadata()
    meta["kind"] = "u-lda-g"
    meta["role"] = role
    meta["training"] = {"config": config.to_dict(), "budget": summary["budget"], "final_val_psnr":
                        summary["epochs"][-1]["val_psnr"]}
    return meta


def _train_step1(config: TrainConfig, out: Path, resume: bool, quiet: bool, stop_after: int | None) -> dict:
    tr = config.transfer
    data = [TrainData(domain_measurement(config, d, "train"), domain_measurement(config, d, "val")) for d in tr.sources]
    names = [d.name for d in tr.sources]
    remove_stale_temps(out, (CONFIG_FILE, LOG_FILE, CURVES_FILE, STATE_FILE, G_FILE, config_path(G_FILE).name,
                             *(f for nm in names for f in (f"adapter_{nm}.safetensors", f"adapter_{nm}.json"))))
    if resume and (out / STATE_FILE).is_file():  # g comes from the state
        g, init = _new_g(config), _load_state(out)[1]["summary"].get("init")
    else:
        g, init = _initial_g(config, out, resume, quiet, data)
        resume = False
    bank = AdapterBank(g, [_new_adapter(config, k) for k in range(len(tr.sources))])
    tc = config.train
    net = _net(config, bank, tc.first_phases)

    def save(summary: dict) -> None:
        meta = _g_metadata(net, config, summary, "feature-extractor")
        save_checkpoint(bank.g, out / G_FILE, **meta)
        ref = checkpoint_reference(out / G_FILE, relative_to=out)
        for i, dom in enumerate(tr.sources):
            task = dom.task(config)
            save_checkpoint(bank.adapters[i], out / f"adapter_{dom.name}.safetensors", kind="u-lda-adapter", g=ref,
                            domain=dom.__dict__, problem=task.metadata(), step=1)

    plan = [(s, K, j) for s, (K, E) in enumerate(tc.stages()) for j in range(E)]
    run = _Run(net, _adam_over(lambda m: list(m.parameters()), tc), names, [d.train for d in data],
               [d.val for d in data], bank.select, save, plan,
               {"init": init, "parameters": {"g": count_parameters(g), "adapter": count_parameters(bank.adapters[0])}})
    return _fit(config, out, run, resume, quiet, stop_after)


# ---------------------------------------------------------------------------------------
# Step 2
# ---------------------------------------------------------------------------------------
def _train_step2(config: TrainConfig, out: Path, resume: bool, quiet: bool, stop_after: int | None) -> dict:
    tr, tc = config.transfer, config.train
    remove_stale_temps(out, (CONFIG_FILE, LOG_FILE, CURVES_FILE, STATE_FILE, MODEL_FILE,
                             config_path(MODEL_FILE).name, ADAPTER_FILE, config_path(ADAPTER_FILE).name))
    h = _new_adapter(config, 1_000)
    if tr.step2 == "scratch":
        net, ref = _net(config, Composed(_new_g(config), h), tc.phases), None
    else:
        if tr.g is None:
            raise ValueError(f"transfer.g must name the Step-1 g.safetensors for transfer.step2 = {tr.step2!r}")
        g_path = Path(tr.g)
        if not g_path.is_file():
            raise FileNotFoundError(f"transfer.g: no such file {g_path} (run transfer_step1 first)")
        ref = checkpoint_reference(g_path)
        ck = load_checkpoint(g_path, dtype=_dtype(config))
        if ck.metadata.get("kind") != "u-lda-g":
            raise ValueError(f"transfer.g: {g_path} is not a U-LDA feature extractor (metadata kind "
                             f"{ck.metadata.get('kind')!r})")
        net = LDANet.from_parts(Composed(ck.module, h), ck.metadata).to(_dtype(config))
    if tr.step2 == "adapter":  # eq. (3.3): g and the phase parameters fixed, only h^ learned
        for name, p in net.named_parameters():
            p.requires_grad_(name.startswith("features.h."))
        params_of = lambda m: list(m.features.h.parameters())
    else:
        params_of = lambda m: list(m.parameters())
    d = TrainData(domain_measurement(config, tr.target, "train"), domain_measurement(config, tr.target, "val"))
    target_cfg = _domain_config(config, tr.target)

    def save(summary: dict) -> None:
        training = {"budget": summary["budget"], "final_val_psnr": summary["epochs"][-1]["val_psnr"],
                    "transfer": tr.step2, "transfer_config": summary["config"]}
        save_checkpoint(net.features, out / MODEL_FILE, **checkpoint_metadata(net, target_cfg, training))
        if ref is not None and tr.step2 == "adapter":
            save_checkpoint(net.features.h, out / ADAPTER_FILE, kind="u-lda-adapter", g=ref,
                            domain=tr.target.__dict__, problem=tr.target.task(config).metadata(), step=2,
                            training=training)

    plan = [(0, net.phases, j) for j in range(tc.epochs_first)]
    run = _Run(net, _adam_over(params_of, tc), [tr.target.name], [d.train], [d.val], None, save, plan,
               {"g": ref, "step2": tr.step2, "parameters": {"trainable": sum(p.numel() for p in params_of(net))}})
    return _fit(config, out, run, resume, quiet, stop_after)


def train_transfer(config: TrainConfig, out: Path, *, resume: bool = False, quiet: bool = False,
                   stop_after: int | None = None, data=None) -> dict:
    """The trainer of ``train.mode = "transfer_step1"`` / ``"transfer_step2"`` (called by
    :func:`lda_opt.learning.train`); returns the run's ``log.json`` summary.

    Step 1 trains ``train.stages()`` (stair training as the standard mode; every epoch
    ``ceil(M / batch_size)`` Adam steps, each over one batch of every source).  Step 2 trains
    ``train.epochs_first`` epochs at the phase count of g (``train.phases`` for
    ``"scratch"``).  ``data`` is not accepted: the domains define the data.
    """
    if data is not None:
        raise ValueError("the transfer modes build their data from transfer.sources / transfer.target; data must "
                         "be None")
    _check(config)
    out = Path(out)
    if config.train.mode == "transfer_step1":
        return _train_step1(config, out, resume, quiet, stop_after)
    if config.train.mode == "transfer_step2":
        return _train_step2(config, out, resume, quiet, stop_after)
    raise ValueError(f"train_transfer runs train.mode 'transfer_step1' or 'transfer_step2'; got {config.train.mode!r}")


def load_transfer_net(adapter_path, g_path=None, *, dtype: torch.dtype | None = None) -> LDANet:
    """The U-LDA network ``h^ o g`` of a Step-2 (or Step-1) adapter checkpoint: g is the one
    it references (or ``g_path``), refused with ``ValueError`` unless its SHA-256 matches
    (:func:`lda_opt.nets.checkpoint.load_composed`); the phases are g's."""
    ck = load_composed(adapter_path, g_path, dtype=dtype)
    net = LDANet.from_parts(ck.module, ck.metadata["g"])
    net.checkpoint_metadata = ck.metadata
    return net

