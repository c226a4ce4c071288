r"""MOL deep equilibrium at laptop scale (issue 17 item 4; mol-deq-supplement Sec. II in small form).

Radial 20 % MRI on 64 x 64 random-ellipse phantoms with a smooth random phase (the data of the
shipped LDA-Net), held-out test set = the 8 test phantoms (seed ``MRI_TEST_SEED``) and
Shepp-Logan, never seen in training.  Arms, all trained by ``lda-opt train`` on the same data,
epochs and Adam schedule (``configs/mol_mri_radial_20.json``, the arms differing only in the
``mol`` section):

* **MOL-LR** (the shipped ``mol_mri_radial_20``): DEQ, implicit backward, ``H = I - F_theta``,
  log barrier on the power-iteration estimate of ``Lip(H)``;
* **MOL-SN**: DEQ, implicit backward, ``H`` the CNN, every convolution projected to a
  certified norm so that ``Lip(H) <= 0.9`` (certified);
* **Unrolled (U)**: the same map ``x <- T(x) + z`` unrolled ``K = 10`` times with autograd, no
  Lipschitz constraint;

beside the shipped LDA-Net (``lda_opt/checkpoints/mri_radial_20``), exact TV (PDHG, best
weight of a grid on test: an oracle) and zero filling.  Metrics: PSNR / SSIM / RelErr
(complex PSNR with peak ``max|x|``, SSIM of magnitudes; ``lda_opt.learning.reference``).

Robustness (supplement's experiment in small form): PSNR when complex Gaussian noise of level
``sigma`` is added to the sampled k-space of the test data (``kspace`` noise model, seeded),
and the worst-case amplification ``||dx*|| / ||db||`` of each learned map at test images
(power iteration on ``J^T J``, ``J = dx*/db``: ``J v`` by central differences of converged
float64 solves, ``J^T u`` by the implicit backward / autograd), against the bound
``lam / (1 - L_H)`` (``theory/mol.md`` Theorem 3; certified for MOL-SN, with the estimate of
``L_H`` for MOL-LR), and the PSNR under that worst-case perturbation of norm ``eps ||b||``
vs a random one of the same norm.

Writes ``mol.json``, ``mol.md`` (the table, each arm's training budget) and ``mol.png``.

Usage::

    python benchmarks/mol.py                  # trains the arms that are missing (~10 CPU min each)
    python benchmarks/mol.py --quick --out /tmp/q
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
from _common import CONFIGS, ROOT, TV_EXACT, environment, log, output_dir

from lda_opt.algorithms.tv_exact import PDHGSettings
from lda_opt.experiments.learning import mean_metrics, reconstruct_images, tv_exact_grid
from lda_opt.learning import TrainConfig, load_config, load_lda_net, shipped_checkpoint, train
from lda_opt.learning.datasets import test_images
from lda_opt.learning.mol import load_mol
from lda_opt.learning.train import LOG_FILE, STATE_FILE, exported_checkpoint
from lda_opt.nets.mol import certified_lipschitz, lipschitz_estimate
from lda_opt.tasks import Measurement, add_noise

CONFIG = CONFIGS / "mol_mri_radial_20.json"
#: arm label -> (run name suffix, overrides of the ``mol`` section)
ARMS = {
    "MOL-LR (DEQ, Lipschitz barrier)": ("", {}),
    "MOL-SN (DEQ, certified Lip(H) <= 0.9)": ("_sn", {"constraint": "sn", "residual": False, "sn_bound": 0.9}),
    "Unrolled K=10 (unconstrained)": ("_unrolled", {"constraint": "none", "backward": "unrolled", "kappa_fwd": 0.0,
                                                    "max_fwd": 10}),
}
NOISE = (0.0, 0.01, 0.02, 0.05)
TV_GRID = (1.25e-4, 2.5e-4, 5e-4)


def arm_config(base: TrainConfig, suffix: str, mol: dict) -> TrainConfig:
    return base.with_overrides(name=base.name + suffix, mol=mol) if suffix else base


def train_or_reuse(cfg: TrainConfig, run: Path) -> dict:
    """The run's ``log.json``: reused when complete for this config, resumed from its state
    when it has one for this config, else trained (``lda-opt train``'s :func:`train`)."""
    logf = run / LOG_FILE
    if logf.is_file():
        d = json.loads(logf.read_text())
        if d.get("config") == cfg.to_dict() and d.get("complete"):
            log(f"{cfg.name}: reusing {run}")
            return d
    resume = (run / STATE_FILE).is_file() and logf.is_file() and json.loads(logf.read_text()).get("config") == \
        cfg.to_dict()
    log(f"{cfg.name}: training into {run} (resume={resume})")
    return train(cfg, run, resume=resume, quiet=True)


@torch.no_grad()
def mol_reconstruct(net, m: Measurement, batch: int = 3) -> tuple[torch.Tensor, dict]:
    """Algorithm 1 on every test sample; the images and the iteration statistics."""
    xs, its, conv = [], [], []
    for s in range(0, m.y.shape[0], batch):
        sub = m.select(torch.arange(s, min(m.y.shape[0], s + batch)))
        x, res = net(net.problem(sub.fidelity()), sub.x0)
        xs.append(x)
        its += res.iterations.tolist()
        conv += res.converged.tolist()
    return torch.cat(xs), {"iterations_mean": sum(its) / len(its), "iterations_max": max(its),
                           "converged": int(sum(conv)), "samples": len(conv)}


def noisy(m: Measurement, sigma: float, seed: int = 11) -> Measurement:
    if sigma == 0:
        return m
    y = add_noise("kspace", m.y, sigma, seed, operator=m.operator)
    return Measurement(m.operator, y, m.operator.adjoint(y), m.truth)


def amplification(net, m: Measurement, index: int, iters: int, eps: float) -> dict:
    """Worst-case ``||dx*|| / ||db||`` at test image ``index`` (float64): power iteration on
    ``J^T J`` with ``J v`` by central differences (step ``1e-4 ||b||``) of solves converged to
    ``kappa = 1e-8`` (at most 1000 iterations; the unrolled map: its 10 steps) and ``J^T u`` by autograd (the implicit
    backward for the DEQ); then the PSNR at ``b + eps ||b|| v`` (worst case) and at a random
    masked direction of the same norm."""
    import dataclasses

    net = net.double()
    if net.deq.backward != "unrolled":
        net.deq = dataclasses.replace(net.deq, kappa_fwd=1e-8, kappa_bwd=1e-12, max_fwd=1000, max_bwd=1000)
    sub = m.select(torch.tensor([index]))
    A = sub.operator
    A = type(A)(A.mask.double())
    b = sub.y.to(torch.complex128)
    truth = sub.truth.to(torch.complex128)
    mask = A.mask

    def solve(bb):
        from lda_opt.problem import LeastSquares

        return net(net.problem(LeastSquares(A, bb)), A.adjoint(bb))[0]

    g = torch.Generator().manual_seed(index)
    v = torch.complex(torch.randn(b.shape, generator=g, dtype=torch.float64),
                      torch.randn(b.shape, generator=g, dtype=torch.float64)) * mask
    v = v / v.norm()
    h = 1e-4 * float(b.norm())
    gain = 0.0
    for _ in range(iters):
        with torch.no_grad():
            jv = (solve(b + h * v) - solve(b - h * v)) / (2 * h)
        gain = float(jv.norm())
        bb = b.clone().requires_grad_(True)
        x = solve(bb)
        (jtjv,) = torch.autograd.grad(x, bb, jv)
        jtjv = jtjv * mask
        v = (jtjv / jtjv.norm()).detach()
    from lda_opt.metrics import psnr

    with torch.no_grad():
        x0 = solve(b)
        delta = eps * float(b.norm())
        r = torch.complex(torch.randn(b.shape, generator=g, dtype=torch.float64),
                          torch.randn(b.shape, generator=g, dtype=torch.float64)) * mask
        worst, rand = solve(b + delta * v), solve(b + delta * r / r.norm())
        out = {"gain": gain, "psnr_clean": float(psnr(x0, truth)), "psnr_worst": float(psnr(worst, truth)),
               "psnr_random": float(psnr(rand, truth)), "dx_worst_over_db": float((worst - x0).norm()) / delta,
               "dx_random_over_db": float((rand - x0).norm()) / delta}
    return out


def run(args) -> dict:
    base = load_config(CONFIG)
    if args.quick:
        base = base.with_overrides(name=base.name + "_quick", task={"shape": [32, 32]}, data={"train": 4, "val": 2},
                                   net={"width": 4, "depth": 3}, train={"epochs_first": 1})
    task = base.task.build()
    imgs, names = test_images(task, n=2 if args.quick else 8, max_phase=base.data.max_phase)
    m = task.measure(imgs)
    out: dict = {"test": {"images": names, "shape": list(task.shape), "mask": task.mask,
                          "sampling_ratio": float(task.mask_tensor().mean())}, "methods": {}, "robustness": {},
                 "amplification": {}}
    out["methods"]["zero-filling"] = mean_metrics(m.x0, imgs)
    nets = {}
    for label, (suffix, mol) in ARMS.items():
        cfg = arm_config(base, suffix, mol)
        tlog = train_or_reuse(cfg, Path(args.runs) / cfg.name)
        path = shipped_checkpoint_mol(cfg, Path(args.runs) / cfg.name, args)
        net = load_mol(path)
        nets[label] = net
        t0 = time.perf_counter()
        x, stats = mol_reconstruct(net, m)
        rec = mean_metrics(x, imgs)
        lip, _ = lipschitz_estimate(net.cnn, torch.cat([m.x0[:2], x[:2]]), iters=30,
                                    generator=torch.Generator().manual_seed(0))
        rec.update(stats, seconds_test=time.perf_counter() - t0, checkpoint=str(path), lam=float(net.lam),
                   lipschitz_estimate=float(lip.detach()),
                   lipschitz_certified=certified_lipschitz(net.cnn, tuple(task.shape)),
                   parameters=sum(p.numel() for p in net.cnn.parameters()) + 1, budget=tlog["budget"],
                   config=cfg.to_dict()["mol"])
        out["methods"][label] = rec
        log(f"{label}: PSNR {rec['psnr']:.2f} dB, {stats['iterations_mean']:.1f} iterations, "
            f"Lip estimate {rec['lipschitz_estimate']:.3f}")
    lda = load_lda_net(shipped_checkpoint("mri", 0.2, "radial"))
    t0 = time.perf_counter()
    with torch.no_grad():
        x_lda = reconstruct_images(lda, m, batch_size=9)
    rec = mean_metrics(x_lda, imgs)
    rec.update(seconds_test=time.perf_counter() - t0, phases=lda.phases, parameters=lda.num_parameters(),
               checkpoint="lda_opt/checkpoints/mri_radial_20.safetensors")
    out["methods"]["LDA-Net (shipped)"] = rec
    log(f"LDA-Net: PSNR {rec['psnr']:.2f} dB")
    grid, best, _ = tv_exact_grid(m, TV_GRID[:1] if args.quick else TV_GRID,
                                  PDHGSettings(max_iter=500 if args.quick else 20000, tol=1e-6), extend=2,
                                  progress=lambda k, r: log(f"TV exact kappa={k:g}: {r['psnr']:.2f}"))
    out["methods"][TV_EXACT] = best
    out["tv_grid"] = grid
    for sigma in NOISE:
        ms = noisy(m, sigma)
        row = {"zero-filling": mean_metrics(ms.x0, imgs)["psnr"]}
        for label, net in nets.items():
            row[label] = mean_metrics(mol_reconstruct(net, ms)[0], imgs)["psnr"]
        with torch.no_grad():
            row["LDA-Net (shipped)"] = mean_metrics(reconstruct_images(lda, ms, batch_size=9), imgs)["psnr"]
        out["robustness"][str(sigma)] = row
        log(f"noise {sigma}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()))
    for label, net in nets.items():
        recs = [amplification(load_mol(out["methods"][label]["checkpoint"]), m, i, args.power_iters, args.eps)
                for i in range(args.adv_images)]
        rec = out["methods"][label]
        L = rec["lipschitz_certified"] if "SN" in label else rec["lipschitz_estimate"]
        out["amplification"][label] = {
            "per_image": recs, "gain_max": max(r["gain"] for r in recs),
            "bound_lam_over_1_minus_L": net.lam.item() / (1 - L) if L < 1 else math.inf,
            "L_used": L, "L_kind": "certified" if "SN" in label else "power-iteration estimate (not certified)",
            "eps": args.eps}
        log(f"{label}: worst-case gain {out['amplification'][label]['gain_max']:.3f}, "
            f"bound {out['amplification'][label]['bound_lam_over_1_minus_L']:.3f}")
    return out


def shipped_checkpoint_mol(cfg: TrainConfig, run: Path, args) -> Path:
    """The MOL-LR arm evaluates the shipped checkpoint when it was trained with this config
    (``lda_opt/checkpoints/mol_mri_radial_20``), else the run's exported checkpoint."""
    shipped = ROOT / "lda_opt" / "checkpoints" / f"{cfg.name}.safetensors"
    if shipped.is_file() and not args.quick:
        meta = json.loads(shipped.with_suffix(".json").read_text())["metadata"]
        if meta["training"]["config"] == cfg.to_dict():
            return shipped
    return exported_checkpoint(run, cfg)


def markdown(res: dict) -> str:
    rows = ["| method | PSNR (dB) | SSIM | RelErr | forward iterations | Lip(H) est. / certified | training budget |",
            "|---|---|---|---|---|---|---|"]
    for name, r in res["methods"].items():
        its = f"{r['iterations_mean']:.1f} (max {r['iterations_max']})" if "iterations_mean" in r else \
            (f"{r['phases']} phases" if "phases" in r else "-")
        lip = f"{r['lipschitz_estimate']:.3f} / {r['lipschitz_certified']:.3g}" if "lipschitz_estimate" in r else "-"
        b = r.get("budget")
        budget = (f"{b['epochs']} epochs, {b['steps']} steps, {b['train_samples']} images, {b['seconds'] / 60:.1f} "
                  f"min wall, 1 thread") if b else ("shipped LDA-Net (see mri.md)" if "phases" in r else "-")
        rows.append(f"| {name} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['relerr']:.4f} | {its} | {lip} | {budget} |")
    lines = ["MRI radial 20 %, 64 x 64, 8 held-out phantoms + Shepp-Logan (`benchmarks/mol.py`).", "", *rows, "",
             "PSNR (dB) under k-space noise of level sigma added to the test data:", ""]
    keys = list(next(iter(res["robustness"].values())))
    lines += ["| sigma | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for s, row in res["robustness"].items():
        lines.append(f"| {s} | " + " | ".join(f"{row[k]:.2f}" for k in keys) + " |")
    lines += ["", ("Worst-case amplification ||dx*|| / ||db|| (power iteration) vs lam / (1 - L_H), and PSNR under a "
                   "perturbation of norm eps ||b|| (worst-case vs random direction):"), "",
              "| method | gain (max) | lam / (1 - L) | L used | PSNR clean | worst | random |", "|---|---|---|---|---|---|---|"]
    for name, a in res["amplification"].items():
        pc = sum(r["psnr_clean"] for r in a["per_image"]) / len(a["per_image"])
        pw = sum(r["psnr_worst"] for r in a["per_image"]) / len(a["per_image"])
        pr = sum(r["psnr_random"] for r in a["per_image"]) / len(a["per_image"])
        lines.append(f"| {name} | {a['gain_max']:.3f} | {a['bound_lam_over_1_minus_L']:.3g} | {a['L_used']:.3f} "
                     f"({a['L_kind']}) | {pc:.2f} | {pw:.2f} | {pr:.2f} |")
    return "\n".join(lines) + "\n"


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 3.8))
    names = list(res["methods"])
    ax[0].barh(names, [res["methods"][n]["psnr"] for n in names])
    ax[0].set_xlabel("test PSNR (dB)")
    sig = [float(s) for s in res["robustness"]]
    for k in next(iter(res["robustness"].values())):
        ax[1].plot(sig, [res["robustness"][str(s)][k] for s in sig], "o-", label=k)
    ax[1].set_xlabel("k-space noise sigma")
    ax[1].set_ylabel("test PSNR (dB)")
    ax[1].legend(fontsize=7)
    fig.suptitle("MOL deep equilibrium vs unrolled, LDA-Net, TV (radial 20 %, 64 x 64)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--runs", default=str(ROOT / "build" / "runs"))
    p.add_argument("--power-iters", type=int, default=3)
    p.add_argument("--adv-images", type=int, default=2)
    p.add_argument("--eps", type=float, default=0.02)
    args = p.parse_args(argv)
    if args.quick:
        args.power_iters, args.adv_images = 2, 1
    torch.set_num_threads(1)
    out = output_dir(args.out, args.quick)
    t0 = time.perf_counter()
    res = run(args)
    res["seconds"] = time.perf_counter() - t0
    res["environment"] = environment("cpu", 1)
    res["description"] = __doc__.split("\n\n")[0]
    tag = "_quick" if args.quick else ""
    (out / f"mol{tag}.json").write_text(json.dumps(res, indent=1, default=float) + "\n")
    (out / f"mol{tag}.md").write_text(markdown(res))
    plot(res, out / f"mol{tag}.png")
    log(f"wrote {out / f'mol{tag}.json'}, .md, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
