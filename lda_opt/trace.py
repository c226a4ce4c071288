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
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import torch

__all__ = ["EXTRA_FIELDS", "FIELDS", "Trace"]

FIELDS = ("phi_eps", "phi", "grad_norm", "eps", "branch", "step", "linesearch", "forward",
          "backward", "seconds")
EXTRA_FIELDS = ("eps_next", "phi_eps_prev", "grad_norm_prev", "dist", "capped")
ALL_FIELDS = FIELDS + EXTRA_FIELDS
_INT_FIELDS = {"linesearch", "forward", "backward", "capped"}
_BRANCH = {0: "u", 1: "v", -1: "-"}
_BRANCH_INV = {v: k for k, v in _BRANCH.items()}


class Trace:
    """Rows of per-sample records; ``len(trace)`` is the number of iterations K."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = int(batch_size)
        self._rows: list[tuple[torch.Tensor, dict[str, torch.Tensor]]] = []
        self._cache: dict[str, torch.Tensor] | None = None

    def append(self, index: torch.Tensor, record: dict[str, torch.Tensor]) -> None:
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
    def from_csv(cls, path: str | Path, batch_size: int | None = None) -> Trace:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        missing = {"iteration", "sample", *ALL_FIELDS} - set(rows[0].keys() if rows else ALL_FIELDS)
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        B = batch_size if batch_size is not None else 1 + max((int(r["sample"]) for r in rows), default=0)
        trace = cls(B)
        by_iter: dict[int, list[dict[str, str]]] = {}
        for r in rows:
            by_iter.setdefault(int(r["iteration"]), []).append(r)
        for k in range(len(by_iter)):
            if k not in by_iter:
                raise ValueError(f"{path}: iteration {k} is missing")
            group = by_iter[k]
            idx = torch.tensor([int(r["sample"]) for r in group])
            rec = {}
            for name in ALL_FIELDS:
                if name == "branch":
                    rec[name] = torch.tensor([float(_BRANCH_INV[r[name]]) for r in group], dtype=torch.float64)
                else:  # float64: the CSV holds repr(float), exact in double precision
                    rec[name] = torch.tensor([float(r[name]) for r in group], dtype=torch.float64)
            trace.append(idx, rec)
        return trace

    def to_json(self, path: str | Path | None = None) -> dict:
        """A JSON-able dict ``{field: K x B nested lists (null where inactive)}``."""
        d = self.as_dict()
        act = d.pop("active")
        out: dict = {"batch_size": self.batch_size, "iterations": len(self)}
        for k, v in d.items():
            out[k] = [[(float(v[i, b]) if act[i, b] else None) for b in range(self.batch_size)]
                      for i in range(v.shape[0])]
        if path is not None:
            Path(path).write_text(json.dumps(out))
        return out
