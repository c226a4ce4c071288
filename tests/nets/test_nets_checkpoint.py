"""Checkpoints: safetensors + JSON, bit-exact round trips, and no unpickling, ever."""

import json
import os
import pickle

import pytest
import torch
from torch import nn

import lda_opt
from lda_opt.nets import (
    Adapter,
    Checkpoint,
    Composed,
    FeatureCNN,
    config_path,
    load_checkpoint,
    save_checkpoint,
)


class _Payload:
    """Unpickling this object would create ``marker`` (via os.system-free open())."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _models():
    torch.manual_seed(0)
    return {
        "real32": (FeatureCNN(width=4, depth=3), torch.float32),
        "real64": (FeatureCNN(width=4, depth=2).double(), torch.float64),
        "complex64": (FeatureCNN(width=3, depth=2, complex=True), torch.complex64),
        "complex128": (
            Composed(
                FeatureCNN(width=3, depth=2, complex=True), Adapter(3, 2, complex=True)
            ).double(),
            torch.complex128,
        ),
        "sequential": (
            nn.Sequential(FeatureCNN(width=3, depth=1), Adapter(3, 3, delta=0.2)),
            torch.float32,
        ),
    }


@pytest.mark.parametrize("name", list(_models()))
def test_round_trip_is_bit_identical(tmp_path, name):
    model, dt = _models()[name]
    path = tmp_path / "model.safetensors"
    cfg = save_checkpoint(model, path, epoch=3, note="x", losses=[1.0, 0.5], nested={"a": None})
    assert cfg == tmp_path / "model.json" == config_path(path)
    ck = load_checkpoint(path)
    assert isinstance(ck, Checkpoint)
    loaded, meta = ck
    assert type(loaded) is type(model)
    assert meta == {"epoch": 3, "note": "x", "losses": [1.0, 0.5], "nested": {"a": None}}
    assert ck.lda_opt_version == lda_opt.__version__
    x = torch.randn(2, 1, 6, 5, dtype=dt)
    assert torch.equal(loaded(x), model(x))
    for (k1, v1), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k1 == k2 and v1.dtype == v2.dtype and torch.equal(v1, v2)


def test_config_file_contents(tmp_path):
    model = FeatureCNN(width=8, depth=2, delta=0.05)
    save_checkpoint(model, tmp_path / "g.safetensors", seed=7)
    cfg = json.loads((tmp_path / "g.json").read_text())
    assert cfg["architecture"] == {
        "class": "FeatureCNN",
        "config": {
            "in_channels": 1,
            "width": 8,
            "depth": 2,
            "kernel_size": 3,
            "complex": False,
            "delta": 0.05,
        },
    }
    assert cfg["lda_opt_version"] == lda_opt.__version__
    assert cfg["metadata"] == {"seed": 7}
    # no temporary files are left behind by the atomic writes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.json", "g.safetensors"]


def test_load_with_dtype_and_device(tmp_path):
    model = FeatureCNN(width=2, depth=2)
    save_checkpoint(model, tmp_path / "m.safetensors")
    loaded, _ = load_checkpoint(tmp_path / "m.safetensors", device="cpu", dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in loaded.parameters())
    x = torch.randn(1, 1, 4, 4, dtype=torch.float64)
    # float32 weights widened to float64 exactly
    torch.testing.assert_close(loaded(x), model.double()(x), rtol=0, atol=0)


def test_malicious_pickle_is_never_unpickled(tmp_path):
    marker = tmp_path / "PWNED"
    payload = pickle.dumps(_Payload(str(marker)))
    # sanity: unpickling this payload really would create the marker
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Payload(str(probe)))).close()
    assert probe.exists()
    # 1) given directly under a pickle name: refused by the path convention
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(payload)
    with pytest.raises(ValueError, match="safetensors"):
        load_checkpoint(evil)
    # 2) disguised as a checkpoint with a valid-looking config beside it
    save_checkpoint(FeatureCNN(width=2, depth=1), tmp_path / "model.safetensors")
    (tmp_path / "model.safetensors").write_bytes(payload)
    with pytest.raises(ValueError, match="not a safetensors file|corrupted|truncated"):
        load_checkpoint(tmp_path / "model.safetensors")
    # 3) a torch.save file (zip + pickle) disguised likewise
    torch.save({"w": _Payload(str(marker))}, tmp_path / "model.safetensors")
    with pytest.raises(ValueError):
        load_checkpoint(tmp_path / "model.safetensors")
    assert not marker.exists()


def test_truncated_file_is_rejected(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(FeatureCNN(width=4, depth=2), path)
    data = path.read_bytes()
    for cut in (4, 20, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="truncated|not a safetensors|corrupted"):
            load_checkpoint(path)


def test_corrupted_header_and_config_rejected(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(FeatureCNN(width=4, depth=2), path)
    data = bytearray(path.read_bytes())
    data[8] = ord("[")  # header JSON no longer an object
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupted"):
        load_checkpoint(path)
    save_checkpoint(FeatureCNN(width=4, depth=2), path)
    config_path(path).write_text("{not json")
    with pytest.raises(ValueError, match="corrupted checkpoint config"):
        load_checkpoint(path)


def test_weight_mismatch_lists_keys(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(FeatureCNN(width=4, depth=3), path)
    cfg = json.loads(config_path(path).read_text())
    cfg["architecture"]["config"]["depth"] = 2  # the file has convs.2.weight too many
    config_path(path).write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"unexpected keys \['convs\.2\.weight'\]"):
        load_checkpoint(path)
    cfg["architecture"]["config"]["depth"] = 4
    config_path(path).write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"missing keys \['convs\.3\.weight'\]"):
        load_checkpoint(path)
    cfg["architecture"]["config"]["depth"] = 3
    cfg["architecture"]["config"]["width"] = 5
    config_path(path).write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="shape mismatches"):
        load_checkpoint(path)


def test_config_and_weights_from_different_saves(tmp_path):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_checkpoint(FeatureCNN(width=2, depth=1), a)
    save_checkpoint(FeatureCNN(width=2, depth=1), b)
    os.replace(config_path(b), config_path(a))
    with pytest.raises(ValueError, match="different saves"):
        load_checkpoint(a)


@pytest.mark.parametrize(
    "meta,exc",
    [
        ({"x": torch.ones(1)}, TypeError),
        ({"x": object()}, TypeError),
        ({"x": float("nan")}, ValueError),
        ({"x": {1: 2}}, TypeError),
    ],
)
def test_non_json_metadata_rejected_before_writing(tmp_path, meta, exc):
    with pytest.raises(exc, match="metadata"):
        save_checkpoint(FeatureCNN(width=2, depth=1), tmp_path / "m.safetensors", **meta)
    assert list(tmp_path.iterdir()) == []


def test_unregistered_module_and_bad_path(tmp_path):
    with pytest.raises(TypeError, match="registered"):
        save_checkpoint(nn.Linear(2, 2), tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match="safetensors"):
        save_checkpoint(FeatureCNN(width=2, depth=1), tmp_path / "m.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "absent.safetensors")


def test_unknown_architecture_in_config_is_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(FeatureCNN(width=2, depth=1), path)
    cfg = json.loads(config_path(path).read_text())
    cfg["architecture"]["class"] = "os.system"
    config_path(path).write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="unknown architecture class 'os.system'"):
        load_checkpoint(path)
    cfg["architecture"] = {"class": "FeatureCNN", "config": {"widht": 2}}
    config_path(path).write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="cannot build 'FeatureCNN'"):
        load_checkpoint(path)


def test_register_custom_architecture(tmp_path):
    from lda_opt.nets import ARCHITECTURES, register_architecture

    class Scale(nn.Module):
        def __init__(self, channels: int = 1) -> None:
            super().__init__()
            self.channels = channels
            self.w = nn.Parameter(torch.randn(1, channels, 1, 1))

        def config(self) -> dict:
            return {"channels": self.channels}

        def forward(self, x):
            return self.w * x

    try:
        register_architecture(Scale, name="test.Scale")
        model = Composed(FeatureCNN(width=3, depth=1), Scale(3))
        save_checkpoint(model, tmp_path / "s.safetensors")
        loaded, _ = load_checkpoint(tmp_path / "s.safetensors")
        x = torch.randn(1, 1, 5, 5)
        assert torch.equal(loaded(x), model(x))
    finally:
        ARCHITECTURES.pop("test.Scale", None)
