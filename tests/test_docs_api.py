"""docs/api.md lists only names that its modules export."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

API = Path(__file__).resolve().parent.parent / "docs" / "api.md"


def test_every_name_in_the_api_page_is_exported_by_its_module():
    module, listed = None, {}
    for line in API.read_text(encoding="utf-8").splitlines():
        head = re.match(r"^## `([\w.]+)`$", line)
        if head:
            module = head.group(1)
            listed[module] = []
        row = re.match(r"^\| `(\w+)` \((class|function|constant)\) \|", line)
        if row:
            assert module is not None, line
            listed[module].append(row.group(1))
    assert len(listed) >= 10 and sum(map(len, listed.values())) >= 150
    for name, names in listed.items():
        exported = set(importlib.import_module(name).__all__)
        missing = [n for n in names if n not in exported]
        assert missing == [], f"{name}: {missing} are listed in docs/api.md but not exported"
