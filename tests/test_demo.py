"""``make demo`` (:mod:`lda_opt.experiments.demo`): the golden-section search for TV's best
weight, the comparison figure's extra panels, and (slow) the whole demo at its quick size."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lda_opt.experiments.compare import compare_runs
from lda_opt.experiments.demo import golden_section_max

INVPHI = (math.sqrt(5) - 1) / 2


@given(st.floats(-4.9, -1.1), st.floats(0.005, 0.5))
def test_golden_section_finds_the_maximum_of_a_unimodal_function(c, tol):
    calls = []

    def f(x):
        calls.append(x)
        return -((x - c) ** 2)

    x, v, evals = golden_section_max(f, -5.0, -1.0, tol=tol)
    # two evaluations on the bracket of length 4, then one per shrink by invphi until the
    # bracket (which holds c and the best point evaluated) is at most tol long
    n = len(evals)
    assert n == 2 + max(0, math.ceil(math.log(tol / 4.0) / math.log(INVPHI) - 1e-9))
    assert abs(x - c) <= 4.0 * INVPHI ** (n - 2) + 1e-12
    assert v == -((x - c) ** 2) and v == max(e[1] for e in evals)
    assert [e[0] for e in evals] == calls


def test_golden_section_refuses_bad_brackets_and_non_finite_values():
    with pytest.raises(ValueError, match="finite lo < hi"):
        golden_section_max(lambda x: x, 1.0, 1.0)
    with pytest.raises(ValueError, match="max_evals >= 2"):
        golden_section_max(lambda x: x, 0.0, 1.0, max_evals=1)
    with pytest.raises(ValueError, match="not finite at"):
        golden_section_max(lambda x: math.nan, 0.0, 1.0)
    _, _, evals = golden_section_max(lambda x: -abs(x - 0.3), 0.0, 1.0, tol=1e-9, max_evals=6)
    assert len(evals) == 6  # capped


def test_compare_draws_extra_reconstructions_and_checks_their_shape(tmp_path):
    from lda_opt.cli import main

    run = tmp_path / "run"
    assert main(["solve", "--problem", "tv-denoise", "--size", "16", "--max-iter", "3", "--quiet",
                 "--out", str(run)]) == 0
    s = compare_runs([run], tmp_path / "f.png", extra=[("other", np.zeros((16, 16)), 12.5)])
    assert s["extra"] == [{"label": "other", "psnr": 12.5}]
    assert json.loads((tmp_path / "f.json").read_text())["extra"] == s["extra"]
    with pytest.raises(ValueError, match="extra image 'bad' has shape"):
        compare_runs([run], tmp_path / "g.png", extra=[("bad", np.zeros((8, 16)), 1.0)])


@pytest.mark.slow
def test_quick_demo_writes_every_figure_and_its_index(tmp_path):
    from lda_opt.experiments.demo import run_demo

    s = run_demo(tmp_path / "demo", quick=True, quiet=True)
    out = tmp_path / "demo"
    md = (out / "README.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == 6
    for rel in links:
        assert (out / rel).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", rel
        assert f'src="{rel}"' in (out / "index.html").read_text()
    assert len(s["lines"]) == 5
    assert s["check"]["ok"] and s["check"]["violations"] == 0
    learned = json.loads((out / "learned" / "result.json").read_text())
    assert learned["iterations"] >= 1 and learned["problem"]["phases"]["K"] == s["learned"]["phases"]
    tv = json.loads((out / "tv_search.json").read_text())
    assert tv["psnr"] == max(e["psnr"] for e in tv["evaluations"])
