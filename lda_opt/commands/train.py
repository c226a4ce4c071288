"""``lda-opt train --config FILE``: stair-train an unrolled LDA-Net (LDA Sec. 4.1).

``torchrun --standalone --nproc_per_node N -m lda_opt.cli train --config FILE`` trains the
same run on N ranks (DistributedDataParallel, gloo on the CPU; see
:mod:`lda_opt.learning.train`): only rank 0 writes and prints.

Writes into ``--out DIR`` (default ``build/runs/NAME``): ``config.json``, ``log.json`` (one
record per epoch), ``curves.png``, the inference checkpoint ``model.safetensors`` +
``model.json`` (and ``best.*`` with ``train.select = "best_val"``) and the resume state
``state.safetensors`` (every epoch; the bookkeeping in its header).  ``--resume`` continues an
interrupted run bit for bit -- stopped by ``--stop-after``, interrupted with Ctrl-C (exit
status 130, one line on stderr) or killed anywhere, even by SIGKILL: no file is ever left
half-written -- or trains a finished run on when the config only appends stages (a larger
``train.phases``).  See :mod:`lda_opt.learning.train`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the options of ``lda-opt train``."""
    parser.add_argument("--config", required=True, help="training config (JSON; see lda_opt.learning.config)")
    parser.add_argument("--out", default=None, help="output directory (default: build/runs/NAME)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/state.safetensors (an interrupted run, or a config that appends stages)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no summary line")
    parser.add_argument("--stop-after", type=int, default=None, metavar="EPOCHS",
                        help="stop after this many epochs in total (resume later with --resume)")


def run(args: argparse.Namespace) -> int:
    """Train; returns 0, or 130 after Ctrl-C (SIGINT) with a one-line message naming what
    ``--resume`` continues from (bad input raises ValueError/TypeError, reported by the CLI)."""
    from .._validate import out_dir
    from ..learning.config import load_config
    from ..learning.train import STATE_FILE, train

    config = load_config(args.config)
    out = Path(args.out) if args.out else Path("build") / "runs" / config.name
    out_dir("--out", out)  # a directory, or creatable: no file on its path
    if args.stop_after is not None and args.stop_after < 1:
        raise ValueError(f"--stop-after must be >= 1; got {args.stop_after}")
    if args.resume and not (out / STATE_FILE).is_file():  # refused before out is created
        raise ValueError(f"--resume: no {STATE_FILE} in {out} (nothing to resume)")
    try:
        info = train(config, out, resume=args.resume, quiet=args.quiet, stop_after=args.stop_after)
    except KeyboardInterrupt:
        state = out / STATE_FILE
        saved = (f"{state} holds the last complete epoch; continue with --resume" if state.is_file()
                 else "no epoch was completed; nothing to resume")
        print(f"lda-opt train: interrupted; {saved}", file=sys.stderr)
        return 130
    if not args.quiet and os.environ.get("RANK", "0") == "0":  # under torchrun: rank 0 reports
        last = info["epochs"][-1]
        state = "complete" if info["complete"] else "interrupted (resume with --resume)"
        if info.get("best"):
            state += f"; exported: best.safetensors (epoch {info['best']['epoch']}, val PSNR {info['best']['val_psnr']:.2f} dB)"
        print(f"{config.name}: {len(info['epochs'])} epochs, K={last['phases']}, val PSNR {last['val_psnr']:.2f} dB "
              f"(start {info['val_psnr_x0']:.2f} dB), {info['parameters']} parameters, "
              f"{info['budget']['seconds']:.0f} s, {state}; outputs in {out}/")
    return 0
