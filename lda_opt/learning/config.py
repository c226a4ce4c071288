"""Typed training configurations (JSON files); unknown keys are rejected.

A config file has four sections and two scalars::

    {"name": "block_cs_25", "seed": 0,
     "task":  {"kind": "block-cs", "ratio": 0.25, "matrix_seed": 0, ...},
     "data":  {"train": 1024, "val": 128, ...},
     "net":   {"algorithm": "lda", "width": 16, "depth": 4, ...},
     "train": {"phases": 7, "first_phases": 3, "phase_step": 2, "epochs_first": 6, ...}}

Every field has a default (:class:`TaskConfig`, :class:`DataConfig`, :class:`NetConfig`,
:class:`OptimConfig`); an invalid value raises ``ValueError`` naming the field and its range.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .._validate import integer, real
from ..tasks import BlockCSTask, MRITask, normalize_problem_name
from .net import NET_ALGORITHMS

__all__ = ["MODE_SECTIONS", "TRAIN_MODES", "DataConfig", "NetConfig", "OptimConfig", "TaskConfig", "TrainConfig",
           "load_config"]

#: ``train.mode`` -> the training system it runs (``lda-opt train`` dispatches on it):
#: ``"standard"`` (stair training of LDA-Net, LDA Sec. 4.1, :mod:`lda_opt.learning.train`),
#: ``"meta"`` (meta-LDA Algorithm 2), ``"transfer_step1"`` / ``"transfer_step2"`` (U-LDA
#: (3.2) / (3.3)), ``"mol"`` (the MOL deep-equilibrium network).
TRAIN_MODES: tuple[str, ...] = ("standard", "meta", "transfer_step1", "transfer_step2", "mol")

#: the config section of a mode's own settings: mode -> (section key, "module:class"); the
#: class is a dataclass read like the other sections (unknown keys rejected).  A config may
#: hold only the section of its own mode; absent, the class's defaults are used.
MODE_SECTIONS: dict[str, tuple[str, str]] = {
    "meta": ("meta", "lda_opt.learning.meta:MetaConfig"),
    "transfer_step1": ("transfer", "lda_opt.learning.transfer:TransferConfig"),
    "transfer_step2": ("transfer", "lda_opt.learning.transfer:TransferConfig"),
    "mol": ("mol", "lda_opt.learning.mol:MOLConfig"),
}
_SECTION_KEYS = tuple(dict.fromkeys(key for key, _ in MODE_SECTIONS.values()))


def _section_class(mode: str):
    import importlib

    module, name = MODE_SECTIONS[mode][1].split(":")
    return getattr(importlib.import_module(module), name)


# A config file's bad values are ValueErrors whatever their kind (bad file content, not a
# bad argument): the checks of lda_opt._validate with kind_error=ValueError.
def _int(name: str, v: Any, lo: int = 0) -> None:
    integer(name, v, lo, kind_error=ValueError)


def _num(name: str, v: Any, lo: float | None = None, hi: float | None = None, lo_open: bool = True,
         hi_open: bool = True) -> None:
    real(name, v, lo, hi, lo_open=lo_open, hi_open=hi_open, kind_error=ValueError)


def _from_dict(cls, d: Any, section: str):
    if not isinstance(d, dict):
        msg = f"config section {section!r} must be a JSON object; got {type(d).__name__}"
        raise ValueError(msg)  # noqa: TRY004 - bad file content, not a bad argument
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in config section {section!r}; valid keys: {sorted(known)}")
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
    return cls(**kw)


def _pair(name: str, v: Any) -> tuple:
    """A JSON list of two entries as a tuple (the task checks the entries)."""
    if not isinstance(v, (tuple, list)) or len(v) != 2:
        raise ValueError(f"{name} must be a list [H, W] of two integers; got {v!r}")
    return tuple(v)


@dataclass(kw_only=True)
class TaskConfig:
    """The reconstruction task (see :mod:`lda_opt.tasks`).

    ``kind``: ``"block-cs"`` or ``"mri"``; ``ratio`` in (0, 1) (MRI: (0, 1]).  Block CS: ``matrix_seed``,
    ``init_blocks``, ``init_size``, ``init_seed`` (the initializer Q).  MRI: ``mask``,
    ``mask_seed``, ``shape`` (H, W), ``noise``, ``noise_seed``.
    """

    kind: str = "block-cs"
    ratio: float = 0.25
    matrix_seed: int = 0
    init_blocks: int = 4000
    init_size: int = 256
    init_seed: int = 0
    mask: str = "radial"
    mask_seed: int = 0
    shape: tuple[int, int] = (64, 64)
    noise: float = 0.0
    noise_seed: int = 0

    def __post_init__(self) -> None:
        self.kind = normalize_problem_name(self.kind)
        self.shape = _pair("task.shape", self.shape)
        # numbers (the tasks would parse a string); the tasks check the exact ranges
        _num("task.ratio", self.ratio, 0.0, 1.0, hi_open=False)
        _num("task.noise", self.noise, 0.0, lo_open=False)
        # the fields of the other kind are unused, but a bad value is still a bad config
        if self.kind == "block-cs":
            MRITask(self.ratio, mask=self.mask, mask_seed=self.mask_seed, shape=self.shape,
                    noise=self.noise, noise_seed=self.noise_seed)
        else:
            for n in ("matrix_seed", "init_seed"):
                _int(f"task.{n}", getattr(self, n), 0)
            _int("task.init_blocks", self.init_blocks, 1)
            _int("task.init_size", self.init_size, 33)
        self.build()  # validates

    def build(self) -> BlockCSTask | MRITask:
        """The task object."""
        if self.kind == "block-cs":
            return BlockCSTask(self.ratio, matrix_seed=self.matrix_seed, init_blocks=self.init_blocks,
                               init_size=self.init_size, init_seed=self.init_seed)
        if self.kind == "mri":
            return MRITask(self.ratio, mask=self.mask, mask_seed=self.mask_seed, shape=tuple(self.shape),
                           noise=self.noise, noise_seed=self.noise_seed)
        raise ValueError(f"task.kind must be 'block-cs' or 'mri'; got {self.kind!r}")


@dataclass(kw_only=True)
class DataConfig:
    """Training and validation data (see :mod:`lda_opt.learning.datasets`).

    ``train`` / ``val``: numbers of samples.  ``seed``: the crops / phantoms.  Block CS:
    random 33 x 33 crops of the training-split images resized to ``size``; the images named in
    ``val_images`` (a part of the training split) give the validation crops only.  MRI:
    random-ellipse phantoms of ``task.shape`` with phase up to ``max_phase``, plus
    ``natural`` natural-image crops (cross-modality, U-LDA Sec. 5.2.3).  ``min_std`` > 0
    keeps only training crops whose pixel standard deviation is at least ``min_std`` (flat
    crops teach a regularizer nothing); validation crops are never filtered.  Block CS only:
    ``scales`` lists further image sizes, the training crops being split evenly between
    ``size`` and these (more distinct crops, and the scale of the test images); ``augment``
    maps each training crop by a seeded random one of the 8 symmetries of the square.
    """

    train: int = 1024
    val: int = 128
    seed: int = 1
    size: int = 256
    val_images: tuple[str, ...] = ("rocket", "text")
    max_phase: float = 0.0
    natural: int = 0
    min_std: float = 0.0
    scales: tuple[int, ...] = ()
    augment: bool = False

    def __post_init__(self) -> None:
        _num("data.min_std", self.min_std, 0.0, lo_open=False)
        if not isinstance(self.scales, tuple) or len({self.size, *self.scales}) != 1 + len(self.scales):
            raise ValueError(f"data.scales must be a list of image sizes other than data.size = {self.size} and "
                             f"each other; got {self.scales!r}")
        for v in self.scales:
            _int("data.scales", v, 33)
        if not isinstance(self.augment, bool):
            raise ValueError(f"data.augment must be true or false; got {self.augment!r}")  # noqa: TRY004 - config content
        _int("data.train", self.train, 1)
        _int("data.val", self.val, 1)
        _int("data.seed", self.seed, 0)
        _int("data.size", self.size, 33)
        _int("data.natural", self.natural, 0)
        _num("data.max_phase", self.max_phase, 0.0, math.pi, lo_open=False, hi_open=False)
        from ..data import TRAIN_IMAGES

        if not isinstance(self.val_images, tuple) or not all(isinstance(n, str) for n in self.val_images):
            raise ValueError(f"data.val_images must be a list of image names; got {self.val_images!r}")
        bad = [n for n in self.val_images if n not in TRAIN_IMAGES]
        if bad or len(set(self.val_images)) >= len(TRAIN_IMAGES):
            raise ValueError(f"data.val_images must be a proper subset of the training split {list(TRAIN_IMAGES)}; "
                             f"got {list(self.val_images)}")


@dataclass(kw_only=True)
class NetConfig:
    """The network (:class:`~lda_opt.learning.LDANet` keyword arguments but ``phases``).

    ``init``: ``"xavier"`` (LDA Sec. 4.1) or ``"tv"`` (:func:`~lda_opt.learning.net.tv_init_`:
    the CNN starts as isotropic TV plus ``init_noise`` times a Xavier draw).
    """

    algorithm: str = "lda"
    width: int = 32
    depth: int = 4
    kernel_size: int = 3
    delta: float = 0.01
    alpha: float = 0.5
    tau: float = 0.5
    theta: float = 0.2
    gamma_u: float = 1.0
    eps0: float = 1e-3
    gamma: float = 0.9
    sigma: float = 1e3
    weight: float = 1.0
    init: str = "xavier"
    init_noise: float = 0.1

    def __post_init__(self) -> None:
        if self.init not in ("xavier", "tv"):
            raise ValueError(f"net.init must be 'xavier' or 'tv'; got {self.init!r}")
        _num("net.init_noise", self.init_noise, 0.0, lo_open=False)
        if self.init == "tv" and (self.width < 4 or self.kernel_size < 3):
            raise ValueError("net.init = 'tv' needs net.width >= 4 and net.kernel_size >= 3")
        if self.algorithm not in NET_ALGORITHMS:
            raise ValueError(f"net.algorithm must be one of {sorted(NET_ALGORITHMS)}; got {self.algorithm!r}")
        for n in ("width", "depth", "kernel_size"):
            _int(f"net.{n}", getattr(self, n), 1)
        for n in ("delta", "alpha", "tau", "gamma_u", "eps0", "sigma", "weight"):
            _num(f"net.{n}", getattr(self, n), 0.0)
        _num("net.theta", self.theta, 0.0, 1.0)
        _num("net.gamma", self.gamma, 0.0, 1.0)


@dataclass(kw_only=True)
class OptimConfig:
    """Stair training with Adam (LDA Sec. 4.1).

    Stage 1 trains ``first_phases`` phases for ``epochs_first`` epochs; every later stage adds
    ``phase_step`` phases (warm start) and trains ``epochs_stage`` epochs, until ``phases``.
    Adam with ``lr``, ``betas`` (paper: 1e-4, (0.9, 0.999)), a fresh optimizer per stage;
    ``lr_final`` (default ``None``: a constant ``lr``) anneals the rate of every stage from
    ``lr`` to ``lr_final`` along a half cosine over the stage's steps (:meth:`lr_at`);
    ``stage_lr`` (default ``None``: ``lr`` for every stage) gives every stage of :meth:`stages`
    its own starting rate (one number per stage), e.g. a lower rate for stages appended to a
    trained run; ``select`` is the network a run exports: ``"last"`` (the last epoch's) or
    ``"best_val"`` (the epoch of the final stage with the best validation PSNR: model
    selection on the validation set, which never touches the test images); ``ssim_weight`` > 0 adds the SSIM term of U-LDA eq. (3.2a).  ``dtype``: ``"float32"`` or
    ``"float64"``; ``threads``: torch CPU threads (results are bit-reproducible for a fixed
    thread count).
    """

    phases: int = 7
    first_phases: int = 3
    phase_step: int = 2
    epochs_first: int = 5
    epochs_stage: int = 2
    batch_size: int = 32
    lr: float = 1e-4
    lr_final: float | None = None
    stage_lr: tuple[float, ...] | None = None
    select: str = "last"
    betas: tuple[float, float] = (0.9, 0.999)
    ssim_weight: float = 0.0
    dtype: str = "float32"
    threads: int = 1
    mode: str = "standard"

    def __post_init__(self) -> None:
        if self.mode not in TRAIN_MODES:
            raise ValueError(f"train.mode must be one of {list(TRAIN_MODES)}; got {self.mode!r}")
        for n, lo in (("phases", 1), ("first_phases", 1), ("phase_step", 1), ("epochs_first", 1),
                      ("epochs_stage", 0), ("batch_size", 1), ("threads", 1)):
            _int(f"train.{n}", getattr(self, n), lo)
        if self.first_phases > self.phases:
            raise ValueError(f"train.first_phases must be <= train.phases = {self.phases}; got {self.first_phases}")
        _num("train.lr", self.lr, 0.0)
        if self.stage_lr is not None:
            n = len(self.stages())
            if not (isinstance(self.stage_lr, tuple) and len(self.stage_lr) == n):
                raise ValueError(f"train.stage_lr must be a list of {n} rates, one per stage; got {self.stage_lr!r}")
            for v in self.stage_lr:
                _num("train.stage_lr", v, 0.0)
        if self.lr_final is not None:
            _num("train.lr_final", self.lr_final, 0.0, min(self.peak_lr(i) for i in range(len(self.stages()))),
                 hi_open=False)
        if not (isinstance(self.betas, tuple) and len(self.betas) == 2):
            raise ValueError(f"train.betas must be a pair of numbers in [0, 1); got {self.betas!r}")
        for b in self.betas:
            _num("train.betas", b, 0.0, 1.0, lo_open=False)
        _num("train.ssim_weight", self.ssim_weight, 0.0, lo_open=False)
        if self.select not in ("last", "best_val"):
            raise ValueError(f"train.select must be 'last' or 'best_val'; got {self.select!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"train.dtype must be 'float32' or 'float64'; got {self.dtype!r}")

    def peak_lr(self, stage: int) -> float:
        """The starting rate of stage ``stage`` (0-based): ``stage_lr[stage]``, or ``lr``."""
        return self.lr if self.stage_lr is None else float(self.stage_lr[stage])

    def lr_at(self, step: int, steps: int, stage: int = 0) -> float:
        """The learning rate of step ``step`` (0-based) of stage ``stage``, of ``steps`` steps:
        ``peak = peak_lr(stage)`` when ``lr_final`` is None, else
        ``lr_final + (peak - lr_final) (1 + cos(pi step / steps)) / 2``."""
        peak = self.peak_lr(stage)
        if self.lr_final is None:
            return peak
        return self.lr_final + 0.5 * (peak - self.lr_final) * (1.0 + math.cos(math.pi * step / max(steps, 1)))

    def stages(self) -> list[tuple[int, int]]:
        """``[(K, epochs), ...]``: K = first_phases, first_phases + phase_step, ..., phases."""
        out = [(self.first_phases, self.epochs_first)]
        K = self.first_phases
        while K < self.phases:
            K = min(K + self.phase_step, self.phases)
            out.append((K, self.epochs_stage))
        return [(k, e) for k, e in out if e > 0] or [(self.first_phases, self.epochs_first)]


@dataclass(kw_only=True)
class TrainConfig:
    """A whole training run."""

    name: str = "lda_net"
    seed: int = 0
    task: TaskConfig = field(default_factory=TaskConfig)
    data: DataConfig = field(default_factory=DataConfig)
    net: NetConfig = field(default_factory=NetConfig)
    train: OptimConfig = field(default_factory=OptimConfig)
    #: the settings of ``train.mode``'s system (:data:`MODE_SECTIONS`); None for the others
    meta: Any = None
    transfer: Any = None
    mol: Any = None

    def __post_init__(self) -> None:
        own = MODE_SECTIONS.get(self.train.mode, (None,))[0]
        for key in _SECTION_KEYS:
            value = getattr(self, key)
            if key != own:
                if value is not None:
                    raise ValueError(f"config section {key!r} belongs to another train.mode; train.mode is "
                                     f"{self.train.mode!r}")
                continue
            cls = _section_class(self.train.mode)
            if value is None:
                value = cls()
            elif not isinstance(value, cls):
                value = _from_dict(cls, value, key)
            setattr(self, key, value)
        # NAME is a directory (build/runs/NAME): at least one letter or digit, so never "." or ".."
        if (not isinstance(self.name, str) or not any(c.isalnum() for c in self.name)
                or not all(c.isalnum() or c in "-_." for c in self.name)):
            raise ValueError(f"name must be a string of letters, digits, '-', '_', '.' with at least one "
                             f"letter or digit; got {self.name!r}")
        _int("seed", self.seed, 0)
        if self.task.kind != "block-cs" and (self.data.scales or self.data.augment):
            raise ValueError(f"data.scales and data.augment apply to block-cs training data only; task.kind is "
                             f"{self.task.kind!r}")

    @classmethod
    def from_dict(cls, d: Any) -> TrainConfig:
        """Build from a dict (as read from JSON); unknown keys raise ValueError."""
        if not isinstance(d, dict):
            msg = f"a training config must be a JSON object; got {type(d).__name__}"
            raise ValueError(msg)  # noqa: TRY004 - bad file content, not a bad argument
        sections = {"task": TaskConfig, "data": DataConfig, "net": NetConfig, "train": OptimConfig}
        known = {"name", "seed", *sections, *_SECTION_KEYS}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown key(s) {unknown} in the training config; valid keys: {sorted(known)}")
        kw = {k: _from_dict(c, d[k], k) for k, c in sections.items() if k in d}
        for k in ("name", "seed", *_SECTION_KEYS):
            if k in d:
                kw[k] = d[k]
        return cls(**kw)

    def to_dict(self) -> dict:
        """JSON-able (tuples as lists); the sections of other modes (None) are left out."""
        d = json.loads(json.dumps(asdict(self)))
        for key in _SECTION_KEYS:
            if d[key] is None:
                del d[key]
        return d

    def with_overrides(self, **sections: dict) -> TrainConfig:
        """A copy with some fields replaced, e.g. ``with_overrides(train={"epochs_first": 1})``."""
        d = self.to_dict()
        for sec, vals in sections.items():
            if sec in ("name", "seed"):
                d[sec] = vals
                continue
            if sec in _SECTION_KEYS and isinstance(vals, dict):
                d.setdefault(sec, {})
            if sec not in d or not isinstance(vals, dict):
                raise ValueError(f"unknown config section {sec!r}")
            d[sec].update(vals)
        return TrainConfig.from_dict(d)


def load_config(path: str | os.PathLike) -> TrainConfig:
    """Read a JSON training config."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file not found: {p}")
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"config {p} is not UTF-8 text: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"config {p} is not valid JSON: {exc}") from exc
    return TrainConfig.from_dict(d)
