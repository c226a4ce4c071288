"""Checkpoints: a safetensors weight file plus a JSON config; nothing is ever unpickled.

File convention
---------------
``save_checkpoint(module, "dir/model.safetensors", **metadata)`` writes two files:

* ``dir/model.safetensors`` -- the ``state_dict`` tensors (safetensors format);
* ``dir/model.json`` -- the config (same stem, suffix ``.json``)::

      {"format": "lda_opt.checkpoint", "format_version": 1,
       "lda_opt_version": "0.1.0", "save_id": "<uuid4 hex>",
       "architecture": {"class": "FeatureCNN", "config": {"width": 32, ...}},
       "metadata": {...}}

The weight path must end in ``.safetensors``. ``save_id`` is also stored in the
safetensors header, so a weight file and a config from different saves are detected.
Both files are written atomically (temporary file in the same directory, then
``os.replace``); the weights are replaced before the config.

The architecture is rebuilt from a registry of constructible classes
(:data:`ARCHITECTURES`: ``FeatureCNN``, ``Adapter``, ``SmoothReLU``, ``ComplexConv2d``,
``Composed`` and ``torch.nn.Sequential`` of registered modules, nested freely). Other
modules register themselves with :func:`register_architecture`.

Loading uses ``json`` and ``safetensors`` only -- never ``torch.load`` or ``pickle`` -- so
a hostile file cannot execute code; it is rejected with ``ValueError``.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lda_opt.nets.activation import SmoothReLU
from lda_opt.nets.cnn import Adapter, Composed, FeatureCNN
from lda_opt.nets.conv import ComplexConv2d

__all__ = [
    "ARCHITECTURES",
    "Checkpoint",
    "architecture_of",
    "build_architecture",
    "config_path",
    "load_checkpoint",
    "register_architecture",
    "save_checkpoint",
]

FORMAT = "lda_opt.checkpoint"
FORMAT_VERSION = 1
_MAX_HEADER = 100_000_000  # safetensors' own limit on the JSON header size


@dataclass(frozen=True)
class _Entry:
    cls: type
    to_config: Callable[[nn.Module], dict]
    from_config: Callable[[dict], nn.Module]


#: name -> registry entry of the classes :func:`load_checkpoint` can construct.
ARCHITECTURES: dict[str, _Entry] = {}


def register_architecture(
    cls: type,
    *,
    name: str | None = None,
    to_config: Callable[[nn.Module], dict] | None = None,
    from_config: Callable[[dict], nn.Module] | None = None,
) -> type:
    """Make ``cls`` saveable and loadable. Usable as a decorator.

    By default the config is ``module.config()`` (a JSON-serializable dict of constructor
    keyword arguments) and the module is rebuilt as ``cls(**config)``. Give ``to_config`` /
    ``from_config`` for containers (see ``Composed``: nested modules are stored with
    :func:`architecture_of` and rebuilt with :func:`build_architecture`).
    """
    if not isinstance(cls, type) or not issubclass(cls, nn.Module):
        raise TypeError(f"cls must be a torch.nn.Module subclass, got {cls!r}")
    key = name or cls.__name__
    if key in ARCHITECTURES and ARCHITECTURES[key].cls is not cls:
        raise ValueError(f"architecture name {key!r} is already registered to another class")
    if to_config is None:
        if not callable(getattr(cls, "config", None)):
            raise TypeError(f"{cls.__name__} needs a config() method or a to_config function")

        def to_config(m: nn.Module) -> dict:
            return m.config()

    if from_config is None:

        def from_config(c: dict) -> nn.Module:
            return cls(**c)

    ARCHITECTURES[key] = _Entry(cls, to_config, from_config)
    return cls


def _name_of(module: nn.Module) -> str:
    for key, entry in ARCHITECTURES.items():
        if type(module) is entry.cls:
            return key
    raise TypeError(
        f"cannot save a {type(module).__name__}: not a registered architecture "
        f"(registered: {sorted(ARCHITECTURES)}); use lda_opt.nets.register_architecture"
    )


def architecture_of(module: nn.Module) -> dict:
    """``{"class": name, "config": {...}}`` describing how to rebuild ``module``."""
    key = _name_of(module)
    cfg = ARCHITECTURES[key].to_config(module)
    _check_json(cfg, "architecture config of " + key)
    return {"class": key, "config": cfg}


def build_architecture(spec: Any) -> nn.Module:
    """Inverse of :func:`architecture_of`: construct the module (with fresh weights)."""
    # a malformed spec comes from a corrupted config file: ValueError, like other bad content
    if not isinstance(spec, dict) or set(spec) != {"class", "config"}:
        raise ValueError(
            f"architecture spec must be a dict with keys 'class' and 'config', got {spec!r}"
        )
    key, cfg = spec["class"], spec["config"]
    if key not in ARCHITECTURES:
        raise ValueError(f"unknown architecture class {key!r}; registered: {sorted(ARCHITECTURES)}")
    if not isinstance(cfg, dict):
        msg = f"config of {key!r} must be a dict, got {type(cfg).__name__}"
        raise ValueError(msg)  # noqa: TRY004 - bad file content, not a bad argument
    try:
        return ARCHITECTURES[key].from_config(cfg)
    except (TypeError, KeyError) as exc:  # unknown / missing constructor keywords
        raise ValueError(f"cannot build {key!r} from config {cfg!r}: {exc}") from exc


register_architecture(FeatureCNN)
register_architecture(Adapter)
register_architecture(SmoothReLU, to_config=lambda m: {"delta": m.delta})
register_architecture(
    ComplexConv2d,
    to_config=lambda m: {
        "in_channels": m.in_channels,
        "out_channels": m.out_channels,
        "kernel_size": m.kernel_size,
    },
)
register_architecture(
    Composed,
    to_config=lambda m: {"g": architecture_of(m.g), "h": architecture_of(m.h)},
    from_config=lambda c: Composed(build_architecture(c["g"]), build_architecture(c["h"])),
)
register_architecture(
    nn.Sequential,
    to_config=lambda m: {"modules": [architecture_of(c) for c in m]},
    from_config=lambda c: nn.Sequential(*[build_architecture(s) for s in c["modules"]]),
)


def _check_json(obj: Any, where: str, path: str = "") -> None:
    """Strict JSON check: dict (str keys), list/tuple, str, int, finite float, bool, None."""
    here = path or "<root>"
    if obj is None or isinstance(obj, (bool, str, int)):
        return
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"{where}: {here} = {obj} is not finite (JSON has no NaN/Inf)")
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_json(v, where, f"{path}[{i}]")
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: key {k!r} at {here} must be a str")
            _check_json(v, where, f"{path}.{k}" if path else k)
        return
    raise TypeError(
        f"{where}: {here} has type {type(obj).__name__}, which is not JSON-serializable "
        f"(allowed: dict with str keys, list, tuple, str, int, float, bool, None)"
    )


def config_path(path: str | os.PathLike) -> Path:
    """The JSON config path of a checkpoint: same directory and stem, suffix ``.json``."""
    p = Path(path)
    if p.suffix != ".safetensors":
        raise ValueError(f"path must end in '.safetensors', got {str(p)!r}")
    return p.with_suffix(".json")


def _atomic_write(target: Path, write: Callable[[str], None]) -> None:
    fd, tmp = tempfile.mkstemp(prefix="." + target.name + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:  # data on disk before the rename makes it visible
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(module: nn.Module, path: str | os.PathLike, **metadata: Any) -> Path:
    """Save ``module`` to ``path`` (``*.safetensors``) and its config beside it (``*.json``).

    ``metadata`` must be strict JSON (dicts with str keys, lists/tuples, str, int, finite
    float, bool, None); anything else raises ``TypeError`` (``ValueError`` for NaN/Inf)
    before a file is written. Tuples come back as lists. Returns the config path.
    """
    from safetensors.torch import save_file

    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    weights = Path(path)
    cfg_file = config_path(weights)
    if not weights.parent.is_dir():
        raise ValueError(f"directory of path does not exist: {str(weights.parent)!r}")
    _check_json(metadata, "metadata")
    import lda_opt

    save_id = uuid.uuid4().hex
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "lda_opt_version": lda_opt.__version__,
        "save_id": save_id,
        "architecture": architecture_of(module),
        "metadata": metadata,
    }
    text = json.dumps(config, indent=2, sort_keys=True, allow_nan=False)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
    header = {"format": FORMAT, "save_id": save_id}
    _atomic_write(weights, lambda tmp: save_file(tensors, tmp, metadata=header))

    def write_json(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")

    _atomic_write(cfg_file, write_json)
    return cfg_file


@dataclass(frozen=True)
class Checkpoint:
    """What :func:`load_checkpoint` returns; unpacks as ``module, metadata = ...``.

    Fields: ``module`` (the rebuilt ``nn.Module`` with loaded weights, left in training
    mode as constructed; call ``.eval()`` if needed), ``metadata`` (dict given at save),
    ``architecture`` (the ``{"class", "config"}`` spec), ``lda_opt_version`` (of the
    writer), ``path`` (the weight file).
    """

    module: nn.Module
    metadata: dict
    architecture: dict = field(default_factory=dict)
    lda_opt_version: str = ""
    path: Path | None = None

    def __iter__(self) -> Iterator[Any]:
        yield self.module
        yield self.metadata


def _read_safetensors_header(weights: Path) -> dict:
    """Validate the safetensors framing before handing the file to safetensors."""
    size = weights.stat().st_size
    with open(weights, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ValueError(f"{weights}: not a safetensors file (only {size} bytes)")
        (n,) = struct.unpack("<Q", head)
        if n == 0 or n > _MAX_HEADER or 8 + n > size:
            raise ValueError(
                f"{weights}: not a safetensors file or truncated (header length {n}, "
                f"file size {size})"
            )
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{weights}: corrupted safetensors header ({exc})") from exc
    if not isinstance(header, dict):  # file content, not an argument
        msg = f"{weights}: corrupted safetensors header (not a JSON object)"
        raise ValueError(msg)  # noqa: TRY004
    end = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            end = max(end, int(info["data_offsets"][1]))
        except (TypeError, KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"{weights}: corrupted safetensors entry {key!r}") from exc
    if 8 + n + end != size:
        raise ValueError(
            f"{weights}: truncated or corrupted: header describes {8 + n + end} bytes, "
            f"file has {size}"
        )
    return header


def load_checkpoint(
    path: str | os.PathLike,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> Checkpoint:
    """Rebuild the module saved by :func:`save_checkpoint` and load its weights (strict).

    Args:
        path: the ``*.safetensors`` file; its config is ``path`` with suffix ``.json``.
        device: where to put the module (default: CPU).
        dtype: floating dtype to cast the parameters to (default: as saved). Complex
            modules keep real parameters: use float64 for complex128 input.

    Returns:
        :class:`Checkpoint` (unpacks as ``module, metadata``).

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: not a safetensors file, truncated/corrupted file, unknown format or
            architecture, config and weights from different saves, or missing / unexpected
            / mis-shaped weight keys (all listed).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights = Path(path)
    cfg_file = config_path(weights)
    if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
        raise ValueError(f"dtype must be a floating torch.dtype or None, got {dtype!r}")
    for f in (weights, cfg_file):
        if not f.is_file():
            raise FileNotFoundError(f"checkpoint file not found: {f}")
    try:
        config = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{cfg_file}: corrupted checkpoint config ({exc})") from exc
    need = {"format", "format_version", "lda_opt_version", "save_id", "architecture", "metadata"}
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"{cfg_file}: not an lda_opt checkpoint config (format != {FORMAT!r})")
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{cfg_file}: unsupported format_version {config.get('format_version')!r} "
            f"(this lda_opt reads {FORMAT_VERSION})"
        )
    missing_fields = need - set(config)
    if missing_fields:
        raise ValueError(f"{cfg_file}: config lacks fields {sorted(missing_fields)}")

    header = _read_safetensors_header(weights)
    meta = header.get("__metadata__") or {}
    if meta.get("save_id") != config["save_id"]:
        raise ValueError(
            f"{weights} and {cfg_file} come from different saves "
            f"(save_id {meta.get('save_id')!r} != {config['save_id']!r})"
        )
    try:
        tensors = load_file(str(weights), device="cpu")
    except SafetensorError as exc:
        raise ValueError(f"{weights}: corrupted safetensors file ({exc})") from exc

    module = build_architecture(config["architecture"])
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    shapes = sorted(
        f"{k}: file {tuple(tensors[k].shape)} != model {tuple(expected[k].shape)}"
        for k in set(expected) & set(tensors)
        if tensors[k].shape != expected[k].shape
    )
    if missing or unexpected or shapes:
        raise ValueError(
            f"{weights}: weights do not match the architecture "
            f"{config['architecture']['class']}: missing keys {missing}, "
            f"unexpected keys {unexpected}, shape mismatches {shapes}"
        )
    # adopt the saved dtype first so loading is bit-exact, then cast on request
    saved_dtypes = {t.dtype for t in tensors.values() if t.is_floating_point()}
    if len(saved_dtypes) == 1:
        module = module.to(saved_dtypes.pop())
    module.load_state_dict(tensors, strict=True)
    if dtype is not None:
        module = module.to(dtype)
    if device is not None:
        module = module.to(device)
    return Checkpoint(
        module=module,
        metadata=config["metadata"],
        architecture=config["architecture"],
        lda_opt_version=str(config["lda_opt_version"]),
        path=weights,
    )
