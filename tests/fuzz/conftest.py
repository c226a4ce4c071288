"""Counts the generated fuzz cases and reports them at the end of the session.

Every fuzz property calls ``_fuzz.case(kind)`` once per generated case that reached its
assertion.  The total (per test file, with the hypothesis profile) is printed in the terminal
summary, e.g. ``fuzz: 16,000 generated cases in 16 properties (... profile thorough)``; under
pytest-xdist each worker sends its counts to the controller.  With
``LDA_OPT_FUZZ_REPORT=PATH`` the counts are also written to ``PATH`` as JSON.
"""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest
from _fuzz import CASES

_MERGED: Counter = Counter()


def pytest_sessionfinish(session):
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the counts to the controller
        workeroutput["fuzz_cases"] = json.dumps(dict(CASES))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    counts = getattr(node, "workeroutput", {}).get("fuzz_cases")
    if counts:
        _MERGED.update(json.loads(counts))


def pytest_terminal_summary(terminalreporter, config):
    counts = Counter(CASES)
    counts.update(_MERGED)
    if not counts:
        return
    profile = os.environ.get("HYPOTHESIS_PROFILE", "ci")
    total = sum(counts.values())
    by_file = Counter()
    for node, n in counts.items():
        by_file[node.split("::")[0]] += n
    terminalreporter.write_sep("-", "fuzz cases")
    for f, n in sorted(by_file.items()):
        terminalreporter.write_line(f"{f}: {n:,}")
    props = {node.split("[")[0] for node in counts}
    terminalreporter.write_line(
        f"fuzz: {total:,} generated cases in {len(props)} properties ({len(counts)} parametrized "
        f"cases; profile {profile})")
    path = os.environ.get("LDA_OPT_FUZZ_REPORT")
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump({"profile": profile, "total": total, "cases": dict(sorted(counts.items()))},
                      fh, indent=1)
