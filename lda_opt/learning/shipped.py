"""Loading trained LDA-Nets and finding the checkpoints shipped with the package.

The shipped checkpoints live in ``lda_opt/checkpoints/`` (``NAME.safetensors`` +
``NAME.json``, with the training config ``NAME.config.json``); ``make checkpoints``
retrains them.  :func:`shipped_checkpoint` picks one by problem, ratio and mask.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ..nets import load_checkpoint
from ..tasks import normalize_problem_name
from .net import LDANet

__all__ = ["CHECKPOINT_DIR", "load_lda_net", "shipped_checkpoint", "shipped_checkpoints"]

#: where the shipped checkpoints are installed
CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "checkpoints"


def _describe(meta: dict) -> tuple[str, float, str | None]:
    p = meta["problem"]
    return normalize_problem_name(p["kind"]), float(p["ratio"]), p.get("mask")


def shipped_checkpoints(directory: str | os.PathLike | None = None) -> list[tuple[str, float, str | None, Path]]:
    """``[(problem, ratio, mask, path), ...]`` of the LDA-Net checkpoints in ``directory``
    (default :data:`CHECKPOINT_DIR`), sorted."""
    d = Path(directory) if directory is not None else CHECKPOINT_DIR
    out = []
    if not d.is_dir():
        return out
    for js in sorted(d.glob("*.json")):
        weights = js.with_suffix(".safetensors")
        if not weights.is_file():
            continue  # training configs (NAME.config.json) and stray files
        try:
            meta = json.loads(js.read_text(encoding="utf-8"))["metadata"]
            if meta.get("kind") != "lda-net":
                continue
            prob, ratio, mask = _describe(meta)
        except (KeyError, TypeError, ValueError, json.JSONDecodeError):
            continue
        out.append((prob, ratio, mask, weights))
    return sorted(out, key=lambda t: (t[0], t[1], t[2] or "", str(t[3])))


def shipped_checkpoint(problem: str, ratio: float, mask: str | None = None,
                       directory: str | os.PathLike | None = None) -> Path:
    """The shipped checkpoint (``.safetensors`` path) trained for ``problem`` (``"block-cs"``
    or ``"mri"``; ``_`` and ``-`` alike), sampling ``ratio`` (matched within 1e-6) and k-space
    ``mask`` (``None`` for block CS, e.g. ``"radial"`` for MRI; ``None`` for MRI matches any
    mask when exactly one fits).

    Raises ``ValueError`` listing what is available when nothing matches.
    """
    prob = normalize_problem_name(problem)
    try:
        r = float(ratio)
    except (TypeError, ValueError):
        raise ValueError(f"ratio must be a number in (0, 1); got {ratio!r}") from None
    if not (math.isfinite(r) and 0 < r < 1):
        raise ValueError(f"ratio must be in (0, 1); got {ratio!r}")
    if mask is not None and not isinstance(mask, str):
        raise ValueError(f"mask must be a string or None; got {mask!r}")
    mask_n = None if mask is None else mask.strip().lower().replace("-", "_")
    avail = shipped_checkpoints(directory)
    hits = [p for (pr, ra, ma, p) in avail
            if pr == prob and abs(ra - r) <= 1e-6 and (ma == mask_n or (mask_n is None and prob != "block-cs"))]
    if len(hits) == 1:
        return hits[0]
    listing = ", ".join(f"(problem={pr!r}, ratio={ra:g}, mask={ma!r})" for pr, ra, ma, _ in avail) or "none"
    what = "several match" if hits else "none matches"
    raise ValueError(
        f"no unique shipped checkpoint for problem={prob!r}, ratio={r:g}, mask={mask_n!r} ({what}); "
        f"available: {listing}"
    )


def load_lda_net(path: str | os.PathLike, device=None) -> LDANet:
    """The trained :class:`LDANet` of a checkpoint (``.safetensors`` path, or ``"shipped:..."``
    is not accepted here: use :func:`shipped_checkpoint`), in eval mode, with its metadata as
    ``net.checkpoint_metadata``."""
    ck = load_checkpoint(path, device=device)
    meta = ck.metadata
    if not isinstance(meta, dict) or meta.get("kind") != "lda-net":
        raise ValueError(f"{path} is not an LDA-Net checkpoint (metadata kind != 'lda-net')")
    net = LDANet.from_parts(ck.module, meta)
    if device is not None:
        net = net.to(device)
    net.eval()
    net.checkpoint_metadata = meta
    return net
