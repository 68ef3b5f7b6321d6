"""The ``sckd`` command. Each sub-command lives in its own module with ``register(subparsers)``.

Errors: a :class:`~sckd.errors.SckdError` prints as one line on stderr and exits 2; any other
exception prints a one-line summary and exits 1. ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from sckd.errors import SckdError

# Sub-command modules, in help order. Each defines register(subparsers).
COMMANDS = ["info", "synth", "train", "eval", "predict", "export", "pseudo", "probe", "view", "demo", "reproduce"]


def package_version() -> str:
    """The installed distribution's version (its metadata), or a note when sckd runs uninstalled."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sckd")
    except PackageNotFoundError:
        return "(not installed: no package metadata)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sckd", description="SCKD: 4D radar detection with "
                                "semi-supervised cross-modality knowledge distillation")
    p.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"sckd.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"sckd.cli.{name}":  # not written yet
                continue
            raise
        mod.register(sub)
    return p


def one_line(e: BaseException) -> str:
    """The message of ``e`` on one line. An exception re-raised by a DataLoader from one of its
    worker processes carries the worker's whole traceback in its text; keep the original
    message (the last line, ``module.Type: message``)."""
    text = str(e).strip()
    if "\nOriginal Traceback" in text:
        last = text.splitlines()[-1]
        head, sep, rest = last.partition(": ")
        return rest if sep and " " not in head else last
    lines = text.splitlines()
    return lines[0] if lines else ""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    level = logging.WARNING if "-q" in argv or "--quiet" in argv else logging.INFO
    # The level sits on the console handler too: the run log file lowers the sckd logger to INFO.
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(level)
    logging.basicConfig(level=level, format="%(message)s", handlers=[console])
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        rc = args.func(args)
        return int(rc or 0)
    except SckdError as e:
        if debug:
            raise
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the one place that turns bugs into one line
        if debug:
            raise
        print(f"internal error: {type(e).__name__}: {one_line(e)} (rerun with --debug for the "
              "traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
