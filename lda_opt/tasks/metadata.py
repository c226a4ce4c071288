"""Tasks by name, rebuilt from a checkpoint's metadata, and moved to another image size."""

from __future__ import annotations

import dataclasses

from .block_cs import BlockCSTask
from .mri import MRITask

__all__ = ["normalize_problem_name", "task_at_shape", "task_from_metadata"]


def normalize_problem_name(name: str) -> str:
    """``"block_cs"`` / ``"Block-CS"`` -> ``"block-cs"``; ``"mri"`` stays."""
    if not isinstance(name, str):
        msg = f"problem must be a string such as 'block-cs' or 'mri'; got {name!r}"
        raise ValueError(msg)  # noqa: TRY004 - the CLI contract: bad input is a ValueError
    return name.strip().lower().replace("_", "-")


_REQUIRED = object()


def task_at_shape(task: BlockCSTask | MRITask, shape) -> BlockCSTask | MRITask:
    """``task``'s sensing model on images of ``shape`` (an int n: n x n, or (H, W)).

    A checkpoint's network is a regularizer ``q``; the forward model belongs to the user's
    images.  An :class:`MRITask` keeps its mask pattern, sampling ratio, seed and noise and
    draws its mask anew at ``shape`` (``lda-opt solve --checkpoint ... --size``); a
    :class:`BlockCSTask` measures 33 x 33 blocks of an image of any size and is returned as
    it is.
    """
    if isinstance(shape, bool) or not isinstance(shape, (int, tuple, list)):
        raise ValueError(f"shape must be an int or a pair (H, W); got {shape!r}")  # noqa: TRY004 - CLI contract
    hw = (shape, shape) if isinstance(shape, int) else tuple(shape)
    if isinstance(task, BlockCSTask):
        return task
    if not isinstance(task, MRITask):
        raise ValueError(f"task must be a BlockCSTask or an MRITask; got {type(task).__name__}")  # noqa: TRY004
    try:
        return dataclasses.replace(task, shape=hw)  # MRITask validates (H, W)
    except ValueError as exc:
        raise ValueError(f"size {hw!r} for this MRI task: {exc}") from None


def task_from_metadata(meta: dict) -> BlockCSTask | MRITask:
    """Rebuild the task a checkpoint was trained on from ``metadata["problem"]`` (or from the
    problem dict itself): the sensing matrix or mask is regenerated from its stored seed
    (:func:`task_at_shape` moves it to another image size)."""
    if not isinstance(meta, dict):
        msg = f"meta must be a dict; got {type(meta).__name__}"
        raise ValueError(msg)  # noqa: TRY004 - checkpoint content, not an argument
    p = meta.get("problem", meta)
    if not isinstance(p, dict):
        raise ValueError(f"problem metadata must be a dict; got {type(p).__name__}")  # noqa: TRY004

    def field(key: str, convert, default=_REQUIRED, within: dict | None = None):
        d = p if within is None else within
        if key not in d:
            if default is _REQUIRED:
                raise ValueError(f"problem metadata lacks {key!r}")
            return default
        try:
            return convert(d[key])
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"problem metadata {key!r}: {d[key]!r} is not valid ({exc})") from exc

    kind = normalize_problem_name(field("kind", str))
    if kind == "block-cs":
        init = field("initializer", dict, {})
        return BlockCSTask(field("ratio", float), matrix_seed=field("matrix_seed", int, 0),
                           init_blocks=field("n_blocks", int, 4000, init), init_size=field("size", int, 256, init),
                           init_seed=field("seed", int, 0, init), noise=field("noise", float, 0.0),
                           noise_seed=field("noise_seed", int, 0))
    if kind == "mri":
        return MRITask(field("ratio", float), mask=field("mask", str, "radial"), mask_seed=field("mask_seed", int, 0),
                       shape=field("shape", lambda s: tuple(int(v) for v in s)), noise=field("noise", float, 0.0),
                       noise_seed=field("noise_seed", int, 0), noise_model=field("noise_model", str, "kspace"))
    raise ValueError(f"problem kind must be 'block-cs' or 'mri'; got {p.get('kind')!r}")
