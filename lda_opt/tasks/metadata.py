"""Tasks by name, and rebuilt from a checkpoint's metadata."""

from __future__ import annotations

from .block_cs import BlockCSTask
from .mri import MRITask

__all__ = ["normalize_problem_name", "task_from_metadata"]


def normalize_problem_name(name: str) -> str:
    """``"block_cs"`` / ``"Block-CS"`` -> ``"block-cs"``; ``"mri"`` stays."""
    if not isinstance(name, str):
        msg = f"problem must be a string such as 'block-cs' or 'mri'; got {name!r}"
        raise ValueError(msg)  # noqa: TRY004 - the CLI contract: bad input is a ValueError
    return name.strip().lower().replace("_", "-")


def task_from_metadata(meta: dict) -> BlockCSTask | MRITask:
    """Rebuild the task a checkpoint was trained on from ``metadata["problem"]`` (or from the
    problem dict itself): the sensing matrix or mask is regenerated from its stored seed."""
    if not isinstance(meta, dict):
        msg = f"meta must be a dict; got {type(meta).__name__}"
        raise ValueError(msg)  # noqa: TRY004 - checkpoint content, not an argument
    p = meta.get("problem", meta)
    try:
        kind = normalize_problem_name(p["kind"])
        if kind == "block-cs":
            init = p.get("initializer", {})
            return BlockCSTask(float(p["ratio"]), matrix_seed=int(p.get("matrix_seed", 0)),
                               init_blocks=int(init.get("n_blocks", 4000)), init_size=int(init.get("size", 256)),
                               init_seed=int(init.get("seed", 0)), noise=float(p.get("noise", 0.0)),
                               noise_seed=int(p.get("noise_seed", 0)))
        if kind == "mri":
            return MRITask(float(p["ratio"]), mask=p.get("mask", "radial"), mask_seed=int(p.get("mask_seed", 0)),
                           shape=tuple(int(s) for s in p["shape"]), noise=float(p.get("noise", 0.0)),
                           noise_seed=int(p.get("noise_seed", 0)), noise_model=p.get("noise_model", "kspace"))
    except KeyError as exc:
        raise ValueError(f"problem metadata lacks {exc}") from exc
    raise ValueError(f"problem kind must be 'block-cs' or 'mri'; got {p.get('kind')!r}")
