"""Every notebook of ``notebooks/`` executes from a clean kernel (``make test``).

Each ``notebooks/NN_name.py`` (jupytext percent format: cells separated by ``# %%``) is read
with jupytext, executed by nbclient in the kernel ``python3`` of this interpreter (the venv's
own ipykernel: ``jupytext --execute`` with a bare ``-`` kernel fails inside a venv), and
written beside its source as ``NN_name.ipynb`` with its outputs (those are committed).  A
cell that raises -- the notebooks assert what they show -- fails the test.  New notebooks
are picked up by the glob.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.py"))
#: per-cell limit (the notebooks are sized for ~90 s in all on 2 cores)
CELL_TIMEOUT = 600


def test_the_notebooks_are_found():
    names = [p.stem for p in NOTEBOOKS]
    assert {"01_solve_learned_regularizer", "02_theorem_invariants", "03_complexity"} <= set(names)
    assert len({n[:2] for n in names}) == len(names)  # one notebook per number


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_and_is_written_with_its_outputs(source, monkeypatch):
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("ipykernel")

    nb = jupytext.read(source, fmt="py:percent")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and any(c.cell_type == "markdown" for c in nb.cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for i, cell in enumerate(nb.cells):  # stable ids: a re-run changes only what the outputs change
        cell["id"] = f"cell-{i:02d}"
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT, record_timing=False,
                                     resources={"metadata": {"path": str(source.parent)}})
    client.execute()  # CellExecutionError (the cell and its traceback) if any cell raises
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    assert all(c.get("execution_count") for c in code)  # every code cell ran
    assert any(o.get("output_type") == "stream" for c in code for o in c.get("outputs", []))
    target = source.with_suffix(".ipynb")
    nbformat.validate(nb)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, target)
    assert nbformat.read(target, as_version=4).cells[0].source == nb.cells[0].source
