# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # MOL: a deep-equilibrium network with convergence and robustness guarantees
#
# The MOL network (Pramanik, Zimmerman, Jacob; supplement eqs. 1-5) reconstructs by iterating
#
# $$x_{n+1} = T(x_n) + z,\quad T(x) = R\big((1-a)x + a H_\theta(x)\big),\quad
#   z = R(a\lambda A^H b),\quad R = (I + a\lambda A^H A)^{-1}$$
#
# to its fixed point, stopping at $\|x_n - x_{n-1}\| / \|x_{n-1}\| < \kappa = 10^{-4}$.
# For MRI ($A = PF$) the resolvent $R$ is diagonal in k-space. If $\mathrm{Lip}(H) = L < 1$,
# $T$ contracts with factor $|1-a| + aL$, and the fixed point moves by at most
# $\lambda\|A^H\delta b\|/(1-L)$ when the data move by $\delta b$ (`theory/mol.md`).
# Training differentiates the fixed point implicitly (Algorithm 2), so memory does not grow
# with the number of iterations.
#
# This notebook: (1) the contraction checker on a constrained and on a planted unconstrained
# CNN, (2) the implicit gradient against finite differences, (3) a tiny training run with the
# same `lda-opt train` machinery, (4) the memory of the implicit backward vs unrolling.

# %%
import json
import tempfile
from pathlib import Path

import torch

import matplotlib.pyplot as plt

from lda_opt import bounds
from lda_opt.data import random_ellipses
from lda_opt.learning import TrainConfig, train
from lda_opt.learning.deq import DEQConfig
from lda_opt.learning.mol import MOLNet, check_contraction, load_mol
from lda_opt.nets import MOLCNN, xavier_init_
from lda_opt.nets.mol import certified_lipschitz, spectral_project_
from lda_opt.operators import MRI
from lda_opt.problem import LeastSquares
from lda_opt.tasks import MRITask

torch.manual_seed(0)
work = Path(tempfile.mkdtemp(prefix="mol_"))

# %% [markdown]
# ## 1. Contraction: certified when the CNN is constrained, refuted when it is not
#
# `spectral_project_` scales every convolution so that the *certified* Lipschitz constant of
# $H$ (product of exact convolution norms over the DFT grid) is at most 0.7. The checker
# estimates $\|J_T\|$ by power iteration and probes pairs $\|T(u)-T(w)\|/\|u-w\|$.

# %%
N = 16
task = MRITask(0.3, shape=(N, N))
truth = random_ellipses(2, size=(N, N), seed=3, dtype=torch.complex128, max_phase=1.0)
m = task.measure(truth)
A = MRI(m.operator.mask.double())


def small_cnn(seed):
    cnn = MOLCNN(1, 6, 3, complex=True).double()
    return xavier_init_(cnn, generator=torch.Generator().manual_seed(seed))


good = small_cnn(0)
L = spectral_project_(good, 0.7, (N, N))
net = MOLNet(good, alpha=1.0, lam=2.0).double()
rep = check_contraction(net.problem(LeastSquares(A, m.y)), m.x0)
print(f"certified Lip(H) = {L:.3f}, certified factor |1-a| + aL = {rep.certified_factor:.3f}")
print(f"estimated ||J_T|| = {rep.estimated_lipschitz:.3f}, worst probed ratio = {rep.pair_ratio:.3f}, ok = {rep.ok}")

bad = small_cnn(0)
with torch.no_grad():
    for conv in bad.convs:
        conv.real.weight.mul_(3.0)
        conv.imag.weight.mul_(3.0)
rep_bad = check_contraction(MOLNet(bad, lam=2.0).double().problem(LeastSquares(A, m.y)), m.x0)
print(f"planted: certified Lip(H) = {certified_lipschitz(bad, (N, N)):.1f}, ok = {rep_bad.ok}")
print(rep_bad.violations[0])

# %% [markdown]
# The forward iteration on the constrained network: $e_n$ falls geometrically, at a rate
# below the certified factor.

# %%
with torch.no_grad():
    x, res = net(net.problem(LeastSquares(A, m.y)), m.x0)
hist = torch.stack(res.history)
fig, ax = plt.subplots(figsize=(5, 3.2))
for b in range(hist.shape[1]):
    ax.semilogy(range(1, hist.shape[0] + 1), hist[:, b], "o-", ms=3, label=f"sample {b}")
ax.axhline(1e-4, color="gray", ls=":", label="kappa")
ax.set_xlabel("iteration n")
ax.set_ylabel("e_n")
ax.legend()
fig.tight_layout()
plt.show()
print("iterations per sample:", res.iterations.tolist(), res.reason)

# %% [markdown]
# ## 2. The implicit gradient equals finite differences (float64)

# %%
tight = DEQConfig(kappa_fwd=1e-14, kappa_bwd=1e-28, max_fwd=2000, max_bwd=2000)
net_t = MOLNet(good, alpha=1.0, lam=2.0, deq=tight).double()


def loss():
    x, _ = net_t(net_t.problem(LeastSquares(A, m.y)), m.x0)
    return (x - truth).abs().square().sum()


loss().backward()
print("backward iterations per sample:", net_t.last_backward["iterations"].tolist())
w = net_t.cnn.head.real.weight
h, idx = 1e-6, (0, 1, 1, 1)
with torch.no_grad():
    w[idx] += h
    up = float(loss())
    w[idx] -= 2 * h
    down = float(loss())
    w[idx] += h
print(f"implicit {float(w.grad[idx]):.10f}  finite differences {(up - down) / (2 * h):.10f}")

# %% [markdown]
# ## 3. Training with `lda-opt train` (`train.mode = "mol"`)
#
# The same trainer and checkpoint format as LDA-Net; the `mol` section chooses the
# constraint. Here MOL-LR (a log barrier on the power-iteration estimate of $\mathrm{Lip}(H)$,
# $H = I - F_\theta$) on a handful of 16 x 16 phantoms for two epochs: a smoke-size run; the
# shipped `configs/mol_mri_radial_20.json` and `benchmarks/mol.py` are the real ones.

# %%
cfg = TrainConfig.from_dict({
    "name": "mol_nb", "seed": 0,
    "task": {"kind": "mri", "ratio": 0.3, "mask": "radial", "shape": [N, N]},
    "data": {"train": 8, "val": 2, "seed": 1, "max_phase": 1.0},
    "net": {"width": 6, "depth": 3},
    "train": {"mode": "mol", "epochs_first": 2, "batch_size": 4, "lr": 3e-3, "threads": 1},
    "mol": {"constraint": "lr", "max_fwd": 40, "max_bwd": 40},
})
summary = train(cfg, work / "run", quiet=True)
for r in summary["epochs"]:
    print({k: round(r[k], 3) for k in ("epoch", "val_psnr", "lam", "lipschitz", "fwd_iters", "bwd_iters")})
meta = json.loads((work / "run" / "model.json").read_text())["metadata"]
print("checkpoint kind:", meta["kind"], "constraint:", meta["constraint"], "deq:", meta["deq"])

# %%
trained = load_mol(work / "run" / "model.safetensors")
val = task.measure(random_ellipses(1, size=(N, N), seed=99, dtype=torch.complex64, max_phase=1.0))
with torch.no_grad():
    x_mol, res = trained(trained.problem(val.fidelity()), val.x0)
fig, ax = plt.subplots(1, 3, figsize=(9, 3))
for a, img, t in zip(ax, (val.truth, val.x0, x_mol), ("truth", "zero filling", f"MOL ({int(res.iterations)} it.)")):
    a.imshow(img[0, 0].abs(), cmap="gray")
    a.set_title(t)
    a.axis("off")
plt.show()

# %% [markdown]
# ## 4. Memory: implicit backward vs unrolled autograd
#
# Bytes of the tensors autograd saves for backward (`saved_tensors_hooks`), one training step
# with exactly $n$ forward iterations.

# %%


def saved_mb(n, backward):
    cnn = MOLCNN(1, 6, 3, complex=True)
    xavier_init_(cnn, generator=torch.Generator().manual_seed(0))
    spectral_project_(cnn, 0.7, (N, N))
    mdl = MOLNet(cnn, deq=DEQConfig(kappa_fwd=0.0, max_fwd=n, max_bwd=n, backward=backward))
    ms = task.measure(truth.to(torch.complex64))
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        x, _ = mdl(mdl.problem(ms.fidelity()), ms.x0)
        (x - ms.truth).abs().square().sum().backward()
    return total / 2**20


ns = [5, 20, 50]
deq = [saved_mb(n, "implicit") for n in ns]
unr = [saved_mb(n, "unrolled") for n in ns]
print("DEQ  (MiB):", [round(v, 3) for v in deq])
print("unrolled :", [round(v, 3) for v in unr])
print(f"DEQ ratio 50/5 = {deq[-1] / deq[0]:.3f}; unrolled ratio = {unr[-1] / unr[0]:.1f}")
print("robustness bound lam/(1-L) for lam = 2, L = 0.7:", bounds.mol_robustness_bound(2.0, 0.7, 1.0))
