"""``lda_opt.cli.main``: how a subcommand's errors reach the user (issue 15)."""

from __future__ import annotations

import errno
import importlib

import pytest

from lda_opt.cli import main


@pytest.mark.parametrize("exc", [
    ValueError("sigma must be > 0"), TypeError("weight must be a number"),
    FileNotFoundError(errno.ENOENT, "No such file or directory", "x.json"),
    PermissionError(errno.EACCES, "Permission denied", "out"),
    OSError(errno.ENAMETOOLONG, "File name too long", "a" * 300),
    OSError(errno.ENOSPC, "No space left on device"),
])
def test_a_subcommand_error_is_exit_2_and_one_stderr_line(monkeypatch, capsys, exc):
    mod = importlib.import_module("lda_opt.commands.check")

    def boom(args):
        raise exc

    monkeypatch.setattr(mod, "run", boom)
    assert main(["check", "somewhere"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lda-opt check: error: ")
    assert (getattr(exc, "strerror", None) or str(exc)) in err


def test_any_other_exception_is_not_swallowed(monkeypatch):
    """A bug is a traceback, not a silent exit status: only bad-input errors are mapped."""
    mod = importlib.import_module("lda_opt.commands.check")
    monkeypatch.setattr(mod, "run", lambda args: (_ for _ in ()).throw(RuntimeError("bug")))
    with pytest.raises(RuntimeError, match="bug"):
        main(["check", "somewhere"])
