# %% [markdown]
# # 01 — Solve a learned regularizer to a tolerance, with its certificate
#
# The shipped LDA-Net for radial 20 % MRI is a learned feature map `q` (a complex CNN) with
# a weight `kappa`, a learned `eps_0` and K trained phases.  Here we
#
# 1. load it, measure a held-out phantom at **48 x 48** (the net was trained at 64 x 64: the
#    network is `q`, the forward model is ours, so the mask is drawn anew at our size),
# 2. run the K phases, then LDA Algorithm 1 warm-started at `eps_K` until
#    `sigma * eps_k < eps_tol` (LDA Sec. 4.3.3),
# 3. read the per-iteration `Trace`, run the theorem checker `lo.check`, and plot.

# %%
import matplotlib.pyplot as plt
import torch

import lda_opt as lo
from lda_opt.data import shepp_logan
from lda_opt.learning import continue_run, load_lda_net, shipped_checkpoint, task_from_metadata
from lda_opt.tasks import task_at_shape

torch.set_num_threads(1)  # the test suite runs two notebooks at once on 2 cores
path = shipped_checkpoint("mri", 0.2, "radial")
net = load_lda_net(path)
meta = net.checkpoint_metadata
print(path.name, "| phases K =", net.phases, "| kappa =", net.weight, "| trained on", meta["problem"]["shape"])

# %% [markdown]
# The task (mask pattern, ratio, seed) comes from the checkpoint's metadata; `task_at_shape`
# draws the same kind of mask at 48 x 48.

# %%
task = task_at_shape(task_from_metadata(meta), (48, 48))
truth = shepp_logan((48, 48), dtype=torch.complex64)
m = task.measure(truth)
problem = net.problem(m.fidelity())  # 1/2 ||P F x - y||^2 + kappa ||q(x)||_{2,1}
print("sampled fraction of k-space:", float(task.mask_tensor().mean()))

# %%
with torch.no_grad():
    x_K, state = net.reconstruct(problem, m.x0)  # the K trained phases
eps_K = float(state.eps.max())
sigma = net.sigma
eps_tol = 0.5 * sigma * eps_K  # a real tolerance: several smoothing levels below eps_K
run = continue_run(net, problem, state, eps_tol=eps_tol, max_iter=400)
(idx, solver, res) = run.groups[0]
print(f"eps_K = {eps_K:.3g}, eps_tol = {eps_tol:.3g}; after K: {int(res.iterations[0])} iterations, "
      f"reason {res.reason[0]!r}")


# %% [markdown]
# **The certificate.** A sample stops at the first reduction `eps_{k+1} = gamma eps_k` with
# `sigma eps_{k+1} < eps_tol`; the reduction test then certifies
# `||grad phi_{eps_k}(x_{k+1})|| < sigma gamma eps_k < eps_tol`.

# %%
def psnr(x):
    return float(lo.metrics.psnr(x.abs(), truth.abs(), data_range=1.0))


print("converged:", bool(res.converged[0]))
print(f"||grad phi_eps|| at the end = {float(res.grad_norm[0]):.4g} < eps_tol = {eps_tol:.4g}:",
      float(res.grad_norm[0]) < eps_tol)
print(f"PSNR: zero filling {psnr(m.x0):.2f} dB, K phases {psnr(x_K):.2f} dB, to tolerance {psnr(run.x):.2f} dB")

# %% [markdown]
# **The Trace** holds (K, B) tensors per iteration: `phi_eps, phi, grad_norm, eps, branch,
# step, linesearch, forward, backward, seconds`.

# %%
d = res.trace.as_dict()
print({k: tuple(v.shape) for k, v in d.items() if k in ("phi", "phi_eps", "eps", "grad_norm", "branch")})
print("eps levels visited:", sorted({round(float(e), 8) for e in d["eps"][:, 0]}, reverse=True))
print("passes of q: forward", int(res.forward.sum()), "backward", int(res.backward.sum()))

# %% [markdown]
# **The theorem checker** verifies every inequality of the convergence proof on the trace
# (descent, sufficient decrease, the monotone quantity across reductions, line-search and
# iteration bounds, the certificate).

# %%
reports = run.check(problem)
print(reports[0].summary().splitlines()[0])
assert all(r.ok for r in reports)

# %%
fig, ax = plt.subplots(1, 4, figsize=(14, 3.2))
k = range(1, d["phi"].shape[0] + 1)
ax[0].plot(k, d["phi"][:, 0], label="phi")
ax[0].plot(k, d["phi_eps"][:, 0], "--", label="phi_eps")
ax[0].legend()
ax[0].set_title("objective")
ax[1].semilogy(k, d["grad_norm"][:, 0], label="||grad phi_eps||")
ax[1].semilogy(k, sigma * d["eps"][:, 0], ":", label="sigma eps")
ax[1].axhline(eps_tol, color="gray", lw=0.8)
ax[1].legend()
ax[1].set_title("certificate")
for a, (img, t) in zip(ax[2:], [(x_K, "K phases"), (run.x, "to tolerance")]):
    a.imshow(img.abs()[0, 0], cmap="gray", vmin=0, vmax=1)
    a.set_title(f"{t}: {psnr(img):.2f} dB")
    a.axis("off")
fig.tight_layout()
plt.show()
