r"""Beyond the trained phases (LDA Sec. 4.3.3, Fig. 7) with the shipped block-CS checkpoint.

LDA-Net is Algorithm 1 with a learned regularizer, so it can keep running after its ``K``
trained phases.  This script reconstructs one held-out test image (block CS, the ratio of
the checkpoint) with the ``K`` trained phases (learned ``alpha_k``, ``tau_k``), then continues
Algorithm 1 from ``x_K`` at ``eps_K`` -- backtracking on ``alpha_k`` (shrink 0.5,
``phi_eps(v) - phi_eps(x) <= -0.35 ||v - x||^2``), ``tau_k = alpha_k``, the eps update of line 7
-- until the termination rule ``sigma eps_k < eps_tol`` of line 8 holds in every block (or
``--max-iter``).  It plots the objective ``phi(x_k)`` (summed over the blocks of the image) and
the PSNR of the reassembled image against ``k``, the trained phases solid and the
continuation dotted, and runs the invariant checker (``lda_opt.check``) on the continuation.

Outputs: ``beyond_phases.json`` (curves, termination, checker verdict), ``beyond_phases.md``
and ``beyond_phases.png``.

Usage::

    python benchmarks/beyond_phases.py                       # shipped block-CS 25 % checkpoint
    python benchmarks/beyond_phases.py --checkpoint build/runs/block_cs_25/model.safetensors
    python benchmarks/beyond_phases.py --quick --out /tmp/q  # smoke run (few iterations)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from lda_opt.data import load_image
from lda_opt.learning import continue_run, load_lda_net, shipped_checkpoint, task_from_metadata
from lda_opt.metrics import psnr
from lda_opt.smoothing import Smoothing

ROOT = Path(__file__).resolve().parent.parent


def _phi(problem, x, g):
    """Exact objective ``f + kappa ||q||_{2,1}`` per sample from a point's cached ``q(x)``."""
    return problem.fidelity.value(x) + problem.weight * Smoothing.exact(g)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None, help="LDA-Net checkpoint (default: shipped block CS 25%%)")
    p.add_argument("--image", default="camera", help="held-out test image (default camera)")
    p.add_argument("--size", type=int, default=99, help="image side (default 99 = 3 x 3 blocks)")
    p.add_argument("--eps-tol", type=float, default=1e-2, help="termination: sigma eps_k < eps_tol")
    p.add_argument("--max-iter", type=int, default=20_000)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--quick", action="store_true", help="smoke run: 40 iterations at most")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if args.quick:
        args.max_iter = 40
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = "_quick" if args.quick else ""
    path = Path(args.checkpoint) if args.checkpoint else shipped_checkpoint("block-cs", 0.25)
    net = load_lda_net(path)
    task = task_from_metadata(net.checkpoint_metadata)
    if task.kind != "block-cs":
        p.error("--checkpoint must be a block-CS checkpoint")
    img = load_image(args.image, size=args.size, dtype=torch.float32)
    m = task.measure(img)
    problem = net.problem(m.fidelity())
    truth = m.to_image(m.truth)

    def image_psnr(x):
        return float(psnr(m.to_image(x.detach()), truth, 1.0)[0])

    phi_curve, psnr_curve = [], []
    with torch.no_grad():
        phi0 = problem.phi(m.x0)
    phi_curve.append(float(phi0.sum()))
    psnr_curve.append(image_psnr(m.x0))

    def phase_cb(k, state, rec):
        phi_curve.append(float(rec["phi"].sum()))
        psnr_curve.append(image_psnr(state.point.x))

    t0 = time.perf_counter()
    with torch.no_grad():
        x_K, state = net(problem, m.x0, callback=phase_cb)
    K = net.phases
    t_phases = time.perf_counter() - t0
    # continuation: per-block squared errors and phi per iteration, per group of equal eps_K
    B = m.y.shape[0]
    cur_x = x_K.detach().clone()
    cur_phi = _phi(problem, cur_x, state.point.g.detach()).clone()
    rows_by_group: dict[int, torch.Tensor] = {}
    history: list[tuple[int, int, torch.Tensor, torch.Tensor]] = []  # (group, k, x, phi) of that group

    def cont_cb(group, k, st, rec):
        history.append((group, k, st.point.x.detach().clone(), _phi(problem.select(rows_by_group[group]),
                                                                      st.point.x.detach(), st.point.g.detach())))

    # group membership is needed inside the callback: mirror continue_run's grouping
    for gi, e in enumerate(torch.unique(state.eps.detach()).tolist()):
        rows_by_group[gi] = (state.eps.detach() == e).nonzero().squeeze(1)
    t1 = time.perf_counter()
    cont = continue_run(net, problem, state, eps_tol=args.eps_tol, max_iter=args.max_iter, callback=cont_cb)
    t_cont = time.perf_counter() - t1
    n_iter = int(cont.iterations.max())
    by_k: dict[int, list] = {}
    for group, k, x, ph in history:
        by_k.setdefault(k, []).append((group, x, ph))
    for k in range(n_iter):
        for group, x, ph in by_k.get(k, []):
            idx = rows_by_group[group]
            cur_x[idx] = x
            cur_phi[idx] = ph
        phi_curve.append(float(cur_phi.sum()))
        psnr_curve.append(image_psnr(cur_x))
    reports = cont.check(problem)
    violations = sum(len(r.violations) for r in reports)
    verdict = {"ok": all(r.ok for r in reports), "violations": violations,
               "by_check": [r.by_check() for r in reports], "skipped": [list(r.skipped) for r in reports],
               "summary": [r.summary() for r in reports]}
    eps_K = sorted({float(e) for e in state.eps})
    res = {
        "checkpoint": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
        "image": args.image, "size": args.size, "blocks": B, "ratio": task.ratio, "phases": K,
        "eps_K": eps_K, "eps_tol": args.eps_tol, "sigma": net.sigma, "gamma": net.gamma,
        "iterations_after_K": cont.iterations.tolist(), "converged": cont.converged.tolist(),
        "phi": phi_curve, "psnr": psnr_curve,
        "psnr_at_K": psnr_curve[K], "psnr_final": psnr_curve[-1],
        "phi_at_K": phi_curve[K], "phi_final": phi_curve[-1],
        "phi_nonincreasing_after_K": all(b <= a * (1 + 1e-6) + 1e-9 for a, b in zip(phi_curve[K:], phi_curve[K + 1:])),
        "seconds_phases": t_phases, "seconds_continuation": t_cont, "checker": verdict,
    }
    # number of eps reductions after K, per block
    red = []
    for idx, _, r in cont.groups:
        d = r.trace.as_dict()
        for j in range(len(idx)):
            act = d["active"][:, j]
            red.append(int((d["eps_next"][act, j] < d["eps"][act, j]).sum()))
    res["reductions_after_K"] = red
    (out / f"beyond_phases{tag}.json").write_text(json.dumps(res, indent=1) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = list(range(len(phi_curve)))
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    for a, curve, lab in ((ax[0], phi_curve, "phi(x_k)"), (ax[1], psnr_curve, "PSNR (dB)")):
        a.plot(ks[: K + 1], curve[: K + 1], "b-", lw=2, label=f"trained phases (K={K})")
        a.plot(ks[K:], curve[K:], "b:", lw=1.5, label="Algorithm 1 after K")
        a.axvline(K, color="gray", lw=0.8)
        a.set_xscale("symlog", linthresh=max(K, 1))
        a.set_xlabel("iteration k")
        a.set_ylabel(lab)
        a.legend(fontsize=8)
    ax[0].set_yscale("log")
    fig.suptitle(f"block CS {round(100 * task.ratio)}%, {args.image} {args.size}x{args.size}: "
                 f"{n_iter} iterations after K, checker {'OK' if verdict['ok'] else 'VIOLATIONS'}", fontsize=10)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.15, top=0.88, wspace=0.25)
    fig.savefig(out / f"beyond_phases{tag}.png", dpi=90)
    plt.close(fig)
    conv = sum(res["converged"])
    (out / f"beyond_phases{tag}.md").write_text(
        "# Beyond the trained phases (LDA Fig. 7), laptop scale\n\n"
        f"Produced by `python benchmarks/beyond_phases.py`. Checkpoint `{res['checkpoint']}`, test image "
        f"{args.image} ({args.size} x {args.size}, {B} blocks), CS ratio {task.ratio:g}.\n\n"
        f"| quantity | value |\n|---|---|\n"
        f"| trained phases K | {K} |\n| eps_K | {', '.join(f'{e:.3g}' for e in eps_K)} |\n"
        f"| termination | sigma eps_k < {args.eps_tol:g} (sigma = {net.sigma:g}, gamma = {net.gamma:g}) |\n"
        f"| blocks terminated by the rule | {conv}/{B} (max {n_iter} iterations after K) |\n"
        f"| eps reductions after K | {min(red)}-{max(red)} per block |\n"
        f"| phi(x_K) -> phi(final) | {res['phi_at_K']:.5g} -> {res['phi_final']:.5g} |\n"
        f"| phi non-increasing after K | {res['phi_nonincreasing_after_K']} |\n"
        f"| PSNR at K -> final | {res['psnr_at_K']:.2f} -> {res['psnr_final']:.2f} dB |\n"
        f"| checker after K | {'no violation' if verdict['ok'] else str(violations) + ' violations'} "
        f"({'; '.join(s.splitlines()[0] for s in verdict['summary'])}) |\n"
        f"| time | phases {t_phases:.1f} s, continuation {t_cont:.0f} s |\n")
    print(f"beyond K={K}: {n_iter} iterations, {conv}/{B} terminated, PSNR {res['psnr_at_K']:.2f} -> "
          f"{res['psnr_final']:.2f}, checker ok={verdict['ok']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
