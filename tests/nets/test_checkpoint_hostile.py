"""Hostile and broken checkpoints: every one is a named error, nothing is allocated beyond the
file's size before a lie is refused, and no code in a file ever runs.

Hand-made lies (a safetensors header declaring wrong shapes, huge sizes, overlapping data, a
JSON config declaring another or a gigantic architecture, pickles under a ``.safetensors``
name) and hypothesis-generated ones (random bytes, every truncation, byte mutations of the
header and of the config, bad paths), for :func:`lda_opt.nets.load_checkpoint` and for
``lda-opt solve --checkpoint BAD`` (exit status 2, one line on stderr, no output folder).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import pickle
import shutil
import struct

import pytest
import safetensors.torch
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lda_opt.cli import main
from lda_opt.nets import ARCHITECTURES, FeatureCNN, config_path, load_checkpoint, save_checkpoint
from lda_opt.nets.checkpoint import read_checkpoint_config

NAMED = (ValueError, TypeError, FileNotFoundError)
FUZZ = settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


class _Payload:
    """Unpickling this object creates the file ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(autouse=True)
def no_unpickling(monkeypatch):
    """Fail the test if anything reaches pickle or torch.load; count safetensors loads."""

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle / torch.load was reached")

    for mod, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")):
        monkeypatch.setattr(mod, name, forbidden)
    calls = []
    real = safetensors.torch.load_file

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(safetensors.torch, "load_file", counted)
    return calls


class Good(tuple):
    """A valid checkpoint: unpacks as ``(path, header dict, data bytes, original tensors)``;
    ``reset()`` restores both files (a hypothesis example starts from the saved ones)."""

    def reset(self):
        path = self[0]
        if path.is_dir():
            path.rmdir()
        if os.path.lexists(path) and not path.is_file():
            path.unlink()
        path.write_bytes(self.files[0])
        config_path(path).write_bytes(self.files[1])
        return self


@pytest.fixture
def good(tmp_path):
    torch.manual_seed(0)
    model = FeatureCNN(width=2, depth=2)
    path = tmp_path / "m.safetensors"
    save_checkpoint(model, path, weight=0.05)
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    g = Good((path, json.loads(raw[8:8 + n]), raw[8 + n:], {k: v.clone() for k, v in model.state_dict().items()}))
    g.files = (raw, config_path(path).read_bytes())
    return g


def _write(path, header, data: bytes, length: int | None = None) -> None:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)


def _entry(header):
    return header["convs.0.weight"]  # [2, 1, 3, 3] float32: 72 bytes at [0, 72]


# ---------------------------------------------------------------------------------------
# a safetensors header that lies: refused from the header alone, before safetensors runs
# ---------------------------------------------------------------------------------------
def _lie(kind, header, data):
    e = _entry(header)
    if kind == "shape needs more bytes":
        e["shape"] = [2, 1, 3, 4]
    elif kind == "huge declared size":
        e["shape"], e["data_offsets"] = [2 ** 40], [0, 2 ** 42]
        for k, v in header.items():
            if k not in ("__metadata__", "convs.0.weight"):
                v["data_offsets"] = [o + 2 ** 42 - 72 for o in v["data_offsets"]]
    elif kind == "overflowing shape":
        e["shape"] = [2 ** 62, 2 ** 62, 2 ** 62]
    elif kind == "negative dimension":
        e["shape"] = [-2, -1, 3, 3]
    elif kind == "boolean dimension":
        e["shape"] = [True, 2, 3, 3]
    elif kind == "float dimension":
        e["shape"] = [2.0, 1, 3, 3]
    elif kind == "unknown dtype":
        e["dtype"] = "F99"
    elif kind == "reversed offsets":
        e["data_offsets"] = e["data_offsets"][::-1]
    elif kind == "overlapping tensors":
        header["alias"] = dict(e)
    elif kind == "gap between tensors":
        for k, v in header.items():
            if k != "__metadata__":
                v["data_offsets"] = [o + 8 for o in v["data_offsets"]]
        return header, b"\0" * 8 + data
    elif kind == "extra field":
        e["code"] = "__import__('os').system('touch PWNED')"
    elif kind == "non-string metadata":
        header["__metadata__"]["format"] = 5
    elif kind == "header length beyond the file":
        return header, data, 2 ** 63
    elif kind == "deeply nested header":
        return b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", data
    return header, data


LIES = {
    "shape needs more bytes": r"entry 'convs\.0\.weight': shape \[2, 1, 3, 4\] of F32 needs 96 bytes, "
                              r"data_offsets \[0, 72\] span 72",
    "huge declared size": r"truncated or corrupted: header describes \d+ bytes, file has \d+",
    "overflowing shape": r"shape \[4611686018427387904, .*\] of F32 needs \d+ bytes",
    "negative dimension": r"shape \[-2, -1, 3, 3\] is not a list of non-negative integers",
    "boolean dimension": r"shape \[True, 2, 3, 3\] is not a list of non-negative integers",
    "float dimension": r"shape \[2\.0, 1, 3, 3\] is not a list of non-negative integers",
    "unknown dtype": r"dtype 'F99' is not one of",
    "reversed offsets": r"data_offsets \[72, 0\] is not \[begin, end\]",
    "overlapping tensors": r"data_offsets overlaps the previous tensor",
    "gap between tensors": r"data_offsets leaves a gap after byte 0",
    "extra field": r"entry 'convs\.0\.weight': needs exactly the fields dtype, shape, data_offsets",
    "non-string metadata": r"__metadata__ must map str to str",
    "header length beyond the file": r"not a safetensors file or truncated \(header length 9223372036854775808",
    "deeply nested header": r"corrupted safetensors header \(RecursionError",
}


@pytest.mark.parametrize("kind", list(LIES))
def test_a_lying_safetensors_header_is_refused_before_safetensors_reads_it(good, no_unpickling, kind):
    path, header, data, _ = good
    _write(path, *_lie(kind, header, data))
    with pytest.raises(ValueError, match=LIES[kind]) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert no_unpickling == []  # safetensors never saw the file: nothing was allocated


# ---------------------------------------------------------------------------------------
# a JSON config that lies about the architecture: compared on the meta device
# ---------------------------------------------------------------------------------------
@pytest.fixture
def build_devices(monkeypatch):
    """The default device under which each FeatureCNN of a load is constructed."""
    seen = []
    entry = ARCHITECTURES["FeatureCNN"]

    def recording(cfg):
        seen.append(torch.empty(0).device.type)
        return entry.from_config(cfg)

    monkeypatch.setitem(ARCHITECTURES, "FeatureCNN", dataclasses.replace(entry, from_config=recording))
    return seen


def test_a_gigantic_architecture_in_the_config_is_refused_without_allocating_it(good, build_devices, no_unpickling):
    path, *_ = good
    cfg = json.loads(config_path(path).read_text())
    cfg["architecture"]["config"]["width"] = 2 ** 24  # 10^15 parameters: allocating them would fail
    config_path(path).write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"do not match the architecture FeatureCNN: .*shape mismatches "
                                         r"\['convs\.0\.weight: file \(2, 1, 3, 3\) != model \(16777216, 1, 3, 3\)'"):
        load_checkpoint(path)
    assert build_devices == ["meta"] and no_unpickling == []
    build_devices.clear()
    cfg["architecture"]["config"]["width"] = 2
    config_path(path).write_text(json.dumps(cfg))
    load_checkpoint(path)
    assert build_devices == ["meta", "cpu"]  # the real build only once the shapes agree


def test_another_architecture_or_dtype_in_the_config_is_refused(good, no_unpickling):
    path, *_ = good
    cfg = json.loads(config_path(path).read_text())
    cfg["architecture"] = {"class": "Adapter", "config": {"in_channels": 2, "out_channels": 3}}
    config_path(path).write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"architecture Adapter: missing keys \['conv\.weight'\], "
                                         r"unexpected keys \['convs\.0\.weight', 'convs\.1\.weight'\]"):
        load_checkpoint(path)
    save_checkpoint(FeatureCNN(width=2, depth=2), path)
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    _entry(header)["dtype"] = "I32"  # same byte count, integer data for a float weight
    _write(path, header, raw[8 + n:])
    with pytest.raises(ValueError, match=r"dtype mismatches \['convs\.0\.weight: file torch\.int32 != model torch\.float32'\]"):
        load_checkpoint(path)
    assert no_unpickling == []
    cfg = json.loads(config_path(path).read_text())
    for depth in (5_000, 300):  # JSON nesting beyond the parser's limit, and a deep but parseable one
        spec = '{"class": "Sequential", "config": {"modules": [' * depth + "]}}" * depth
        text = json.dumps(cfg).replace(json.dumps(cfg["architecture"]), spec)
        config_path(path).write_text(text)
        with pytest.raises(ValueError, match="corrupted checkpoint config|nested too deeply|do not match"):
            load_checkpoint(path)


# ---------------------------------------------------------------------------------------
# pickles under a .safetensors name: refused at the first 8 bytes, never unpickled
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5, "torch.save", "torch.save legacy"])
def test_a_pickle_renamed_safetensors_is_refused_and_never_runs(good, tmp_path, protocol, no_unpickling):
    path, *_ = good
    marker = tmp_path / "PWNED"
    payload = {"convs.0.weight": _Payload(str(marker))}
    if isinstance(protocol, int):
        blob = pickle.dumps(payload, protocol=protocol)
    else:  # pickling is allowed: the fixture forbids only unpickling
        buf = io.BytesIO()
        torch.save(payload, buf, _use_new_zipfile_serialization=protocol == "torch.save")
        blob = buf.getvalue()
    path.write_bytes(blob)
    with pytest.raises(ValueError, match="not a safetensors file"):
        load_checkpoint(path)
    assert not marker.exists() and no_unpickling == []


# ---------------------------------------------------------------------------------------
# hypothesis: random bytes, truncations, mutations, paths
# ---------------------------------------------------------------------------------------
@FUZZ
@given(blob=st.binary(max_size=2048), framed=st.booleans())
def test_random_bytes_are_a_value_error(good, blob, framed):
    path, *_ = good.reset()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob if framed else blob)  # framed: a plausible length
    with pytest.raises(ValueError, match=str(path.name)):
        load_checkpoint(path)


@FUZZ
@given(data=st.data())
def test_every_truncation_is_a_value_error(good, data):
    path, *_ = good.reset()
    full = path.read_bytes()
    cut = data.draw(st.integers(0, len(full) - 1))
    path.write_bytes(full[:cut])
    with pytest.raises(ValueError, match="truncated|not a safetensors file|corrupted"):
        load_checkpoint(path)


def _outcome(path, originals):
    """A named error, or a checkpoint whose tensors are exactly the saved ones."""
    try:
        module, _ = load_checkpoint(path)
    except NAMED as exc:
        assert str(exc) and "\n" not in str(exc)
        return type(exc)
    sd = module.state_dict()
    assert set(sd) == set(originals)
    assert all(torch.equal(sd[k], originals[k]) for k in sd)
    return None


@FUZZ
@given(data=st.data())
def test_mutated_headers_are_refused_or_load_the_saved_tensors(good, data):
    path, header, rest, originals = good.reset()
    text = bytearray(struct.pack("<Q", len(json.dumps(header))) + json.dumps(header).encode())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(text) - 1))
        text[i] = data.draw(st.integers(0, 255))
    path.write_bytes(bytes(text) + rest)
    _outcome(path, originals)


@FUZZ
@given(data=st.data())
def test_mutated_configs_are_refused_or_load_the_saved_tensors(good, data):
    path, _, _, originals = good.reset()
    cfg = bytearray(config_path(path).read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(cfg) - 1))
        cfg[i] = data.draw(st.integers(0, 255))
    config_path(path).write_bytes(bytes(cfg))
    _outcome(path, originals)


NAME = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0"), min_size=1, max_size=40)


@FUZZ
@given(kind=st.sampled_from(["missing", "directory", "suffix", "nul", "long", "json-missing", "dangling"]),
       name=NAME)
def test_bad_paths_are_named_errors(tmp_path, kind, name):
    base = tmp_path / f"k{abs(hash((kind, name)))}"
    base.mkdir(exist_ok=True)
    if kind == "missing":
        p, exc, frag = base / (name + ".safetensors"), FileNotFoundError, "checkpoint file not found"
    elif kind == "directory":
        p, exc, frag = base / "d.safetensors", ValueError, "is a directory, not a file"
        p.mkdir(exist_ok=True)
        config_path(p).write_text("{}")
    elif kind == "suffix":
        p, exc, frag = base / (name + ".pt"), ValueError, "must end in '.safetensors'"
    elif kind == "nul":
        p, exc, frag = str(base / (name + "\0.safetensors")), ValueError, "NUL byte"
    elif kind == "long":
        p, exc, frag = base / ((name * 300)[:300] + ".safetensors"), ValueError, "name too long"
    elif kind == "json-missing":
        p, exc, frag = base / "w.safetensors", FileNotFoundError, r"not found: .*w\.json"
        p.write_bytes(b"\0" * 16)
    else:
        p, exc, frag = base / "s.safetensors", FileNotFoundError, "checkpoint file not found"
        if not os.path.lexists(p):
            os.symlink(base / "nowhere", p)
    if kind == "long" and len(os.fsencode(os.path.basename(p))) <= 255:
        exc, frag = FileNotFoundError, "checkpoint file not found"
    with pytest.raises(exc, match=frag):
        load_checkpoint(p)


@pytest.mark.parametrize("bad", [None, 3, b"m.safetensors", ["m.safetensors"]])
def test_a_path_of_another_type_is_a_type_error(bad):
    with pytest.raises(TypeError, match="path must be a str or an os.PathLike"):
        load_checkpoint(bad)


def test_unreadable_and_special_files_are_named_errors_without_hanging(good, tmp_path):
    path, *_ = good
    cfg = config_path(path)
    # a file that exists but cannot be read even by root (/proc/self/mem: EIO at offset 0)
    mem = tmp_path / "mem.safetensors"
    os.symlink("/proc/self/mem", mem)
    config_path(mem).write_bytes(cfg.read_bytes())
    with pytest.raises(ValueError, match=r"mem\.safetensors: cannot read the weight file"):
        load_checkpoint(mem)
    cfg_mem = tmp_path / "c.safetensors"
    cfg_mem.write_bytes(path.read_bytes())
    os.symlink("/proc/self/mem", config_path(cfg_mem))
    with pytest.raises(ValueError, match=r"c\.json: cannot read the checkpoint config"):
        load_checkpoint(cfg_mem)
    # a named pipe: opening it for reading would block forever
    fifo = tmp_path / "p.safetensors"
    os.mkfifo(fifo)
    config_path(fifo).write_bytes(cfg.read_bytes())
    with pytest.raises(ValueError, match=r"p\.safetensors is not a regular file"):
        load_checkpoint(fifo)
    if os.geteuid() != 0:  # root reads a mode-000 file anyway
        path.chmod(0)
        with pytest.raises(ValueError, match="cannot read the weight file"):
            load_checkpoint(path)


def test_read_checkpoint_config_reads_only_the_json(good, no_unpickling):
    path, *_ = good
    path.write_bytes(b"not even safetensors")
    assert read_checkpoint_config(path)["metadata"] == {"weight": 0.05}
    assert no_unpickling == []


# ---------------------------------------------------------------------------------------
# the CLI: lda-opt solve --checkpoint BAD exits 2 with one line and writes nothing
# ---------------------------------------------------------------------------------------
def _solve_with(checkpoint, out):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["solve", "--quiet", "--size", "8", "--checkpoint", str(checkpoint), "--out", str(out)])
    return rc, err.getvalue()


@FUZZ
@given(data=st.data())
def test_cli_solve_with_a_bad_checkpoint_exits_2_with_one_line(good, tmp_path, data):
    path, header, _, _ = good.reset()
    kind = data.draw(st.sampled_from(["bytes", "truncated", "header", "config", "pickle", "directory",
                                      "missing", "gigantic"]))
    if kind == "bytes":
        path.write_bytes(data.draw(st.binary(max_size=512)))
    elif kind == "truncated":
        full = path.read_bytes()
        path.write_bytes(full[:data.draw(st.integers(0, len(full) - 1))])
    elif kind in ("header", "config"):
        target = path if kind == "header" else config_path(path)
        blob = bytearray(target.read_bytes())
        limit = len(blob) if kind == "config" else 8 + len(json.dumps(header))
        for _ in range(data.draw(st.integers(1, 4))):
            blob[data.draw(st.integers(0, limit - 1))] = data.draw(st.integers(0, 255))
        target.write_bytes(bytes(blob))
    elif kind == "pickle":
        path.write_bytes(pickle.dumps({"w": [1.0] * 4}, protocol=data.draw(st.integers(0, 5))))
    elif kind == "directory":
        path.unlink()
        path.mkdir()
    elif kind == "missing":
        path.unlink()
    else:
        cfg = json.loads(config_path(path).read_text())
        cfg["architecture"]["config"]["width"] = 2 ** 24
        config_path(path).write_text(json.dumps(cfg))
    out = tmp_path / "out"
    rc, err = _solve_with(path, out)
    if rc == 0:  # a harmless mutation (e.g. inside the metadata): a complete run, a complete folder
        assert kind in ("header", "config") and len(os.listdir(out)) == 5
        shutil.rmtree(out)
        return
    assert rc == 2, err
    assert err.startswith("lda-opt solve: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert not out.exists() and not any(n.startswith(".out.") for n in os.listdir(tmp_path))
