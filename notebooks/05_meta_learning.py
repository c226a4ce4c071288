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
# # Meta-learning LDA-Net across sampling patterns (meta-LDA, Algorithm 2)
#
# A *task* is a k-space sampling pattern and ratio. The network of task $i$ is the unrolled
# meta-LDA (Algorithm 1) on
#
# $$F_{\theta,\omega_i}(y) \approx \arg\min_x \tfrac12\|Ax-y\|^2 + \sigma(\omega_i)\, \|g(x;\theta)\|_{2,1} \qquad (12)$$
#
# with the CNN $g$ and the step sizes $\theta$ shared by all tasks and one weight
# $\kappa_i = \sigma(\omega_i)$ per task. Training minimizes the penalty objective
#
# $$\tilde L = L(\theta,\omega; B^{val}) + \tfrac{\lambda}{2}\|\nabla_\theta L(\theta,\omega;B^{tr})\|^2 \qquad (18)$$
#
# by Algorithm 2: on every cross-task batch, theta-steps and an omega-step while
# $\|\nabla_\theta\tilde L\|^2 + \|\nabla_\omega\tilde L\|^2 > \delta$; after every outer iteration
# $\delta \leftarrow \nu_\delta\delta$, $\lambda \leftarrow \nu_\lambda\lambda$, until $\delta \le \delta_{tol}$.
# The gradient of (18) needs Hessian-vector products: double backward through the phases.
#
# This notebook trains a tiny model on three tasks, reads the logged schedule, and adapts
# the weight of an unseen task with theta frozen (the paper's Sec. 5.4). Sizes are tiny so that
# it runs in about a minute on a laptop; `benchmarks/meta.py` is the real comparison.

# %%
import tempfile
from pathlib import Path


import matplotlib.pyplot as plt
import torch

from lda_opt.data import random_ellipses
from lda_opt.learning import TrainConfig, train
from lda_opt.learning.meta import (
    MetaTask,
    adapt_omega,
    evaluate_task,
    initial_omega,
    load_meta_net,
    outer_schedule,
)

torch.set_num_threads(1)

# %% [markdown]
# ## The schedule of Algorithm 2
# With the paper's values (Sec. 5.2) the outer loop runs exactly 107 times.

# %%
paper = outer_schedule(1e-3, 0.95, 4.35e-6, 1e-5, 1.001)
print(len(paper), "outer iterations; last (delta, lambda) =", paper[-1])

# %% [markdown]
# ## A tiny meta-training run
# Three tasks at 24 x 24 (Cartesian 20 % is exactly 5 of 24 lines), four phantoms per task
# (two in $D_{val}$, two in $D_{tr}$), a 4-channel complex CNN, 2 phases. The stair plan must
# have as many epochs as the schedule has outer iterations (here 6).

# %%
config = TrainConfig.from_dict({
    "name": "meta_notebook", "seed": 0,
    "task": {"kind": "mri", "ratio": 0.2, "mask": "radial", "shape": [24, 24]},
    "data": {"train": 4, "val": 2},
    "net": {"algorithm": "meta-lda", "width": 4, "depth": 2, "alpha": 0.5, "tau": 0.5, "init": "tv"},
    "train": {"mode": "meta", "phases": 2, "first_phases": 2, "epochs_first": 6, "batch_size": 2, "lr": 3e-3},
    "meta": {"tasks": [{"mask": "radial", "ratio": 0.1}, {"mask": "radial", "ratio": 0.3},
                       {"mask": "cartesian", "ratio": 0.2}],
             "val_per_task": 2, "omega0": -4.0, "omega_lr": 0.1, "delta0": 1e-3, "nu_delta": 0.9,
             "delta_tol": 5.5e-4, "lam0": 1e-3, "nu_lam": 1.5, "max_inner": 1},
})
print(len(outer_schedule(config.meta.delta0, config.meta.nu_delta, config.meta.delta_tol)), "outer iterations")
out = Path(tempfile.mkdtemp()) / "meta"
log = train(config, out, quiet=True)
for r in log["epochs"]:
    print(f"epoch {r['epoch']}: delta {r['delta']:.2e}  lam {r['lam']:.2e}  "
          f"|grad_th|^2 {r['grad_theta_sq']:.3g}  |grad_om|^2 {r['grad_omega_sq']:.3g}  "
          f"kappa {[round(k, 4) for k in r['kappa']]}")

# %% [markdown]
# Every epoch logged delta, lambda and both squared gradient norms of (18); the task weights
# moved apart. The checkpoint stores omega (and kappa) per task:

# %%
net, info = load_meta_net(out / "model.safetensors")
print({t["name"]: round(k, 4) for t, k in zip(info["tasks"], info["kappa"])})
ep = [r["epoch"] for r in log["epochs"]]
fig, ax = plt.subplots(1, 2, figsize=(9, 3))
ax[0].semilogy(ep, [r["delta"] for r in log["epochs"]], "k-", label="delta")
ax[0].semilogy(ep, [r["grad_theta_sq"] for r in log["epochs"]], "o-", label="|grad_theta L~|^2")
ax[0].legend()
for i, name in enumerate(log["tasks"]):
    ax[1].plot(ep, [r["kappa"][i] for r in log["epochs"]], label=name)
ax[1].set_ylabel("kappa = sigmoid(omega_i)")
ax[1].legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## An unseen task
# Radial 20 % was not trained on. As in the paper, theta stays frozen and only a new omega is
# fitted on a few samples of the new task; it starts from the trained omegas of the same
# pattern, interpolated in the ratio.

# %%
tasks = [MetaTask(**{k: t[k] for k in ("mask", "ratio", "mask_seed")}) for t in info["tasks"]]
new = MetaTask(mask="radial", ratio=0.2)
w0 = initial_omega(tasks, info["omega"], new)
task = new.task_config(config.task).build()
fit = task.measure(random_ellipses(4, size=(24, 24), seed=99, dtype=torch.complex64))
test = task.measure(random_ellipses(4, size=(24, 24), seed=123, dtype=torch.complex64))
before = {k: v.clone() for k, v in net.state_dict().items()}
w, losses = adapt_omega(net, fit, w0, epochs=4, batch_size=4, lr=0.2)
assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())  # theta untouched
for label, om in (("interpolated omega", w0), ("adapted omega", w)):
    kappa = float(torch.sigmoid(torch.tensor(om)))
    print(f"{label}: kappa {kappa:.4f}, test PSNR {evaluate_task(net, test, kappa)['psnr']:.2f} dB")
print("adaptation loss per epoch:", [round(v, 4) for v in losses])
