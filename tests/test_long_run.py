"""Long runs hold flat memory: no autograd graph survives an iteration (issue 6, item 5).

Two bounded facts, checked between iterations (in the run's callback) on a tiny learned
problem (4x4 image, ``FeatureCNN(width=2, depth=2)``, float64):

* **saved tensors**: every tensor that autograd saves for a backward pass is tracked (a
  ``saved_tensors_hooks`` pack hook wraps it in an object whose finalizer counts its
  release).  Between two iterations the number still alive is exactly 0: the solver keeps
  a candidate's graph only within the iteration that needs its backward.
* **live tensor memory**: the bytes of every live tensor storage outside the Trace (which
  grows by one record per iteration by design) are the same after the first iterations
  and at the end of the run.

The default test runs 300 iterations of each paper algorithm; the 20,000-iteration run
is marked ``slow`` (``pytest -m slow``).
"""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

import lda_opt as lo
from lda_opt.nets import FeatureCNN, xavier_init_


class _Saved:
    """Holder of one autograd-saved tensor; counts its release."""

    __slots__ = ("__weakref__", "t")

    def __init__(self, t):
        self.t = t


class SavedTensorCounter:
    """``torch.autograd.graph.saved_tensors_hooks`` that count saved tensors still alive."""

    def __init__(self):
        self.packed = 0
        self.released = 0

    def _release(self):
        self.released += 1

    def pack(self, t):
        self.packed += 1
        # a detached alias: holding ``t`` itself would tie a saved output to its own grad_fn
        # in a reference cycle that only the garbage collector breaks
        h = _Saved(t.detach())
        weakref.finalize(h, self._release)
        return h

    @staticmethod
    def unpack(h):
        return h.t

    @property
    def alive(self) -> int:
        return self.packed - self.released

    def hooks(self):
        return torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack)


def _storages_bytes(exclude: set[int]) -> int:
    """Bytes of the distinct storages of every live tensor, except storages in ``exclude``."""
    seen: set[int] = set()
    total = 0
    for o in gc.get_objects():
        if issubclass(type(o), torch.Tensor):  # type(): no attribute access on proxies
            try:
                s = o.untyped_storage()
            except (RuntimeError, NotImplementedError):  # pragma: no cover - meta/sparse
                continue
            key = s.data_ptr()
            if key in seen or key in exclude or s.nbytes() == 0:
                continue
            seen.add(key)
            total += s.nbytes()
    return total


def _trace_storages(trace: lo.Trace) -> set[int]:
    out = set()
    for idx, row in trace._rows:
        out.add(idx.untyped_storage().data_ptr())
        out.update(v.untyped_storage().data_ptr() for v in row.values())
    if trace._cache is not None:
        out.update(v.untyped_storage().data_ptr() for v in trace._cache.values())
    return out


def _problem():
    q = FeatureCNN(in_channels=1, width=2, depth=2)
    xavier_init_(q, generator=torch.Generator().manual_seed(0))
    q = q.double()
    gen = torch.Generator().manual_seed(1)
    y = torch.rand(1, 1, 4, 4, generator=gen, dtype=torch.float64)
    return lo.Problem(lo.LeastSquares(lo.operators.Identity(), y), q, weight=0.05), y.clone()


def _solver(cls, iterations):
    # eps_tol far below anything reachable: the run lasts exactly `iterations` iterations
    kw = {"sigma": 1.0, "eps0": 1e-2, "eps_tol": 1e-200, "max_iter": iterations}
    if cls is lo.MetaLDA:
        kw.update(alpha=0.1, tau=0.1)
    elif cls is lo.ELDA:
        kw.update(alpha=0.25, gamma_u=0.25, alpha_bar=0.5)
    else:
        kw.update(alpha=0.5)
    return cls(**kw)


def _check_flat(cls, iterations, checkpoints, monkeypatch):
    p, x0 = _problem()
    counter = SavedTensorCounter()
    alive, sizes = [], {}
    holder = {}

    # the callback needs the run's Trace (its storages grow by design): catch its creation
    original = lo.algorithms.base.Trace

    def make_trace(b, **initial):  # initial_forward / initial_backward: the start's passes
        holder["trace"] = original(b, **initial)
        return holder["trace"]

    monkeypatch.setattr(lo.algorithms.base, "Trace", make_trace)

    def cb(k, state, rec):
        alive.append(counter.alive)
        if k + 1 in checkpoints:
            gc.collect()
            sizes[k + 1] = _storages_bytes(_trace_storages(holder["trace"]))

    with counter.hooks():
        res = _solver(cls, iterations).run(p, x0, callback=cb)
    assert int(res.iterations[0]) == iterations and res.reason == ["max_iter"]
    assert counter.packed > 10 * iterations  # the hooks did see the graphs being built
    assert max(alive) == 0  # no saved tensor survives an iteration
    first, last = sizes[min(sizes)], sizes[max(sizes)]
    assert last == first, sizes
    return sizes


@pytest.mark.parametrize("cls", [lo.LDA, lo.MetaLDA, lo.ELDA], ids=lambda c: c.name)
def test_memory_flat(cls, monkeypatch):
    _check_flat(cls, 300, {50, 150, 300}, monkeypatch)


@pytest.mark.slow
def test_memory_flat_20k(monkeypatch):
    _check_flat(lo.ELDA, 20_000, {100, 5_000, 10_000, 20_000}, monkeypatch)
