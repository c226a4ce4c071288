"""The safetensors side of a checkpoint, read by hand before safetensors is called.

Every entry of the JSON header is checked against the file's size (dtype known, shape of
non-negative integers, byte span exactly ``prod(shape) * itemsize``, spans contiguous and
covering the data) so that a lying header is refused with a ``ValueError`` naming the file and
the entry before any tensor is allocated, and a pickle or ``torch.save`` file fails at its first
8 bytes.  Used by :mod:`lda_opt.nets.checkpoint` and by the training state reader.
"""

from __future__ import annotations

import json
import math
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__: list[str] = []  # internal: see lda_opt.nets.checkpoint

_MAX_HEADER = 100_000_000  # safetensors' own limit on the JSON header size


#: the safetensors dtypes a checkpoint may hold, as torch reads them
_DTYPES: dict[str, torch.dtype] = {
    "BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "I16": torch.int16, "U16": torch.uint16,
    "I32": torch.int32, "U32": torch.uint32, "I64": torch.int64, "U64": torch.uint64,
    "F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64,
    "C64": torch.complex64,
}


@dataclass(frozen=True)
class _TensorInfo:
    dtype: torch.dtype
    shape: tuple[int, ...]
    begin: int
    end: int


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _read_safetensors_header(weights: Path) -> tuple[dict[str, _TensorInfo], dict[str, str]]:
    """The tensors ``{name: (dtype, shape, data offsets)}`` and the ``__metadata__`` of the
    safetensors file ``weights``, validated from its first ``8 + n`` bytes alone.

    Guarantees, before safetensors (or anything else) allocates a tensor: the header is a
    JSON object of at most 100 MB; every entry has exactly ``dtype`` (one of
    :data:`_DTYPES`), ``shape`` (non-negative integers) and ``data_offsets``; each entry's
    byte span is exactly ``prod(shape) * itemsize`` (exact integer arithmetic, so a lying
    shape cannot overflow); the spans tile the data section without gap or overlap; and the
    header plus data is exactly the file size.  So the tensors fit in the file, and loading
    allocates at most the file's size.  Anything else is a ``ValueError`` naming the file
    (and the entry).  A pickle or a ``torch.save`` zip fails here, at the first 8 bytes.
    """
    try:
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
    except OSError as exc:
        raise ValueError(f"{weights}: cannot read the weight file ({exc.strerror or exc})") from None
    if len(raw) != n:
        raise ValueError(f"{weights}: truncated while reading (header length {n}, read {len(raw)})")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{weights}: corrupted safetensors header ({type(exc).__name__}: {exc})") from None
    if not isinstance(header, dict):  # file content, not an argument
        msg = f"{weights}: corrupted safetensors header (not a JSON object)"
        raise ValueError(msg)  # noqa: TRY004
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise ValueError(f"{weights}: corrupted safetensors header (__metadata__ must map str to str)")
    infos: dict[str, _TensorInfo] = {}
    for key, info in header.items():
        bad = f"{weights}: corrupted safetensors entry {key!r}"
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"{bad}: needs exactly the fields dtype, shape, data_offsets")
        dt, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dt, str) or dt not in _DTYPES:
            raise ValueError(f"{bad}: dtype {dt!r} is not one of {sorted(_DTYPES)}")
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise ValueError(f"{bad}: shape {shape!r} is not a list of non-negative integers")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_count(o) for o in offsets)
                or offsets[0] > offsets[1]):
            raise ValueError(f"{bad}: data_offsets {offsets!r} is not [begin, end] with 0 <= begin <= end")
        nbytes = math.prod(shape) * _DTYPES[dt].itemsize
        if offsets[1] - offsets[0] != nbytes:
            raise ValueError(
                f"{bad}: shape {shape} of {dt} needs {nbytes} bytes, data_offsets {offsets} "
                f"span {offsets[1] - offsets[0]}"
            )
        infos[key] = _TensorInfo(_DTYPES[dt], tuple(shape), offsets[0], offsets[1])
    end = 0
    for key, info in sorted(infos.items(), key=lambda kv: (kv[1].begin, kv[1].end)):
        if info.begin != end:
            what = "overlaps the previous tensor" if info.begin < end else f"leaves a gap after byte {end}"
            raise ValueError(f"{weights}: corrupted safetensors entry {key!r}: data_offsets {what}")
        end = info.end
    if 8 + n + end != size:
        raise ValueError(
            f"{weights}: truncated or corrupted: header describes {8 + n + end} bytes, "
            f"file has {size}"
        )
    return infos, meta


def _check_regular_file(f: Path) -> None:
    """``FileNotFoundError`` if ``f`` does not exist, ``ValueError`` if it is a directory or
    not a regular file or cannot be examined (a name too long, a permission)."""
    try:
        st = os.stat(f)
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(f"checkpoint file not found: {f}") from None
    except OSError as exc:
        raise ValueError(f"checkpoint file {f}: cannot examine it ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ValueError(f"checkpoint path {f} is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"checkpoint path {f} is not a regular file")
