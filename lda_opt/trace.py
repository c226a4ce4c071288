"""Per-iteration, per-sample records of a run.

Iteration ``k`` of sample ``b`` (``x_k -> x_{k+1}`` at smoothing level ``eps_k``) records:

============== =====================================================================
field           meaning
============== =====================================================================
phi_eps         ``phi_{eps_k}(x_{k+1})``
phi             ``phi(x_{k+1})`` (exact nonsmooth objective)
grad_norm       ``||grad phi_{eps_k}(x_{k+1})||`` (the reduction test quantity)
eps             ``eps_k``
branch          ``0`` if ``x_{k+1} = u_{k+1}``, ``1`` if ``v_{k+1}`` (``-1``: no move)
step            the step size of the accepted candidate (``alpha`` for u, the
                accepted line-search step for v)
linesearch      the number of ``phi_eps(v)`` evaluations in the iteration
forward         forward passes of ``q`` in the iteration
backward        backward passes (vector-Jacobian products) of ``q``
seconds         wall time of the iteration (callback excluded)
eps_next        ``eps_{k+1}`` (``< eps`` when the iteration reduced ``eps``)
phi_eps_prev    ``phi_{eps_k}(x_k)``
grad_norm_prev  ``||grad phi_{eps_k}(x_k)||``
dist            ``||x_{k+1} - x_k||``
capped          1 when the line search hit its cap (the sample then stops)
============== =====================================================================

:meth:`Trace.as_dict` gives float64 tensors of shape (K, B).  A sample that has stopped is
frozen: its later entries are NaN and ``active`` is False (nothing is invented for it).
The CSV holds one row per (iteration, sample) that ran, with columns ``iteration``,
``sample`` and the fields above (``branch`` written as ``u``/``v``).

Passes before the first row.  Evaluating the start ``x_0`` (``Solver.init_state``: ``q(x_0)``
and ``grad phi_{eps_0}(x_0)``) costs one forward and one backward pass of ``q`` that belong to
no iteration; a warm start (``Solver.run(..., state=s)``) spends none and carries the passes
``s`` records (what reaching ``s`` cost, e.g. an unrolled network's phases).  The Trace holds
them per sample as :attr:`Trace.initial_forward` / :attr:`Trace.initial_backward`, so that
:meth:`Trace.totals` (initial passes plus every row's) equals the solver's
``Result.forward`` / ``Result.backward`` and the count of an independent wrapper around
``q`` (:class:`lda_opt.testing.CountedFeatures`).  :meth:`Trace.to_json` writes them; the CSV
holds only the iteration rows (``lda-opt solve`` writes the initial passes into
``result.json``, ``per_sample.passes_initial``).

:class:`IterationRecord` is the typed record of one iteration that
:meth:`~lda_opt.algorithms.Solver.iterate` returns and :meth:`Trace.append` stores; it reads
like a mapping (``record["eps"]``) as well as by attribute (``record.eps``).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import torch

__all__ = ["EXTRA_FIELDS", "FIELDS", "IterationRecord", "Trace"]

FIELDS = ("phi_eps", "phi", "grad_norm", "eps", "branch", "step", "linesearch", "forward",
          "backward", "seconds")
EXTRA_FIELDS = ("eps_next", "phi_eps_prev", "grad_norm_prev", "dist", "capped")
ALL_FIELDS = FIELDS + EXTRA_FIELDS
_INT_FIELDS = {"linesearch", "forward", "backward", "capped"}
_BRANCH = {0: "u", 1: "v", -1: "-"}
_BRANCH_INV = {v: k for k, v in _BRANCH.items()}


@dataclass(frozen=True, eq=False)
class IterationRecord(Mapping):
    """One iteration ``x_k -> x_{k+1}`` of the samples that ran it: every field is a tensor
    of shape (b,) (the table of the module docstring gives their meaning).  A frozen record:
    :func:`dataclasses.replace` gives a changed copy.  Read-only mapping access
    (``record["eps"]``, ``dict(record)``) serves consumers written for the plain dict."""

    phi_eps: torch.Tensor
    phi: torch.Tensor
    grad_norm: torch.Tensor
    eps: torch.Tensor
    branch: torch.Tensor
    step: torch.Tensor
    linesearch: torch.Tensor
    forward: torch.Tensor
    backward: torch.Tensor
    seconds: torch.Tensor
    eps_next: torch.Tensor
    phi_eps_prev: torch.Tensor
    grad_norm_prev: torch.Tensor
    dist: torch.Tensor
    capped: torch.Tensor

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in ALL_FIELDS:
            raise KeyError(name)
        return getattr(self, name)

    def __iter__(self) -> Iterator[str]:
        return iter(ALL_FIELDS)

    def __len__(self) -> int:
        return len(ALL_FIELDS)


assert tuple(f.name for f in fields(IterationRecord)) == ALL_FIELDS


def _parse_row(path, line: int, row: dict) -> tuple[int, int, dict[str, float]]:
    """(iteration, sample, field values) of one :meth:`Trace.to_csv` row; a short row, an
    unknown branch label or a non-number is a ValueError naming the file and the line."""
    if None in row or any(v is None for v in row.values()):
        raise ValueError(f"{path}, line {line}: the row has {'more' if None in row else 'fewer'} columns than the header")
    try:
        k, b = int(row["iteration"]), int(row["sample"])
        vals = {name: float(_BRANCH_INV[row[name]]) if name == "branch" else float(row[name])
                for name in ALL_FIELDS}
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{path}, line {line}: not a Trace row ({type(exc).__name__}: {exc})") from exc
    if k < 0 or b < 0:
        raise ValueError(f"{path}, line {line}: iteration and sample must be >= 0; got {k}, {b}")
    return k, b, vals


class Trace:
    """Rows of per-sample records; ``len(trace)`` is the number of iterations K."""

    def __init__(self, batch_size: int, initial_forward=None, initial_backward=None) -> None:
        """``initial_forward`` / ``initial_backward``: the passes of ``q`` spent before the
        first row, per sample (an int or a (B,) sequence; default 0)."""
        self.batch_size = int(batch_size)
        self.initial_forward = self._initial("initial_forward", initial_forward)
        self.initial_backward = self._initial("initial_backward", initial_backward)
        self._rows: list[tuple[torch.Tensor, dict[str, torch.Tensor]]] = []
        self._cache: dict[str, torch.Tensor] | None = None

    def _initial(self, name: str, v) -> torch.Tensor:
        t = torch.as_tensor(0 if v is None else v).detach().to("cpu")
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"{name} must hold integers (passes of q); got {t.dtype}")
        t = t.to(torch.long).reshape(-1).expand(self.batch_size) if t.numel() == 1 else t.to(torch.long)
        if t.shape != (self.batch_size,):
            raise ValueError(f"{name} must hold one count per sample ({self.batch_size}); got shape {tuple(t.shape)}")
        if bool((t < 0).any()):
            raise ValueError(f"{name} must be >= 0; got {t.tolist()}")
        return t.clone()

    def totals(self) -> dict[str, torch.Tensor]:
        """Passes of ``q`` per sample over the whole run: the initial passes plus every
        row's, as (B,) long tensors ``{"forward", "backward"}`` (equal to the solver's
        ``Result.forward`` / ``Result.backward``)."""
        out = {"forward": self.initial_forward.clone(), "backward": self.initial_backward.clone()}
        for idx, row in self._rows:
            for k, total in out.items():
                total.index_add_(0, idx, row[k].to(torch.long))
        return out

    def append(self, index: torch.Tensor, record: IterationRecord | Mapping[str, torch.Tensor]) -> None:
        """Add iteration ``len(self)`` for the samples ``index`` (each field of shape (b,))."""
        missing = set(ALL_FIELDS) - set(record)
        if missing:
            raise ValueError(f"trace record is missing fields {sorted(missing)}")
        idx = index.detach().to("cpu", torch.long)
        row = {k: torch.as_tensor(record[k]).detach().to("cpu", torch.float64).reshape(-1).expand(idx.numel()).clone()
               for k in ALL_FIELDS}
        self._rows.append((idx, row))
        self._cache = None

    def __len__(self) -> int:
        return len(self._rows)

    def as_dict(self) -> dict[str, torch.Tensor]:
        """Every field as a float64 tensor of shape (K, B), plus ``active`` (bool)."""
        if self._cache is None:
            K, B = len(self._rows), self.batch_size
            out = {k: torch.full((K, B), math.nan, dtype=torch.float64) for k in ALL_FIELDS}
            active = torch.zeros((K, B), dtype=torch.bool)
            for k, (idx, row) in enumerate(self._rows):
                active[k, idx] = True
                for name, v in row.items():
                    out[name][k, idx] = v
            out["active"] = active
            self._cache = out
        return {k: v.clone() for k, v in self._cache.items()}

    def sample(self, b: int) -> dict[str, torch.Tensor]:
        """The records of sample ``b`` as 1-D tensors over its own iterations."""
        d = self.as_dict()
        act = d.pop("active")[:, b]
        return {k: v[act, b] for k, v in d.items()}

    # -- persistence ----------------------------------------------------------------------
    def to_csv(self, path: str | Path) -> None:
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(("iteration", "sample") + ALL_FIELDS)
            for k, (idx, row) in enumerate(self._rows):
                for j, b in enumerate(idx.tolist()):
                    vals = []
                    for name in ALL_FIELDS:
                        v = float(row[name][j])
                        if name == "branch":
                            vals.append(_BRANCH[int(v)])
                        elif name in _INT_FIELDS:
                            vals.append(int(v))
                        else:
                            vals.append(repr(v))
                    w.writerow([k, b] + vals)

    @classmethod
    def from_csv(cls, path: str | Path, batch_size: int | None = None, initial_forward=None,
                 initial_backward=None) -> Trace:
        """The Trace of a :meth:`to_csv` file; the CSV holds no initial passes, give them as
        ``initial_forward`` / ``initial_backward`` (default 0)."""
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        missing = {"iteration", "sample", *ALL_FIELDS} - set(rows[0].keys() if rows else ALL_FIELDS)
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        parsed = [_parse_row(path, n, r) for n, r in enumerate(rows, start=2)]  # line 1: header
        B = batch_size if batch_size is not None else 1 + max((b for _, b, _ in parsed), default=0)
        trace = cls(B, initial_forward, initial_backward)
        by_iter: dict[int, list[tuple[int, dict[str, float]]]] = {}
        for k, b, vals in parsed:
            if b >= B:
                raise ValueError(f"{path}: sample {b} is outside the batch of {B}")
            by_iter.setdefault(k, []).append((b, vals))
        for k in range(len(by_iter)):
            if k not in by_iter:
                raise ValueError(f"{path}: iteration {k} is missing")
            group = by_iter[k]
            samples = [b for b, _ in group]
            if len(set(samples)) != len(samples):
                raise ValueError(f"{path}: iteration {k} lists a sample more than once")
            idx = torch.tensor(samples)
            # float64: the CSV holds repr(float), exact in double precision
            rec = {name: torch.tensor([v[name] for _, v in group], dtype=torch.float64) for name in ALL_FIELDS}
            trace.append(idx, rec)
        return trace

    def to_json(self, path: str | Path | None = None) -> dict:
        """A JSON-able dict ``{field: K x B nested lists (null where inactive)}``, with the
        per-sample ``initial_forward`` / ``initial_backward`` lists."""
        d = self.as_dict()
        act = d.pop("active")
        out: dict = {"batch_size": self.batch_size, "iterations": len(self),
                     "initial_forward": self.initial_forward.tolist(),
                     "initial_backward": self.initial_backward.tolist()}
        for k, v in d.items():
            out[k] = [[(float(v[i, b]) if act[i, b] else None) for b in range(self.batch_size)]
                      for i in range(v.shape[0])]
        if path is not None:
            Path(path).write_text(json.dumps(out))
        return out
