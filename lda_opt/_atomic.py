"""Crash-safe output: atomic files, staged output folders, and a test-only fault hook.

One place for the write discipline of every file lda_opt keeps across runs (checkpoints,
training state, logs) and of the ``--out`` folders of the commands:

* :func:`atomic_write` -- a file appears complete or not at all: the content goes to a
  hidden temporary ``.NAME.*.tmp`` in the same directory, is fsynced, and is moved over
  ``NAME`` with ``os.replace`` (atomic on POSIX and Windows); the directory is then fsynced
  so that the rename survives a power loss.  A process killed at any point leaves ``NAME``
  either as it was or fully written; at worst a hidden temporary remains, which
  :func:`remove_stale_temps` deletes.
* :func:`staged_dir` -- a folder appears complete or not at all: its files are written into
  a hidden sibling ``.NAME.*.partial`` that is renamed to ``NAME`` once everything is
  written; on any exception (``KeyboardInterrupt`` included) the sibling is removed.
* :func:`fault_point` -- the test-only hook ``LDA_OPT_FAULT="EVENT[#N]=SIGNAL"``: the N-th
  time (default 1) this process reaches ``fault_point(EVENT)`` it sends itself ``SIGNAL``
  (``KILL`` or ``INT``), so that tests interrupt a run at a chosen point instead of after a
  guessed delay.  Unset (always, outside tests) it costs one dictionary lookup.  The events
  of this module are ``replace:NAME`` (temporary complete, target not yet replaced),
  ``replaced:NAME`` (target replaced) and ``commit:NAME`` (a staged folder complete, not yet
  renamed).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

__all__ = [
    "FAULT_ENV",
    "atomic_write",
    "atomic_write_text",
    "check_replaceable",
    "fault_point",
    "remove_stale_temps",
    "staged_dir",
]

#: the environment variable of :func:`fault_point`
FAULT_ENV = "LDA_OPT_FAULT"
_FAULT_SIGNALS = {"KILL": "SIGKILL", "INT": "SIGINT", "TERM": "SIGTERM"}
_fault_counts: dict[str, int] = {}


def fault_point(event: str) -> None:
    """Send this process the signal that ``$LDA_OPT_FAULT`` names when ``event`` is reached
    for the N-th time (see the module docstring); a no-op when the variable is unset."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    where, sep, sig = spec.rpartition("=")
    name, _, count = where.partition("#")
    if not sep or sig not in _FAULT_SIGNALS or not (count == "" or count.isdigit()) or count == "0":
        raise ValueError(f"{FAULT_ENV} must be EVENT[#N]=KILL|INT|TERM with N >= 1; got {spec!r}")
    if name != event:
        return
    seen = _fault_counts[event] = _fault_counts.get(event, 0) + 1
    if seen == int(count or 1):
        os.kill(os.getpid(), getattr(signal, _FAULT_SIGNALS[sig]))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    """Persist the entries of ``directory`` (a rename inside it); a no-op where directories
    cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(target: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Create or replace ``target`` atomically: ``write(tmp)`` writes the whole content to a
    temporary path in the same directory, which is then fsynced and renamed over ``target``.

    The file gets the permissions of a plain ``open(target, "w")`` (``0o666`` less the
    umask), not the ``0o600`` of a temporary file.  On any exception (``KeyboardInterrupt``
    included) the temporary is removed and ``target`` is untouched.
    """
    target = Path(target)
    fd, tmp = tempfile.mkstemp(prefix="." + target.name + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb+") as fh:  # the data on disk before the rename makes it visible
            os.fsync(fh.fileno())
        fault_point("replace:" + target.name)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)
    fault_point("replaced:" + target.name)


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    """:func:`atomic_write` of a UTF-8 text."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)

    atomic_write(target, write)


def remove_stale_temps(directory: str | os.PathLike, names: Iterable[str]) -> list[Path]:
    """Delete the temporaries ``.NAME.*.tmp`` that a killed :func:`atomic_write` of one of
    ``names`` left in ``directory``; returns the deleted paths.  Call it only on a directory
    that no other process is writing."""
    directory = Path(directory)
    pattern = re.compile("^\\.(" + "|".join(re.escape(n) for n in names) + ")\\..+\\.tmp$")
    gone = []
    if directory.is_dir():
        for p in sorted(directory.iterdir()):
            if pattern.match(p.name) and p.is_file():
                p.unlink()
                gone.append(p)
    return gone


@contextlib.contextmanager
def staged_dir(out: str | os.PathLike, replaceable: Iterable[str] = ()) -> Iterator[Path]:
    """Build the folder ``out`` in a hidden sibling and rename it into place when the block
    ends without an exception.

    Yields the staging folder (write every file there).  On success ``out`` appears with
    all of them at once.  An existing ``out`` is replaced only if every entry in it is one
    of ``replaceable`` (the outputs of an earlier run of the same command); otherwise
    :class:`ValueError` is raised and nothing changes.  The replacement is two renames
    (the old folder aside, the new one in place): a process killed between them leaves no
    ``out`` and the complete old folder in a hidden sibling, never a mixed folder.  On any
    exception (``KeyboardInterrupt`` included) the staging folder is removed and ``out`` is
    as it was.  A SIGKILL leaves only a hidden ``.NAME.*.partial`` (or ``.NAME.*.old``)
    sibling, which the next successful run into ``out`` deletes.
    """
    out = Path(out)
    replaceable = set(replaceable)
    check_replaceable(out, replaceable)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="." + out.name + ".", suffix=".partial", dir=out.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        for p in tmp.iterdir():
            if p.is_file():
                with open(p, "rb+") as fh:
                    os.fsync(fh.fileno())
        _fsync_dir(tmp)
        fault_point("commit:" + out.name)
        check_replaceable(out, replaceable)
        if out.exists():
            old = out.parent / f".{out.name}.{uuid.uuid4().hex[:12]}.old"
            os.rename(out, old)
            try:
                os.rename(tmp, out)
            except BaseException:
                os.rename(old, out)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(out.parent)
    # what killed runs into the same folder left: their staging folders and old folders
    stale = re.compile("^\\." + re.escape(out.name) + "\\.[A-Za-z0-9_]+\\.(partial|old)$")
    for p in out.parent.iterdir():
        if stale.match(p.name) and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)


def check_replaceable(out: str | os.PathLike, replaceable: Iterable[str]) -> None:
    """Raise ``ValueError`` unless ``out`` is absent, or a directory whose entries are all in
    ``replaceable`` (what :func:`staged_dir` may replace)."""
    out = Path(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise ValueError(f"out must be a directory; {str(out)!r} is a file")
    foreign = sorted(p.name for p in out.iterdir() if p.name not in set(replaceable))
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ValueError(f"out {str(out)!r} holds files this command did not write ({shown}); "
                         "give a new or empty directory, or one with only an earlier run's outputs")
