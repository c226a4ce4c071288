"""Helpers for testing and measuring solvers: a feature map that counts its passes.

:class:`CountedFeatures` wraps a feature map ``q`` so that every forward and every backward
pass is counted where it happens, not where the solver says it happens; the solver cannot
tell it from ``q``.  The evaluation-budget tests (``tests/test_budget.py``) compare its
counts with the Trace's; the benchmarks (``overhead.py``, ``batch.py``, ``race.py``) charge
every competitor by them and replay its passes.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CountedFeatures"]


class _CountBackward(torch.autograd.Function):
    """Identity on ``q(x)`` whose backward records one backward pass of ``q``."""

    @staticmethod
    def forward(ctx, out: torch.Tensor, box: CountedFeatures) -> torch.Tensor:
        ctx.box = box
        return out.view_as(out)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        ctx.box.backward_calls += 1
        ctx.box.backward_rows += grad.shape[0]
        ctx.box.log.append(("B", grad.shape[0]))
        return grad, None


class CountedFeatures(nn.Module):
    """``q`` with pass counters: ``forward_calls`` / ``backward_calls`` count calls of ``q``
    and of its vector-Jacobian product (any backward reaching ``q``'s output, through an
    identity ``autograd.Function`` on it), ``forward_rows`` / ``backward_rows`` the samples
    those calls processed (a batch call on ``b`` rows costs ``b`` sample-passes, whatever the
    solver needs of them); ``log`` lists every pass in order as ``("F" or "B", rows)``."""

    def __init__(self, q: nn.Module) -> None:
        super().__init__()
        self.q = q
        self.reset()

    def reset(self) -> None:
        """Zero the four counters and the log."""
        self.forward_calls = 0
        self.forward_rows = 0
        self.backward_calls = 0
        self.backward_rows = 0
        #: every pass in order: ("F" or "B", rows)
        self.log: list[tuple[str, int]] = []

    def counts(self) -> dict[str, int]:
        """The four counters as a dict."""
        return {"forward_calls": self.forward_calls, "forward_rows": self.forward_rows,
                "backward_calls": self.backward_calls, "backward_rows": self.backward_rows}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.forward_calls += 1
        self.forward_rows += x.shape[0]
        self.log.append(("F", x.shape[0]))
        out = self.q(x)
        return _CountBackward.apply(out, self) if torch.is_grad_enabled() and out.requires_grad else out
