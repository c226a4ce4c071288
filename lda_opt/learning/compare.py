"""Side-by-side figure of ``lda-opt solve`` runs on the same instance (used by ``make demo``).

Usage::

    python -m lda_opt.learning.compare --out FIG.png DIR [DIR ...]

Every ``DIR`` is the ``--out`` directory of one ``lda-opt solve`` run (its ``result.json`` and
``x.npy``), all of the same instance.  The figure and its JSON summary (``FIG.json``) are made
by :func:`lda_opt.experiments.compare.compare_runs`; this module is its command line.
"""

from __future__ import annotations

import argparse
import sys

from ..experiments.compare import compare_runs

__all__ = ["compare_runs", "main"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lda_opt.learning.compare", description=__doc__.splitlines()[0])
    p.add_argument("dirs", nargs="+", help="lda-opt solve --out directories of the same instance")
    p.add_argument("--out", required=True, help="the PNG to write (a .json summary is written next to it)")
    args = p.parse_args(argv)
    try:
        s = compare_runs(args.dirs, args.out)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for r in s["runs"]:
        print(f"{r['label']:<28s} {r['psnr']:.2f} dB  (start {r['psnr_x0']:.2f} dB)")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
