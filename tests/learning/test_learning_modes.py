"""The groundwork of the learning systems: ``train.mode``, the mode sections of a config,
the meta-LDA / ELDA phases of LDA-Net and per-sample (learned) weights."""

from __future__ import annotations

import pytest
import torch

from lda_opt.algorithms import ELDA, MetaLDA
from lda_opt.data import random_ellipses
from lda_opt.learning import LDANet, TrainConfig
from lda_opt.learning.config import MODE_SECTIONS, TRAIN_MODES
from lda_opt.tasks import MRITask


def test_unknown_mode_is_refused_naming_the_field():
    with pytest.raises(ValueError, match="train.mode"):
        TrainConfig.from_dict({"train": {"mode": "bilevel"}})


def test_standard_config_has_no_mode_sections_and_round_trips():
    cfg = TrainConfig.from_dict({"train": {"epochs_first": 1}})
    d = cfg.to_dict()
    assert d["train"]["mode"] == "standard"
    assert not {key for key, _ in MODE_SECTIONS.values()} & set(d)
    assert TrainConfig.from_dict(d).to_dict() == d


@pytest.mark.parametrize("mode", [m for m in TRAIN_MODES if m != "standard"])
def test_a_section_of_another_mode_is_refused(mode):
    key = MODE_SECTIONS[mode][0]
    with pytest.raises(ValueError, match=repr(key)):
        TrainConfig.from_dict({"train": {"mode": "standard"}, key: {}})


@pytest.mark.parametrize(("algorithm", "cls"), [("meta-lda", MetaLDA), ("elda", ELDA)])
def test_phase_solver_is_the_papers_algorithm_with_its_own_search(algorithm, cls):
    net = LDANet(2, 4, 2, algorithm, complex=True, alpha=0.1, tau=0.2, gamma_u=0.3)
    solver = net.phase_solver()
    assert type(solver) is cls
    assert net.metadata()["solver"]["smoothing"] == ("sqrt" if algorithm == "meta-lda" else "huber")
    assert net.metadata()["solver"]["linesearch"] is True
    learned = net.phase_params()
    assert set(learned) == ({"alpha", "tau"} if algorithm == "meta-lda" else {"alpha", "gamma_u"})
    second = "tau" if algorithm == "meta-lda" else "gamma_u"
    assert torch.allclose(learned[second], torch.full((2,), 0.2 if algorithm == "meta-lda" else 0.3))


def _mri(n=3, side=12):
    task = MRITask(0.3, shape=(side, side))
    truth = random_ellipses(n, side, seed=0).to(torch.complex128)
    return task.measure(truth)


@pytest.mark.parametrize("algorithm", ["lda", "meta-lda", "elda"])
def test_a_per_sample_weight_tensor_carries_gradients_and_equals_the_float(algorithm):
    m = _mri()
    torch.manual_seed(0)
    net = LDANet(2, 4, 2, algorithm, complex=True, alpha=0.1, tau=0.1).double()
    w = torch.full((3,), 0.7, dtype=torch.float64, requires_grad=True)
    x_t, _ = net(net.problem(m.fidelity(), weight=w), m.x0)
    net.weight = 0.7
    x_f, _ = net(net.problem(m.fidelity()), m.x0)
    # the same computation with kappa a (B,) tensor or a float: equal to float64 round-off
    assert torch.allclose(x_t, x_f, rtol=0, atol=1e-12)
    (x_t - m.truth).abs().square().sum().backward()
    assert w.grad is not None and w.grad.shape == (3,) and bool(torch.isfinite(w.grad).all())
    assert bool((w.grad != 0).all())


def test_per_sample_weight_in_a_batch_equals_each_sample_alone():
    m = _mri()
    torch.manual_seed(1)
    net = LDANet(2, 4, 2, "meta-lda", complex=True, alpha=0.1, tau=0.1).double()
    w = torch.tensor([0.3, 0.6, 0.9], dtype=torch.float64)
    x_b, _ = net.reconstruct(net.problem(m.fidelity(), weight=w), m.x0)
    for i in range(3):
        mi = m.select(torch.tensor([i]))
        x_i, _ = net.reconstruct(net.problem(mi.fidelity(), weight=w[i:i + 1]), mi.x0)
        assert torch.allclose(x_b[i:i + 1], x_i, rtol=0, atol=1e-12)
