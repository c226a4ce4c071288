"""The iteration-complexity figure, drawn from a ``complexity.json`` dict alone.
Overview: :mod:`lda_opt.experiments.complexity`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


# ---------------------------------------------------------------------------------------
# the figure
# ---------------------------------------------------------------------------------------
def plot_complexity(
    result: dict[str, Any],
    path: str | Path | None = None,
    *,
    axes=None,
    title: str | None = None,
):
    """Two panels drawn from a ``complexity.json`` dict alone.

    Left: log-log ``N`` against ``1/eps_tol`` -- measured points (open triangles: censored by
    ``max_iter``), the fitted line with its CI, the slope-3 reference through the point at the
    largest ``eps_tol``, the certified bound curve (``bound_curve``) and, for LDA, the Thm 3.5
    reference.  Right: segment lengths ``t_{l+1} - t_l`` against ``l`` (open marker: the
    unfinished last segment, a lower bound) with the segment bound.  ``axes``: two matplotlib
    axes to draw into (else a new figure, saved to ``path``).  Returns the axes.
    """
    from lda_opt._plotting import pyplot

    plt = pyplot()

    fig = None
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ax, ax2 = axes
    _draw_iterations(ax, result)
    _draw_segments(ax2, result["segments"], result["bound"]["segment_label"])
    if title is None:
        c = result["config"]
        title = (
            f"{c['algorithm']} on {c['problem']} ({c['size']}x{c['size']}, kappa={c['weight']:g})"
        )
    ax.set_title(title, fontsize=9)
    ax2.set_title("segment lengths (run at the smallest eps_tol)", fontsize=9)
    if fig is not None:
        fig.subplots_adjust(left=0.07, right=0.98, bottom=0.12, top=0.92, wspace=0.22)
        if path is not None:
            fig.savefig(path, dpi=110)
        plt.close(fig)
    return axes


def _draw_iterations(ax, result: dict[str, Any]) -> None:
    """The left panel: measured ``N`` (censored points open), the fit with its CI, the
    slope-3 reference, the certified bound curve and, where recorded, the reference curve."""
    pts = result["points"]
    inv = np.array([1.0 / p["eps_tol"] for p in pts])
    N = np.array([p["iterations"] for p in pts], dtype=float)
    conv = np.array([p["converged"] for p in pts])
    ax.loglog(inv[conv], N[conv], "o", color="C0", label="measured N")
    if (~conv).any():
        ax.loglog(
            inv[~conv],
            N[~conv],
            "v",
            color="C0",
            mfc="none",
            label="censored at max_iter (N > shown)",
        )
    grid = np.geomspace(inv.min(), inv.max(), 60)
    if result["exponent"] is not None:
        b, a = result["exponent"], result["fit"]["log_c"]
        lo, hi = result["ci"]
        ax.loglog(
            grid,
            np.exp(a) * grid**b,
            "-",
            color="C0",
            label=f"fit b = {b:.2f}, 95% CI [{lo:.2f}, {hi:.2f}]",
        )
    anchor = int(np.argmin(inv))
    ax.loglog(grid, N[anchor] * (grid / inv[anchor]) ** 3, ":", color="gray", label="slope 3")
    curve = result["bound_curve"]
    cinv = 1.0 / np.asarray(curve["eps_tol"])
    ax.loglog(
        cinv,
        curve["bound"],
        "-",
        color="C3",
        lw=1,
        label=f"certified bound ({result['bound']['label']})",
    )
    if curve.get("reference") is not None:
        ax.loglog(
            cinv,
            curve["reference"],
            "--",
            color="C1",
            lw=1,
            label="Thm 3.5 (29) reference (not a bound here)",
        )
    ax.set_xlabel("1 / eps_tol")
    ax.set_ylabel("iterations N")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7)


def _draw_segments(ax, seg: dict[str, Any], segment_label: str) -> None:
    """The right panel: segment lengths ``t_{l+1} - t_l`` (open marker: the unfinished last
    segment, a lower bound) with the segment bound and, where recorded, its reference."""
    L = np.arange(len(seg["lengths"]))
    if len(L):
        ax.semilogy(L, seg["lengths"], "o-", ms=3, color="C0", label="t_{l+1} - t_l")
    if seg["unfinished_tail"]:
        ax.semilogy(
            [len(L)],
            [seg["unfinished_tail"]],
            "o",
            mfc="none",
            color="C0",
            label="unfinished segment (so far)",
        )
    Lb = np.arange(len(seg["bound"]))
    ax.semilogy(Lb, seg["bound"], "-", color="C3", label=segment_label)
    if "reference" in seg:
        ax.semilogy(
            Lb,
            seg["reference"],
            "--",
            color="C1",
            label="1 + c1 g^-2l + c2 g^-3l (Thm 3.5 (27) ref.)",
        )
    ax.set_xlabel("segment l")
    ax.set_ylabel("segment length")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7)
