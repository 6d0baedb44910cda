"""The `rightsize` command line: one parser, one error boundary; command groups live in own modules."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

# Modules that each define `register(subparsers)`; imported lazily so `rightsize --help` stays instant.
COMMAND_MODULES = (
    "router.cli.classifier_commands",
    "router.cli.service_commands",
    "router.cli.log_commands",
    "router.cli.learning_commands",
    "router.cli.calibrate_commands",
    "router.cli.config_commands",
    "router.cli.local_commands",
    "router.cli.finetune_commands",
    "router.cli.keys_commands",
    "router.cli.health_commands",
    "router.cli.teach_commands",
)

Handler = Callable[[argparse.Namespace], int]


def unit_float(text: str) -> float:
    """argparse type: a number in [0, 1] (a share, a threshold, a quality)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is outside [0, 1]")
    return value


class CliError(Exception):
    """An expected failure: printed as one line, exit status 2 (usage) or 1 (everything else)."""


def read_schema_file(option: str, path: Path, name: str | None = None) -> tuple[str, str]:
    """(JSON Schema text, its name: `name`, else the file's stem made a valid schema name) for `option`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"{option} {path}: {exc.strerror or exc}") from exc
    stem = "".join(c if c.isalnum() or c in "_-" else "_" for c in path.stem)[:64]
    return text, name or stem or "response"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rightsize", description="Route each prompt to a small local model or a large cloud model."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; expected failures print `rightsize: error: ...` and return non-zero."""
    # onnxruntime >= 1.29 uploads telemetry on Linux too unless this is set before it initialises: the
    # router must start offline and not phone home (the user's own setting wins).
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # answered with the usage of the subcommand they were given to, not the top level's
        _chosen(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the CLI's one catch-all: a user never sees a traceback for an expected failure
        from classifier.errors import ClassifierError

        expected = (CliError, ClassifierError, OSError, ValueError) + _router_errors()
        if isinstance(exc, expected):
            print(f"rightsize: error: {exc}", file=sys.stderr)
            return 1
        print(f"rightsize: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 70


def _chosen(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The deepest (sub)command parser that `args` went through."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            name = getattr(args, action.dest, None)
            if name in action.choices:
                return _chosen(action.choices[name], args)
    return parser


def _router_errors() -> tuple[type[BaseException], ...]:
    try:
        from router.errors import RouterError
    except ImportError:
        return ()
    return (RouterError,)
