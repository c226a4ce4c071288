"""The top-level package: subpackages reachable as ``lo.NAME``, imported lazily (issue 20)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

import lda_opt as lo

LAZY = ("bounds", "data", "dual", "experiments", "instances", "learning", "nets", "tasks", "testing")
HEAVY = ("data", "dual", "experiments", "instances", "learning", "nets")  # (bounds is loaded by lo.check)


def test_import_lda_opt_does_not_import_the_lazy_subpackages():
    """A fresh interpreter: ``import lda_opt`` loads none of them (nor safetensors, scikit-image
    or matplotlib); the first attribute access imports exactly the one asked for."""
    code = (
        "import sys, lda_opt as lo\n"
        f"lazy = {HEAVY!r}\n"
        "heavy = ['safetensors', 'skimage', 'matplotlib'] + ['lda_opt.' + n for n in lazy]\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "lo.nets.FeatureCNN\n"
        "print(sorted(m for m in ['lda_opt.' + n for n in lazy] if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         timeout=120).stdout.splitlines()
    assert out == ["[]", "['lda_opt.nets']"]


@pytest.mark.parametrize("name", LAZY)
def test_lazy_attribute_is_the_subpackage(name):
    assert getattr(lo, name) is importlib.import_module(f"lda_opt.{name}")
    assert name in dir(lo)


def test_public_names_resolve_through_the_top_level():
    assert lo.nets.FeatureCNN is importlib.import_module("lda_opt.nets").FeatureCNN
    assert lo.learning.LDANet is importlib.import_module("lda_opt.learning").LDANet
    assert lo.metrics.psnr is importlib.import_module("lda_opt.metrics").psnr
    assert callable(lo.data.load_image)


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        lo.nope  # noqa: B018


@pytest.mark.parametrize(("setup", "expected"), [("", "agg"), ("matplotlib.use('svg'); import matplotlib.pyplot", "svg")])
def test_figure_writers_keep_a_backend_the_session_chose(setup, expected):
    """The library's PNG writers use Agg in a fresh process but never switch away a backend a
    session (a notebook's inline one) already runs, else its later plt.show() shows nothing."""
    code = (f"import matplotlib; {setup}\nfrom lda_opt._plotting import pyplot\nplt = pyplot()\n"
            "print(matplotlib.get_backend().lower())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "MPLBACKEND": ""})
    assert out.stdout.strip() == expected
