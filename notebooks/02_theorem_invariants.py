# %% [markdown]
# # 02 — The theorems as numbers: bounds from constants, the checker, a live property test
#
# `theory/` catalogues every theorem the code uses, its constants and the `lda_opt.bounds`
# function that evaluates it.  This notebook
#
# 1. computes those bounds from the constants of a real problem (TV-regularized MRI),
# 2. runs the invariant checker `lo.check` on a genuine ELDA run and on a run with a planted
#    violation (one recorded `phi_eps` raised),
# 3. runs a hypothesis property live: the smoothing sandwich `r_eps <= r <= r_eps + m eps / 2`
#    (LDA eq. 6) on random inputs.

# %%
import math
import tempfile
from pathlib import Path

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lda_opt as lo
from lda_opt import bounds
from lda_opt.checks import estimate_constants
from lda_opt.data import shepp_logan
from lda_opt.tasks import MRITask

torch.set_num_threads(1)  # the test suite runs two notebooks at once on 2 cores
task = MRITask(0.3, mask="radial", shape=(16, 16), noise=0.01, noise_seed=1)
m = task.measure(shepp_logan((16, 16), dtype=torch.complex128))
problem = lo.Problem(m.fidelity(), lo.features.FiniteDifference(), weight=0.01)
c = estimate_constants(problem, m.x0)
print({k: c[k] for k in ("L_f", "M", "L_g", "m", "certified")})

# %% [markdown]
# **Bounds from the constants** (each a certified upper bound; see `theory/`):
#
# * `L_eps = L_f + kappa (sqrt(m) L_g + M^2 / eps)` — LDA Lemma 3.2, ELDA Lemma 4.4;
# * smoothing gap `kappa m eps / 2` (Huber, LDA eq. 6); `kappa m eps` (sqrt, meta-LDA eq. 5 corrected);
# * the number of reductions `ell` until `sigma eps < eps_tol`;
# * ELDA's line-search cap `l_max` (4.13, corrected) and the total iteration bound (Thm 4.6, 4.28).

# %%
solver = lo.ELDA(eps_tol=0.2, max_iter=400)
eps = solver.eps0
L_eps = bounds.lipschitz_huber(c["L_f"], c["L_g"], c["M"], c["m"], eps, kappa=problem.weight)
gap = bounds.smoothing_gap("huber", c["m"], eps, kappa=problem.weight)
ell = bounds.num_reductions(solver.eps0, solver.eps_tol, solver.sigma, solver.gamma)
lmax = bounds.elda_lmax(solver.alpha_bar, L_eps, solver.eta3, eps, solver.rho)
print(f"L_eps(eps0) = {L_eps:.4g}, gap(eps0) = {gap:.4g}, reductions ell = {ell}, l_max = {lmax}")
print(f"sigma eps0 gamma^ell = {solver.sigma * solver.eps0 * solver.gamma ** ell:.4g} < eps_tol = {solver.eps_tol}")
assert solver.sigma * solver.eps0 * solver.gamma ** ell < solver.eps_tol <= (
    solver.sigma * solver.eps0 * solver.gamma ** (ell - 1))

# %% [markdown]
# **A genuine run** satisfies every inequality the proofs use.

# %%
res = solver.run(problem, m.x0)
report = lo.check(res, problem, solver)
print(f"{res.reason[0]} after {int(res.iterations[0])} iterations")
print(report.summary())
assert report.ok and res.reason == ["converged"]

# %% [markdown]
# **A planted violation.** Raise one recorded `phi_eps` above the previous value (and make
# the next row consistent), through the public CSV round trip of the `Trace`.  The checker
# must name that iteration and the descent inequality of ELDA (4.23).

# %%
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "trace.csv"
    res.trace.to_csv(path)
    rows = path.read_text().splitlines()
    head = rows[0].split(",")
    i_phi, i_prev, i_it = head.index("phi_eps"), head.index("phi_eps_prev"), head.index("iteration")
    k = 5
    cells = [r.split(",") for r in rows[1:]]
    inc = 1e-3 * abs(float(cells[k][i_prev]))
    cells[k][i_phi] = repr(float(cells[k][i_prev]) + inc)
    cells[k + 1][i_prev] = cells[k][i_phi]
    path.write_text("\n".join([rows[0]] + [",".join(r) for r in cells]) + "\n")
    broken = lo.Trace.from_csv(path)
bad = lo.check(broken, problem, solver)
print(bad.summary().splitlines()[0])
print("every violation (check, iteration):", sorted({(w.check, w.iteration) for w in bad.violations}))
v = bad.find("descent")[0]
print(f"{v.check} at iteration {v.iteration}: {v.inequality} ({v.equation}); margin {v.margin:.3g} (planted {inc:.3g})")
assert not bad.ok and v.iteration == int(cells[k][i_it]) and math.isclose(v.margin, inc, rel_tol=1e-6)

# %% [markdown]
# **A hypothesis property, live.** For any point `x`, any `eps > 0` and any weight, the Huber
# smoothing satisfies `phi_eps <= phi <= phi_eps + kappa m eps / 2` (LDA eq. 6), in float64.

# %%
checked = []


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.integers(0, 10_000), st.floats(1e-6, 1.0), st.floats(1e-4, 10.0))
def sandwich(seed, eps, kappa):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 1, 8, 8, dtype=torch.float64, generator=g)
    p = lo.Problem(lo.LeastSquares(lo.operators.Identity(), torch.zeros_like(x)), lo.features.FiniteDifference(),
                   weight=kappa)
    phi, phi_eps = float(p.phi(x)), float(p.phi_eps(x, eps, lo.Huber()))
    gap = bounds.smoothing_gap("huber", 64, eps, kappa)
    assert phi_eps <= phi * (1 + 1e-12) and phi <= (phi_eps + gap) * (1 + 1e-12)
    checked.append((phi - phi_eps) / gap)


sandwich()
print(f"{len(checked)} cases; (phi - phi_eps) / gap in [{min(checked):.3g}, {max(checked):.3g}] (must lie in [0, 1])")
