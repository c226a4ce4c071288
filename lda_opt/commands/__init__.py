"""Subcommands of the ``lda-opt`` command line (one module each; see :mod:`lda_opt.cli`)."""
