"""The duality experiment, the figures (Figs. 9-13 of dual-st-cnn-2024).
Overview: :mod:`lda_opt.experiments.duality`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import DualityConfig

_COLORS = {"kaiming_uniform": "C0", "normal_0.001": "C1", "normal_0.005": "C2",
           "sgd": "C3", "asgd": "C4", "adam": "C5"}


def _plot_all(out: Path, runs, config: DualityConfig, result: dict, tor, train, test, nets):
    """Write the four PNGs: Figs. 9/13, 10, 11 and 12."""
    from lda_opt._plotting import pyplot

    plt = pyplot()

    _plot_objective_vs_epoch(plt, out, runs, config, result)
    _plot_objective_by_init(plt, out, runs, config, result)
    _plot_primal_vs_dual(plt, out, runs, config, result, tor)
    _plot_denoised(plt, out, test, nets)


def _panel(ax, key_fn, title, selected, config: DualityConfig, result: dict):
    """One panel of primal objective curves, coloured by ``key_fn(run)``, with the dual and
    the primal objective at the reconstruction as horizontal lines."""
    for r in selected:
        lbl = key_fn(r)
        ax.plot(r.objective, color=_COLORS[lbl], alpha=0.8, lw=1,
                label=f"{lbl}" if r.seed == config.seeds[0] else None)
    ax.axhline(result["dual"], color="k", ls="--", lw=1, label="dual (22)")
    ax.axhline(result["primal_at_reconstruction"], color="gray", ls=":", lw=1,
               label="primal at reconstruction (47)")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_title(title)
    ax.legend(fontsize=7)


def _plot_objective_panels(plt, out: Path, runs, config: DualityConfig, result: dict, *, by: str,
                           curves: str, title: str, name: str):
    """One panel per value of the run attribute ``by``, one curve per value of ``curves``."""
    values = getattr(config, by + "s")
    fig, axes = plt.subplots(1, len(values), figsize=(4.5 * len(values), 3.6), squeeze=False)
    for ax, v in zip(axes[0], values):
        _panel(ax, lambda r: getattr(r, curves), title.format(v),
               [r for r in runs if getattr(r, by) == v], config, result)
    axes[0][0].set_ylabel("objective")
    fig.tight_layout()
    fig.savefig(out / name, dpi=110)
    plt.close(fig)


def _plot_objective_vs_epoch(plt, out: Path, runs, config: DualityConfig, result: dict):
    """Figs. 9 / 13: one panel per optimizer, curves per initialisation."""
    _plot_objective_panels(plt, out, runs, config, result, by="optimizer", curves="init",
                           title="primal objective (21), {}", name="objective_vs_epoch.png")


def _plot_objective_by_init(plt, out: Path, runs, config: DualityConfig, result: dict):
    """Fig. 10: one panel per initialisation, curves per optimizer."""
    _plot_objective_panels(plt, out, runs, config, result, by="init", curves="optimizer",
                           title="primal objective (21), init {}", name="objective_by_init.png")


def _plot_primal_vs_dual(plt, out: Path, runs, config: DualityConfig, result: dict, tor):
    """Fig. 11: the objectives as bars, the training curves, and (22) against ``u_scale``."""
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(17, 3.8))
    _bars_objectives(a1, config, result)
    _curves_training(a2, runs, result, tor)
    _curve_u_scale(a3, config, result)
    fig.tight_layout()
    fig.savefig(out / "primal_vs_dual.png", dpi=110)
    plt.close(fig)


def _bars_objectives(ax, config: DualityConfig, result: dict):
    """Fig. 11, left: primal best, dual, reconstruction, refined, (22)+filters, bound."""
    hon = result["honesty"]
    refined = result["primal_refined_from_reconstruction"]
    vals = [result["primal_best"], result["dual"], result["primal_at_reconstruction"],
            refined["objective"] if refined else float("nan"),
            hon.get("dual_with_primal_filters", {}).get("objective", float("nan")),
            result["certified_lower_bound"]]
    labels = [f"primal best\n(21), K={config.primal.n_filters}", "dual\n(22)",
              "primal at\nrec. (47)",
              f"rec. refined\n(Adam), K={refined['K'] if refined else 0}",
              "(22) + primal\nfilters", "certified\nlower bound"]
    ax.bar(range(len(vals)), vals, color=["C0", "k", "gray", "C4", "C1", "C2"])
    ax.set_xticks(range(len(vals)))
    ax.set_xticklabels(labels, fontsize=7)
    for k, v in enumerate(vals):
        ax.text(k, v, f"{v:.4g}", ha="center", va="bottom", fontsize=8)
    ax.set_title(f"objectives, noise {config.noise}")


def _curves_training(ax, runs, result: dict, tor):
    """Fig. 11, middle: the torch dual solver's history against the best primal run."""
    ax.plot(tor.history, color="k", lw=1, label=f"{tor.solver} (penalised)")
    ax.axhline(result["dual"], color="k", ls="--", lw=1, label="dual (22) optimum")
    best = min(runs, key=lambda r: r.best)
    ax.plot(np.linspace(0, len(tor.history), len(best.objective)), best.objective, color="C0",
            lw=1, label=f"best primal run ({best.optimizer}, {best.init})")
    ax.set_yscale("log")
    ax.set_xlabel("iteration (dual) / rescaled epoch (primal)")
    ax.legend(fontsize=7)
    ax.set_title("training curves")


def _curve_u_scale(ax, config: DualityConfig, result: dict):
    """Fig. 11, right: the value of (22) on the same draws rescaled (``u_scale_sweep``)."""
    sw = result["honesty"]["u_scale_sweep"]
    ax.plot([e["u_scale"] for e in sw], [e["objective"] for e in sw], "ko-", lw=1,
            label="(22), same draws rescaled")
    ax.axhline(result["primal_best"], color="C0", lw=1, label="primal best (21)")
    ax.axvline(config.u_scale, color="gray", ls=":", lw=1, label="u_scale used")
    ax.set_xscale("log")
    ax.set_xlabel("standard deviation of the sampled u-bar")
    ax.set_ylabel("objective")
    ax.set_title("(22) depends on |u-bar|, not only on patterns", fontsize=9)
    ax.legend(fontsize=7)


def _plot_denoised(plt, out: Path, test, nets):
    """Fig. 12: denoised examples (test images)."""
    n_show = min(4, test.clean.shape[0])
    shape = test.clean.shape
    cols = [("noisy", test.noisy), ("clean", test.clean),
            ("primal", nets["primal"][1].reshape(shape)),
            ("dual", nets["dual"][1].reshape(shape)),
            ("reconstructed", nets["reconstructed"][1].reshape(shape))]
    fig, axes = plt.subplots(n_show, len(cols), figsize=(1.8 * len(cols), 1.8 * n_show),
                             squeeze=False)
    for r in range(n_show):
        for c, (name, imgs) in enumerate(cols):
            ax = axes[r][c]
            ax.imshow(np.clip(imgs[r], 0, 1), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "denoised.png", dpi=110)
    plt.close(fig)
