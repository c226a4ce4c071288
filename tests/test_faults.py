"""Faults during long work (issue 15, item 3): kills and Ctrl-C during ``lda-opt train`` and
``lda-opt solve``.

The interruptions are deterministic: ``LDA_OPT_FAULT="EVENT#N=SIGNAL"`` makes the process
send itself the signal the N-th time it reaches ``fault_point(EVENT)`` (see
:mod:`lda_opt._atomic`), so every kill lands exactly where the test says, on a slow machine
as on a fast one; a run that never reaches its kill point exits 0 and fails the test.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lda_opt._atomic import (
    FAULT_ENV,
    atomic_write_text,
    fault_point,
    remove_stale_temps,
    staged_dir,
)
from lda_opt.cli import main
from lda_opt.learning import TrainConfig, train
from lda_opt.learning.train import _RUN_FILES, _load_state
from lda_opt.nets import config_path, load_checkpoint

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PNG_END = b"IEND\xaeB`\x82"

# 5 epochs of 2 steps (6 samples, batch 4): stage 1 = K 1 for 3 epochs, stage 2 = K 3 for 2
TINY = {
    "name": "tiny",
    "seed": 3,
    "task": {"kind": "mri", "ratio": 0.3, "shape": [16, 16], "mask": "radial", "mask_seed": 1},
    "data": {"train": 6, "val": 2, "seed": 5},
    "net": {"width": 2, "depth": 1, "alpha": 0.5, "tau": 0.5, "weight": 0.1},
    "train": {"phases": 3, "first_phases": 1, "phase_step": 2, "epochs_first": 3, "epochs_stage": 2,
              "batch_size": 4, "lr": 0.01, "threads": 1, "select": "best_val"},
}
TEMP = re.compile(r"^\.(" + "|".join(re.escape(n) for n in _RUN_FILES) + r")\..+\.tmp$")


def _cli(args: list[str], fault: str | None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    env.pop(FAULT_ENV, None)
    if fault is not None:
        env[FAULT_ENV] = fault
    return subprocess.run([*LDA_OPT, *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


#: ``python -m lda_opt.cli`` with SIGINT's handler set first.  A process started in the
#: background of a non-interactive shell (``make test &``, some CI runners) inherits SIGINT
#: *ignored*, and Python then installs no KeyboardInterrupt handler: a Ctrl-C test would see
#: the signal vanish.  What is tested is the program's answer to a Ctrl-C.
_CHILD = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
          "runpy.run_module('lda_opt.cli', run_name='__main__')")
LDA_OPT = [sys.executable, "-c", _CHILD]


def _assert_every_file_complete(out: Path, pair_errors: dict[str, tuple[type, str]]) -> int:
    """Every file in ``out`` is a run file or a hidden temporary, and every run file present
    is complete: JSON parses, the PNG ends in its IEND chunk, the state loads, and each
    checkpoint pair loads -- except the pairs of ``pair_errors``, which must be refused with
    exactly that error (a kill between the two renames of a pair).  Returns the state's epoch."""
    names = {p.name for p in out.iterdir()}
    assert all(n in _RUN_FILES or TEMP.match(n) for n in names), sorted(names)
    for n in ("config.json", "log.json"):
        if n in names:
            json.loads((out / n).read_text(encoding="utf-8"))
    if "curves.png" in names:
        data = (out / "curves.png").read_bytes()
        assert data[:8] == PNG_MAGIC and data.endswith(PNG_END)
    for weights in ("model.safetensors", "best.safetensors"):
        if weights in names or weights in pair_errors:
            if weights in pair_errors:
                exc, fragment = pair_errors[weights]
                with pytest.raises(exc, match=fragment):
                    load_checkpoint(out / weights)
            else:
                load_checkpoint(out / weights)
    _, info = _load_state(out)
    log = json.loads((out / "log.json").read_text(encoding="utf-8"))
    assert len(log["epochs"]) <= info["epoch"]  # the log is written after the state, never ahead
    return int(info["epoch"])


def test_train_killed_at_seven_points_then_resumed_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    """SIGKILL at 6 points (mid-epoch; state temporary complete but not renamed; between the
    two renames of model.*; after the curves of a stage; best.safetensors without its json;
    after the final state, before the log) and one Ctrl-C, each followed by ``--resume``:
    after every interruption each file is absent or complete, and the final weights, Adam
    moments, exported checkpoints and log equal an uninterrupted run's exactly."""
    cfg_path = tmp_path / "tiny.json"
    cfg_path.write_text(json.dumps(TINY))
    out = tmp_path / "run"
    base = ["train", "--config", str(cfg_path), "--out", str(out), "--quiet"]
    KILL = -signal.SIGKILL
    # (fault, expected return code, state epoch after it, pairs refused, a stale temporary left?)
    chain = [
        ("step#3=KILL", KILL, 1, {}, False),  # epoch 2, after its first step
        ("replace:state.safetensors#1=KILL", KILL, 1, {}, True),  # epoch 2 complete but not committed
        ("replaced:model.safetensors#1=KILL", KILL, 1,  # model.safetensors of epoch 2, model.json of 1
         {"model.safetensors": (ValueError, "different saves")}, False),
        ("replaced:curves.png#1=KILL", KILL, 3, {}, False),  # epochs 2-3: the end of stage 1
        ("replaced:best.safetensors#1=KILL", KILL, 3,  # epoch 4: the first best, best.json not yet written
         {"best.safetensors": (FileNotFoundError, "best.json")}, False),
        ("step#3=INT", 130, 4, {}, False),  # Ctrl-C in epoch 5
        ("replaced:state.safetensors#1=KILL", KILL, 5, {}, False),  # epoch 5 committed, log.json not
        (None, 0, 5, {}, False),  # nothing left to train: the log and curves come from the state
    ]
    for i, (fault, rc, epoch, pair_errors, temp_left) in enumerate(chain):
        proc = _cli(base + (["--resume"] if i else []), fault)
        assert proc.returncode == rc, (fault, proc.returncode, proc.stderr[-2000:])
        if rc == 130:
            assert proc.stderr == (f"lda-opt train: interrupted; {out / 'state.safetensors'} holds the last "
                                   "complete epoch; continue with --resume\n")
        assert _assert_every_file_complete(out, pair_errors) == epoch, fault
        temps = [n for n in os.listdir(out) if TEMP.match(n)]
        assert bool(temps) == temp_left, (fault, temps)
    log = json.loads((out / "log.json").read_text())
    assert log["complete"] is True and len(log["epochs"]) == 5
    assert (out / "curves.png").read_bytes().endswith(PNG_END)

    ref = tmp_path / "ref"
    full = train(TrainConfig.from_dict(TINY), ref, quiet=True)
    for name in ("state.safetensors", "model.safetensors", "best.safetensors"):
        a, b = load_file(str(ref / name)), load_file(str(out / name))
        assert set(a) == set(b), name
        for k in a:
            assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), (name, k)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert strip(full["epochs"]) == strip(log["epochs"]) and full["best"] == log["best"]
    assert sorted(os.listdir(out)) == sorted(os.listdir(ref)) == sorted(_RUN_FILES)


@pytest.mark.slow
def test_train_killed_at_random_moments_then_resumed_is_bit_identical(tmp_path):
    """The timing variant (``-m slow``): SIGKILL after seeded random delays, which also lands
    inside a file write; after each kill every file is absent or complete, and the resumed
    run equals an uninterrupted one bit for bit."""
    import random
    import time

    big = json.loads(json.dumps(TINY))  # 60 epochs of 6 steps: about 30 s of training after the start
    big["data"]["train"], big["train"]["epochs_first"], big["train"]["epochs_stage"] = 24, 30, 30
    cfg_path = tmp_path / "big.json"
    cfg_path.write_text(json.dumps(big))
    out = tmp_path / "run"
    base = ["train", "--config", str(cfg_path), "--out", str(out), "--quiet"]
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    env.pop(FAULT_ENV, None)
    rng = random.Random(15)
    kills = 0
    rc = None
    while kills < 8:
        resume = (out / "state.safetensors").is_file()
        proc = subprocess.Popen([*LDA_OPT, *base, *(["--resume"] if resume else [])],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(3.5, 7.0))  # the start (imports) takes about 4 s
        proc.kill()
        rc = proc.wait()
        proc_err = proc.stderr.read().decode()
        proc.stderr.close()
        assert rc in (0, -signal.SIGKILL), proc_err
        if rc == 0:
            break
        kills += 1
        if out.is_dir() and (out / "state.safetensors").is_file() and (out / "log.json").is_file():
            pairs = {w: _pair_error(out / w) for w in ("model.safetensors", "best.safetensors")}
            _assert_every_file_complete(out, {w: e for w, e in pairs.items() if e is not None})
    assert kills >= 5
    if rc != 0:
        assert _cli([*base, "--resume"], None).returncode == 0
    ref = tmp_path / "ref"
    train(TrainConfig.from_dict(big), ref, quiet=True)
    for name in ("state.safetensors", "model.safetensors", "best.safetensors"):
        a, b = load_file(str(ref / name)), load_file(str(out / name))
        assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a), name
    assert not [n for n in os.listdir(out) if TEMP.match(n)]


def _pair_error(weights: Path) -> tuple[type, str] | None:
    """None if the checkpoint pair loads; the refusal if a kill fell between its two renames
    (weights from one save, config from the previous one, or not yet written)."""
    if not weights.exists():
        return None
    try:
        load_checkpoint(weights)
    except ValueError as exc:
        assert "different saves" in str(exc), exc
        return ValueError, "different saves"
    except FileNotFoundError as exc:
        assert str(config_path(weights)) in str(exc), exc
        return FileNotFoundError, "not found"
    return None


def test_resume_refuses_a_truncated_or_foreign_state_with_a_named_error(tmp_path):
    cfg = TrainConfig.from_dict(TINY)
    train(cfg, tmp_path, quiet=True, stop_after=1)
    state = tmp_path / "state.safetensors"
    data = state.read_bytes()
    state.write_bytes(data[: len(data) - 3])
    with pytest.raises(ValueError, match=r"state\.safetensors: truncated or corrupted"):
        train(cfg, tmp_path, quiet=True, resume=True)
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(state))  # a safetensors file, but not a training state
    with pytest.raises(ValueError, match=r"not a training state of this lda_opt .*version None"):
        train(cfg, tmp_path, quiet=True, resume=True)


# ---------------------------------------------------------------------------------------
# lda-opt solve: the output folder appears complete or not at all
# ---------------------------------------------------------------------------------------
SOLVE = ["solve", "--quiet", "--size", "8", "--eps-tol", "0.5"]
OUTPUTS = {"result.json", "trace.csv", "x.npy", "recon.png", "convergence.png"}


def test_solve_sigint_during_the_solve_leaves_no_folder_and_one_line(tmp_path):
    out = tmp_path / "o"
    proc = _cli([*SOLVE, "--out", str(out)], "solve:run=INT")
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == f"lda-opt solve: interrupted; no output written ({out} is as it was before the run)\n"
    assert os.listdir(tmp_path) == []  # no folder, no staging folder


def test_solve_killed_before_the_rename_leaves_no_folder_and_the_next_run_cleans_up(tmp_path):
    out = tmp_path / "o"
    proc = _cli([*SOLVE, "--out", str(out)], "commit:o=KILL")  # every file written, not yet renamed
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = os.listdir(tmp_path)
    assert len(left) == 1 and re.fullmatch(r"\.o\.[a-z0-9_]+\.partial", left[0])
    assert set(os.listdir(tmp_path / left[0])) == OUTPUTS  # it was killed after the last file
    assert main([*SOLVE, "--out", str(out)]) == 0
    assert os.listdir(tmp_path) == ["o"] and set(os.listdir(out)) == OUTPUTS


def test_solve_interrupted_while_writing_keeps_the_earlier_folder_byte_for_byte(tmp_path, monkeypatch, capsys):
    from lda_opt.commands import solve

    out = tmp_path / "o"
    assert main([*SOLVE, "--out", str(out)]) == 0
    before = {n: (out / n).read_bytes() for n in os.listdir(out)}
    assert set(before) == OUTPUTS

    def interrupted(path, *args):
        assert Path(path).parent != out  # written into the staging folder, never into out
        raise KeyboardInterrupt

    monkeypatch.setattr(solve, "_plot_convergence", interrupted)  # the last file of the five
    assert main([*SOLVE, "--size", "10", "--out", str(out)]) == 130
    assert capsys.readouterr().err.count("\n") == 1
    assert os.listdir(tmp_path) == ["o"]
    assert {n: (out / n).read_bytes() for n in os.listdir(out)} == before


def test_solve_replaces_an_earlier_output_folder_and_refuses_a_folder_with_other_files(tmp_path, capsys):
    out = tmp_path / "o"
    assert main([*SOLVE, "--out", str(out)]) == 0
    assert main([*SOLVE, "--size", "10", "--out", str(out)]) == 0
    assert json.loads((out / "result.json").read_text())["problem"]["shape"] == [1, 1, 10, 10]
    assert os.listdir(tmp_path) == ["o"] and set(os.listdir(out)) == OUTPUTS
    capsys.readouterr()
    (out / "notes.txt").write_text("mine")
    before = {n: (out / n).read_bytes() for n in os.listdir(out)}
    assert main([*SOLVE, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds files this command did not write (notes.txt)" in err
    assert {n: (out / n).read_bytes() for n in os.listdir(out)} == before


# ---------------------------------------------------------------------------------------
# the helpers themselves
# ---------------------------------------------------------------------------------------
def test_atomic_write_keeps_the_old_file_on_error_and_gives_umask_permissions(tmp_path):
    target = tmp_path / "f.json"
    atomic_write_text(target, "old")
    mask = os.umask(0o027)
    try:
        atomic_write_text(target, "new")
        assert target.stat().st_mode & 0o777 == 0o640  # 0o666 & ~umask, not mkstemp's 0o600
    finally:
        os.umask(mask)
    from lda_opt._atomic import atomic_write

    def failing(tmp):
        Path(tmp).write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, failing)
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["f.json"]


def test_remove_stale_temps_removes_only_the_temporaries_of_the_named_files(tmp_path):
    keep = [".log.json", "log.json", ".other.json.abc.tmp", ".log.jsonx.abc.tmp"]
    gone = [".log.json.k2j3_x.tmp", ".state.safetensors.a.tmp"]
    for n in keep + gone:
        (tmp_path / n).write_text("x")
    assert sorted(p.name for p in remove_stale_temps(tmp_path, ["log.json", "state.safetensors"])) == sorted(gone)
    assert sorted(os.listdir(tmp_path)) == sorted(keep)


def test_staged_dir_removes_its_staging_folder_on_any_exception(tmp_path):
    out = tmp_path / "o"
    with pytest.raises(RuntimeError, match="boom"), staged_dir(out, {"a"}) as tmp:
        (tmp / "a").write_text("1")
        raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    with staged_dir(out, {"a"}) as tmp:
        (tmp / "a").write_text("2")
    assert (out / "a").read_text() == "2" and os.listdir(tmp_path) == ["o"]


@pytest.mark.parametrize("spec", ["step", "step#0=KILL", "step#x=KILL", "step=HUP"])
def test_a_malformed_fault_spec_is_refused_naming_the_variable(monkeypatch, spec):
    monkeypatch.setenv(FAULT_ENV, spec)
    with pytest.raises(ValueError, match=f"{FAULT_ENV} must be EVENT"):
        fault_point("step")
