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
# # Transfer learning with a universal feature extractor (U-LDA, Sec. 3 and 5.1)
#
# The regularizer of domain $i$ is $r_i(x) = \|h_i(g(x))\|_{2,1}$: a feature extractor $g$
# shared by every domain (a complex CNN) composed with a small adapter $h_i$ (one complex
# convolution). The reconstruction is $T$ unrolled phases of modified ELDA (Algorithm 1).
#
# * **Step 1** (3.2): train $g$ and one adapter per *source* set $D_i$ on
#   $\frac{1}{IM}\sum_{i,m}\|x_m^{(i)} - \hat x_m^{(i)}\|^2 - \alpha\, S(x_m^{(i)}, \hat x_m^{(i)})$
#   ($S$ = SSIM), starting $g$ at the mean of networks $g_i$ trained on each $D_i$ alone.
# * **Step 2** (3.3): $g$ frozen, train only a new adapter $\hat h$ on a small *target* set.
#
# Here: sources are phantoms under Cartesian masks of 10 % and 30 % sampling, the target is the
# unseen ratio 20 % with only $N = 5$ training images. Everything is tiny (20 x 20 images, a
# narrow $g$, 3 phases, a few epochs) so the notebook runs in about a minute;
# `benchmarks/transfer.py` is the real comparison.

# %%
import json
import tempfile
from pathlib import Path

import torch

import matplotlib.pyplot as plt

from lda_opt.learning import TrainConfig, train
from lda_opt.learning.transfer import domain_measurement, load_transfer_net
from lda_opt.metrics import psnr
from lda_opt.nets import load_checkpoint, save_checkpoint

torch.manual_seed(0)
work = Path(tempfile.mkdtemp(prefix="ulda_"))

common = {"seed": 0, "task": {"kind": "mri", "shape": [20, 20], "mask": "cartesian"},
          "net": {"algorithm": "elda", "width": 8, "depth": 3},
          "train": {"phases": 3, "first_phases": 3, "epochs_stage": 0, "lr": 3e-3, "threads": 1}}


def config(name, mode, epochs, batch, transfer):
    d = json.loads(json.dumps(common))
    d["name"] = name
    d["train"].update(mode=mode, epochs_first=epochs, batch_size=batch)
    d["transfer"] = transfer
    return TrainConfig.from_dict(d)


# %% [markdown]
# ## Step 1: the universal $g$ and the source adapters
# `transfer.init = "average"` first trains a plain network $q = g_i$ on each source (standard
# training, `init_<name>/`), then starts $g$ at their parameter mean. Every Adam step of Step 1
# takes one batch of every source, each with its own adapter active, and accumulates the
# gradients.

# %%
sources = [{"name": "cart10", "ratio": 0.1, "train": 8, "val": 2},
           {"name": "cart30", "ratio": 0.3, "train": 8, "val": 2}]
step1 = config("step1", "transfer_step1", 4, 4, {"sources": sources, "init_epochs": 2, "alpha": 0.01})
log1 = train(step1, work / "step1", quiet=True)
print("parameters:", log1["parameters"], "| init:", log1["init"]["init"])
print("Step-1 budget:", {k: log1["budget"][k] for k in ("adam_steps", "domain_batches", "trainable_parameters")})
for e in log1["epochs"]:
    print(f"epoch {e['epoch']}: loss {e['train_loss']:.4f}, val PSNR per source",
          {k: round(v["psnr"], 2) for k, v in e["domains"].items()})

# %% [markdown]
# ## Step 2: a new adapter for the unseen 20 % ratio, $g$ frozen
# The config names the Step-1 `g.safetensors`. Only the adapter is in the optimizer; the
# adapter checkpoint records the path and SHA-256 of that $g$.

# %%
target = {"name": "cart20", "ratio": 0.2, "train": 5, "val": 2, "seed": 7}
g_file = work / "step1" / "g.safetensors"
step2 = config("step2", "transfer_step2", 8, 5, {"target": target, "g": str(g_file), "alpha": 0.01})
log2 = train(step2, work / "step2", quiet=True)
print("trainable parameters in Step 2:", log2["budget"]["trainable_parameters"], "(the adapter only)")
print("reference to g:", log2["g"])

g_before = load_checkpoint(g_file).module.state_dict()
net = load_transfer_net(work / "step2" / "adapter.safetensors")
g_after = net.features.g.state_dict()
print("g bit-identical after Step 2:", all(torch.equal(g_before[k], g_after[k]) for k in g_before))

# %% [markdown]
# An adapter is only meaningful with the $g$ it was trained on: loading it against any other
# $g$ file is refused.

# %%
other = load_checkpoint(g_file)
with torch.no_grad():
    other.module.convs[0].real.weight.mul_(1.01)
save_checkpoint(other.module, work / "other_g.safetensors", **other.metadata)
try:
    load_transfer_net(work / "step2" / "adapter.safetensors", work / "other_g.safetensors")
except ValueError as exc:
    print("refused:", str(exc)[:160], "...")

# %% [markdown]
# ## Reconstructions of held-out target images

# %%
test = domain_measurement(step2, step2.transfer.target, "test", 8)
x, _ = net.reconstruct(net.problem(test.fidelity()), test.x0)
print(f"zero-filling {float(psnr(test.x0, test.truth).mean()):.2f} dB -> U-LDA "
      f"{float(psnr(x, test.truth).mean()):.2f} dB (mean of 8 test phantoms)")

fig, ax = plt.subplots(1, 3, figsize=(7.5, 2.8))
for a, img, title in zip(ax, (test.truth[0, 0], test.x0[0, 0], x[0, 0]), ("truth", "zero-filling", "U-LDA")):
    a.imshow(img.abs().detach(), cmap="gray", vmin=0, vmax=float(test.truth[0].abs().max()))
    a.set_title(title)
    a.axis("off")
fig.tight_layout()
plt.show()
