"""``lda-opt solve --batch-dir DIR``: a folder of images, sharded across ranks.

Rank r of world w solves files[r::w] of the sorted list, each into its own complete result
folder; a folder solved on a rank is the same as one ``lda-opt solve --image FILE``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lda_opt.cli import main
from lda_opt.commands.solve import OUTPUT_FILES, batch_files, shard

OPTS = ["--problem", "tv-denoise", "--size", "12", "--max-iter", "4", "--quiet"]


@pytest.fixture
def images(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(0)
    for name in ("c", "a", "b"):
        np.save(d / f"{name}.npy", rng.uniform(0, 1, (12, 12)))
    (d / "notes.txt").write_text("not an image")
    return d


def test_batch_files_are_the_sorted_images_and_stems_must_differ(images, tmp_path):
    assert [p.name for p in batch_files(images)] == ["a.npy", "b.npy", "c.npy"]
    np.save(images / "a.png.npy", np.zeros((12, 12)))  # stem "a.png": distinct from "a"
    assert len(batch_files(images)) == 4
    (images / "b.png").write_bytes(b"")  # stem "b" twice
    with pytest.raises(ValueError, match="share the stem 'b'"):
        batch_files(images)
    with pytest.raises(ValueError, match="holds no .png or .npy"):
        batch_files(_empty(tmp_path))
    with pytest.raises(ValueError, match="is not a directory"):
        batch_files(tmp_path / "missing")


def _empty(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    return d


@pytest.mark.parametrize(("rank", "world", "want"), [(0, 2, "ac"), (2, 3, "c")])
def test_each_rank_solves_its_share_into_complete_folders(images, tmp_path, monkeypatch, rank, world, want):
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", str(world))
    assert shard() == (rank, world)
    out = tmp_path / "out"
    assert main(["solve", *OPTS, "--batch-dir", str(images), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == list(want)
    for p in out.iterdir():
        assert sorted(f.name for f in p.iterdir()) == sorted(OUTPUT_FILES)


def test_a_batch_folder_equals_the_single_solve_of_its_image(images, tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")  # this rank's share: b
    out = tmp_path / "out"
    assert main(["solve", *OPTS, "--batch-dir", str(images), "--out", str(out)]) == 0
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    one = tmp_path / "one"
    assert main(["solve", *OPTS, "--image", str(images / "b.npy"), "--out", str(one)]) == 0
    assert np.array_equal(np.load(out / "b" / "x.npy"), np.load(one / "x.npy"))
    a, b = (json.loads((d / "result.json").read_text()) for d in (out / "b", one))
    assert a["phi_final"] == b["phi_final"] and a["config"]["image"] == b["config"]["image"]


def test_bad_batch_input_is_refused_before_any_solve(images, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    (out / "c").mkdir(parents=True)
    (out / "c" / "mine.txt").write_text("a file of the user's")  # c's folder may not be replaced
    assert main(["solve", *OPTS, "--batch-dir", str(images), "--out", str(out)]) == 2
    assert sorted(p.name for p in out.iterdir()) == ["c"]  # a and b (before c) were not solved either
    assert main(["solve", *OPTS, "--batch-dir", str(images), "--image", "camera", "--out", str(tmp_path / "o")]) == 2
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["solve", *OPTS, "--batch-dir", str(images), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3
    assert "out must" in err[0] or "mine.txt" in err[0]
    assert "either --image or --batch-dir" in err[1]
    assert "RANK must be in [0, WORLD_SIZE)" in err[2]


@pytest.mark.skipif(not Path(sys.executable).with_name("torchrun").is_file(), reason="no torchrun")
def test_two_torchrun_ranks_cover_the_folder_once(images, tmp_path):
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run([str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node=2",
                           "-m", "lda_opt.cli", "solve", *OPTS[:-1], "--batch-dir", str(images), "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == list("abc")
    assert "[rank 0/2] solved 2 of the 3 files" in proc.stdout
    assert "[rank 1/2] solved 1 of the 3 files" in proc.stdout
