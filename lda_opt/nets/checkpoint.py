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

A checkpoint may depend on another one: a U-LDA Step-2 adapter h^ is only meaningful with
the frozen feature extractor g it was trained on (U-LDA eq. 3.3).  Its metadata then holds
``{"path": ..., "sha256": ...}`` of g's weight file (:func:`checkpoint_reference`), and
:func:`load_composed` rebuilds ``Composed(g, h)`` only when g's file has that digest.

Loading uses ``json`` and ``safetensors`` only -- never ``torch.load`` or ``pickle`` -- so
a hostile file cannot execute code; it is rejected with ``ValueError``.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lda_opt._atomic import atomic_write, atomic_write_text
from lda_opt.nets.activation import SmoothReLU
from lda_opt.nets.cnn import Adapter, Composed, FeatureCNN
from lda_opt.nets.conv import ComplexConv2d
from lda_opt.nets.safetensors_header import (
    _check_regular_file,
    _read_safetensors_header,
)

__all__ = [
    "ARCHITECTURES",
    "Checkpoint",
    "architecture_of",
    "build_architecture",
    "check_reference",
    "checkpoint_reference",
    "config_path",
    "file_sha256",
    "load_checkpoint",
    "load_composed",
    "read_checkpoint_config",
    "register_architecture",
    "save_checkpoint",
]

FORMAT = "lda_opt.checkpoint"
FORMAT_VERSION = 1


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
    :func:`architecture_of` and rebuilt with :func:`build_architecture`).  ``from_config``
    must also work under ``with torch.device("meta")``: :func:`load_checkpoint` first builds
    the declared architecture there to compare its shapes with the file before allocating.
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
    atomic_write(weights, lambda tmp: save_file(tensors, tmp, metadata=header))
    atomic_write_text(cfg_file, text + "\n")
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


def _expected_state(spec: Any) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """``{key: (shape, dtype)}`` of the state dict of :func:`build_architecture(spec)
    <build_architecture>`, built on the meta device: no memory is allocated, whatever
    sizes the spec declares."""
    try:
        with torch.device("meta"):
            module = build_architecture(spec)
            return {k: (tuple(v.shape), v.dtype) for k, v in module.state_dict().items()}
    except ValueError:
        raise
    except RecursionError:
        raise ValueError("architecture spec is nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - a hostile config may make a constructor fail any way
        raise ValueError(f"cannot build the architecture {spec!r:.200}: {type(exc).__name__}: {exc}") from None


def _same_kind(a: torch.dtype, b: torch.dtype) -> bool:
    """Whether a saved tensor of dtype ``a`` may fill a model tensor of dtype ``b``: both
    floating (any width: the module adopts the saved one), or the same dtype."""
    return (a.is_floating_point and b.is_floating_point) or a == b


def read_checkpoint_config(path: str | os.PathLike) -> dict:
    """The JSON config of the checkpoint ``path`` (``*.safetensors``), validated: both files
    exist and are regular files, and the config is an lda_opt checkpoint config of this
    format version with every field.  Reads only the config (``json``), never the weights.

    Raises:
        TypeError: ``path`` is not a str or ``os.PathLike``.
        FileNotFoundError: a file is missing.
        ValueError: a path with a NUL byte, not ending in ``.safetensors``, that is a
            directory, not a regular file or unreadable; a config that is not UTF-8 JSON
            (or nested too deeply), of another format or version, or lacking fields.
    """
    name = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
    if not isinstance(name, str):
        raise TypeError(f"path must be a str or an os.PathLike of a str, got {type(path).__name__}")
    if "\0" in name:
        raise ValueError(f"path contains a NUL byte: {name!r}")
    weights = Path(name)
    cfg_file = config_path(weights)
    for f in (weights, cfg_file):
        _check_regular_file(f)
    try:
        config = json.loads(cfg_file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{cfg_file}: cannot read the checkpoint config ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{cfg_file}: corrupted checkpoint config ({type(exc).__name__}: {exc})") from None
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
    return config


def _check_same_save(weights: Path, cfg_file: Path, meta: dict, config: dict) -> None:
    """Refuse a weight file whose header ``save_id`` is not the config's."""
    if meta.get("save_id") != config["save_id"]:
        raise ValueError(
            f"{weights} and {cfg_file} come from different saves "
            f"(save_id {meta.get('save_id')!r} != {config['save_id']!r})"
        )


def _check_header_matches(weights: Path, architecture: dict, infos: dict) -> None:
    """Compare the header's tensors with the architecture the config declares, before anything
    is allocated (a config that lies about the sizes costs nothing); every missing, unexpected,
    mis-shaped and wrongly typed key is listed."""
    expected = _expected_state(architecture)
    missing = sorted(set(expected) - set(infos))
    unexpected = sorted(set(infos) - set(expected))
    shapes = sorted(
        f"{k}: file {infos[k].shape} != model {expected[k][0]}"
        for k in set(expected) & set(infos)
        if infos[k].shape != expected[k][0]
    )
    dtypes = sorted(
        f"{k}: file {infos[k].dtype} != model {expected[k][1]}"
        for k in set(expected) & set(infos)
        if not _same_kind(infos[k].dtype, expected[k][1])
    )
    if missing or unexpected or shapes or dtypes:
        raise ValueError(
            f"{weights}: weights do not match the architecture "
            f"{architecture['class']}: missing keys {missing}, "
            f"unexpected keys {unexpected}, shape mismatches {shapes}"
            + (f", dtype mismatches {dtypes}" if dtypes else "")
        )


def _load_tensors(weights: Path, infos: dict) -> dict[str, torch.Tensor]:
    """The file's tensors on the CPU, refused if they are not the ones its header declared."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{weights}: corrupted safetensors file ({exc})") from None
    if {k: (tuple(t.shape), t.dtype) for k, t in tensors.items()} != {
            k: (i.shape, i.dtype) for k, i in infos.items()}:  # the file changed since its header was read
        raise ValueError(f"{weights}: the file changed while it was being loaded")
    return tensors


def _build_loaded(architecture: dict, cfg_file: Path, tensors: dict[str, torch.Tensor],
                  dtype: torch.dtype | None, device: str | torch.device | None) -> nn.Module:
    """Build ``architecture``, load ``tensors`` bit-exactly (strict), then cast / move on request."""
    try:
        module = build_architecture(architecture)
    except RecursionError:
        raise ValueError(f"{cfg_file}: architecture spec is nested too deeply") from None
    # adopt the saved dtype first so loading is bit-exact, then cast on request
    saved_dtypes = {t.dtype for t in tensors.values() if t.is_floating_point()}
    if len(saved_dtypes) == 1:
        module = module.to(saved_dtypes.pop())
    module.load_state_dict(tensors, strict=True)
    if dtype is not None:
        module = module.to(dtype)
    if device is not None:
        module = module.to(device)
    return module


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
        TypeError: ``path`` is not a str or ``os.PathLike``.
        FileNotFoundError: a file is missing.
        ValueError: everything :func:`read_checkpoint_config` refuses; not a
            safetensors file, truncated/corrupted file, unknown format or architecture,
            config and weights from different saves, or missing / unexpected / mis-shaped /
            wrongly typed weight keys (all listed).

    Hostile files: the weight file's header is validated on its own bytes first (see
    :func:`_read_safetensors_header`: every declared tensor fits in the file), and the
    declared architecture is built on the meta device and compared with it, so nothing is
    allocated beyond the file's size before a lie is refused; no code in the files runs
    (``json`` and ``safetensors`` only, never ``pickle``/``torch.load``).
    """
    if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
        raise ValueError(f"dtype must be a floating torch.dtype or None, got {dtype!r}")
    config = read_checkpoint_config(path)
    weights = Path(path)
    cfg_file = config_path(weights)

    infos, meta = _read_safetensors_header(weights)
    _check_same_save(weights, cfg_file, meta, config)
    _check_header_matches(weights, config["architecture"], infos)
    tensors = _load_tensors(weights, infos)
    module = _build_loaded(config["architecture"], cfg_file, tensors, dtype, device)
    return Checkpoint(
        module=module,
        metadata=config["metadata"],
        architecture=config["architecture"],
        lda_opt_version=str(config["lda_opt_version"]),
        path=weights,
    )


# ---------------------------------------------------------------------------------------
# references between checkpoints (U-LDA Step 2: an adapter and the frozen g it was trained on)
# ---------------------------------------------------------------------------------------
def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 hex digest of the file ``path`` (read in 1 MiB chunks)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checkpoint_reference(path: str | os.PathLike, relative_to: str | os.PathLike | None = None) -> dict:
    """``{"path": ..., "sha256": ...}`` naming the checkpoint weight file ``path``: its path
    (relative to the directory ``relative_to`` when given, else absolute) and the SHA-256 of
    its bytes.  The weight file's header holds the ``save_id`` of its JSON config, so the
    digest pins both files."""
    p = Path(path)
    read_checkpoint_config(p)  # a complete checkpoint (both files, this format)
    name = os.path.relpath(p.resolve(), Path(relative_to).resolve()) if relative_to is not None else str(p.resolve())
    return {"path": name, "sha256": file_sha256(p)}


def check_reference(reference: Any, path: str | os.PathLike, who: str) -> None:
    """Refuse (``ValueError``) the file ``path`` unless its SHA-256 is the one ``reference``
    (:func:`checkpoint_reference`) recorded; ``who`` names the dependent checkpoint."""
    if not isinstance(reference, dict) or not isinstance(reference.get("sha256"), str):
        msg = f"{who}: the reference to its feature extractor is missing or malformed: {reference!r}"
        raise ValueError(msg)  # noqa: TRY004 - bad file content, not a bad argument
    digest = file_sha256(path)
    if digest != reference["sha256"]:
        raise ValueError(f"{who} was trained on the feature extractor {reference.get('path')!r} (sha256 "
                         f"{reference['sha256']}); {str(path)!r} has sha256 {digest}: it is another g, refusing "
                         "to combine them")


def load_composed(path: str | os.PathLike, g_path: str | os.PathLike | None = None, *,
                  dtype: torch.dtype | None = None) -> Checkpoint:
    """The adapter checkpoint ``path`` composed with the feature extractor it references:
    ``Composed(g, h)`` (U-LDA q = h o g).  The adapter's metadata must hold ``"g":
    {"path", "sha256"}``; g is read from ``g_path`` (default: the recorded path, relative to
    the adapter's directory when not absolute) and refused with ``ValueError`` unless its
    weight file has the recorded digest.  The result's ``metadata`` is ``{"adapter": ...,
    "g": ...}``, the two checkpoints' metadata."""
    adapter = load_checkpoint(path, dtype=dtype)
    meta = adapter.metadata
    ref = meta.get("g") if isinstance(meta, dict) else None
    if not isinstance(ref, dict) or not isinstance(ref.get("path"), str):
        msg = f"{path}: not an adapter checkpoint (its metadata has no 'g' reference)"
        raise ValueError(msg)  # noqa: TRY004 - bad file content, not a bad argument
    if g_path is None:
        g_path = Path(ref["path"])
        if not g_path.is_absolute():
            g_path = Path(path).parent / g_path
    check_reference(ref, g_path, f"the adapter {str(path)!r}")
    g = load_checkpoint(g_path, dtype=dtype)
    module = Composed(g.module, adapter.module)
    return Checkpoint(module=module, metadata={"adapter": meta, "g": g.metadata},
                      architecture=architecture_of(module), lda_opt_version=adapter.lda_opt_version,
                      path=Path(path))
