"""The ``defbench`` command line, the top layer: nothing else in defbench imports it.

This module builds the parser and runs a command; each command group is a module beside it: :mod:`.train`
(``train``, ``zoo``), :mod:`.listing` (``defense|attack|classifier list``), :mod:`.results` (``store``,
``report``), :mod:`.matrix` (``matrix``) and :mod:`.paper` (``paper list|run``); :mod:`.options` holds the argument
types and the options they share. Errors meant for the user print on one line (no traceback), exit 2; a
file-system or store fault, or a bug, exits 1 with one line (``--debug`` or ``DEFBENCH_DEBUG=1`` prints the
traceback before it, the exit status unchanged); Ctrl-C exits 130 and SIGTERM 143, every finished cell kept. The
command modules are imported when the parser is built, so ``defbench --version`` answers without torch.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import sqlite3
import sys
import traceback
import warnings

from defbench import CellsFailed, DefbenchError, __version__


class _ArgError(Exception):
    """A command-line error argparse found (unknown option, missing argument, a value of the wrong kind)."""

    def __init__(self, prog: str, message: str):
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (``defbench matrix: error: ...``) instead of usage + message, so every
    bad input reads the same; sub-parsers inherit the class."""

    def error(self, message: str):
        raise _ArgError(self.prog, message)

    def parse_known_args(self, args=None, namespace=None):
        ns, extras = super().parse_known_args(args, namespace)
        if extras and not hasattr(ns, "_extras_prog"):  # the deepest parser that left them: its --help is the one
            ns._extras_prog = self.prog
        return ns, extras

    def parse_args(self, args=None, namespace=None):
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            raise _ArgError(getattr(ns, "_extras_prog", self.prog), f"unrecognized arguments: {' '.join(extras)}")
        return ns


def build_parser() -> argparse.ArgumentParser:
    with warnings.catch_warnings():  # here, not at the top: `defbench --version` imports no torch; the
        warnings.simplefilter("ignore", DeprecationWarning)  # libraries' import-time deprecations are not the user's
        from defbench.cli import listing, matrix, paper, results, train

    ap = _Parser(
        prog="defbench",
        description=(
            "Evaluate adversarial purification defenses (DefenseGAN, Cowboy, InvGAN, MimicGAN, RIDE, median, TVM) "
            "against library attacks under gray-box, BPDA, reparameterisation and GAN-aware threat models."
        ),
    )
    ap.add_argument("--version", action="version", version=f"defbench {__version__}")
    ap.add_argument(
        "--debug",
        action="store_true",
        help="show the Python traceback of an error (also after a command: 'defbench matrix ... --debug')",
    )
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND")
    train.add_parsers(sub)
    listing.add_parsers(sub)
    results.add_parsers(sub)
    matrix.add_parser(sub)
    paper.add_parser(sub)
    return ap


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: the cell in flight is dropped (its transaction never began), every finished
    cell stays in the store and the next run resumes."""


#: set by the SIGTERM and SIGINT handlers: their exception is raised wherever the main thread is, and C code that
#: catches and replaces exceptions (seen: numpy's buffer-format parsing turned it into a ValueError) can hide it
_SIGNALS = {"term": False, "int": False}


def _on_sigterm(signum, frame):
    _SIGNALS["term"] = True
    raise _Terminated()


def _on_sigint(signum, frame):
    _SIGNALS["int"] = True
    raise KeyboardInterrupt()


def _interrupted() -> int:
    print("defbench: interrupted; finished cells are stored, rerun the same command to resume", file=sys.stderr)
    return 130


def _terminated() -> int:
    msg = "defbench: terminated (SIGTERM); finished cells are stored, rerun the same command to resume"
    print(msg, file=sys.stderr)
    return 143


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning reaches the user as one line, as errors do (``--debug`` keeps Python's format with its source)."""
    print(f"defbench: warning: {_one_line(message)}", file=sys.stderr)


def _stdout_closed() -> bool:
    """Whether the reader of our stdout has gone (``defbench paper list | head``): a pipe without a reader polls
    as an error; stdout without a file descriptor (a caller's own object) is asked by flushing it."""
    try:
        fd = sys.stdout.fileno() if hasattr(select, "poll") else None  # no poll on Windows
    except (OSError, ValueError, AttributeError):
        fd = None
    if fd is None:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            return True
        except (OSError, ValueError):
            return False
        return False
    poll = select.poll()
    poll.register(fd, select.POLLOUT)
    return any(event & select.POLLERR for _, event in poll.poll(0))


def _reader_gone() -> int:
    """The reader of stdout closed it: stop quietly, as shell tools do (exit 141, SIGPIPE's), with stdout sent to
    the null device so that the interpreter's last flush does not print a second error."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (a caller's own stdout object)
        pass
    return 141


def _error_exit(exc: Exception) -> int:
    """One line on stderr for an error, by kind; the exit status (2: the user's input, 1: a fault)."""
    if isinstance(exc, _ArgError):
        print(f"defbench: error: {_one_line(exc)} (see '{exc.prog} --help')", file=sys.stderr)
        return 2
    if isinstance(exc, DefbenchError):
        print(f"defbench: error: {_one_line(exc)}", file=sys.stderr)
        return 1 if isinstance(exc, CellsFailed) else 2
    if isinstance(exc, OSError):  # a file-system fault: said as such (permission, read-only, disk full)
        from defbench.harness.store import os_error_line

        print(
            f"defbench: error: {_one_line(os_error_line(exc))} ({type(exc).__name__}; --debug shows where)",
            file=sys.stderr,
        )
        return 1
    if isinstance(exc, sqlite3.Error):
        print(f"defbench: error: the results store failed: {_one_line(exc)} (--debug shows where)", file=sys.stderr)
        return 1
    # a bug or an unforeseen fault: one line, the traceback with --debug
    print(
        f"defbench: internal error: {type(exc).__name__}: {_one_line(exc)[:300]} (rerun with --debug for the "
        "traceback)",
        file=sys.stderr,
    )
    return 1


def main(argv: list[str] | None = None) -> int:
    """Run ``defbench ARGV`` (default ``sys.argv[1:]``) and return its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("DEFBENCH_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    if argv == ["--version"]:  # answered before the parser, whose commands import torch (seconds), and before
        print(f"defbench {__version__}")  # any handler is set (an early return must leave none behind)
        return 0
    old_term = old_int = None
    _SIGNALS.update(term=False, int=False)
    try:
        old_term = signal.signal(signal.SIGTERM, _on_sigterm)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # Python's Ctrl-C, not a caller's own
            old_int = signal.signal(signal.SIGINT, _on_sigint)
    except ValueError:  # not the main thread (e.g. called from a test's worker thread): leave the signals alone
        pass
    old_show = warnings.showwarning
    if not debug:
        warnings.showwarning = _show_warning
    try:
        ap = build_parser()
        args = ap.parse_args(argv)
        if not args.cmd:
            ap.print_help()
            return 0
        return args.func(args)
    except _Terminated:
        return _terminated()
    except KeyboardInterrupt:
        return _interrupted()
    except Exception as exc:
        if _SIGNALS["term"]:  # the SIGTERM surfaced as another exception (replaced in C code): still a SIGTERM
            return _terminated()
        if _SIGNALS["int"]:  # the same for Ctrl-C
            return _interrupted()
        if isinstance(exc, BrokenPipeError) and _stdout_closed():
            return _reader_gone()
        if debug:  # the traceback, then the same line and exit status as without --debug
            traceback.print_exc()
        return _error_exit(exc)
    finally:
        warnings.showwarning = old_show
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        if old_int is not None:
            signal.signal(signal.SIGINT, old_int)
