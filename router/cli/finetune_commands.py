"""`rightsize export-finetune`: the large tier's approved answers as training pairs for the small model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from router.cli import CliError, unit_float
from router.cli.log_commands import add_log_arguments, load_log_settings, open_log_store, parse_since


def register(subparsers: Any) -> None:
    """Add `export-finetune` to the `rightsize` parser."""
    command = subparsers.add_parser(
        "export-finetune", help="write approved large-tier answers as fine-tuning data",
        description=export_command.__doc__,
    )  # fmt: skip
    command.add_argument(
        "--from-logs",
        action="store_true",
        required=True,
        help="read the request log (the only source for now)",
    )
    add_log_arguments(command)
    command.add_argument("--tenant", metavar="NAME", help="only requests with metadata tenant=NAME")
    command.add_argument(
        "--min-quality",
        type=unit_float,
        default=0.0,
        metavar="Q",
        help="only answers of at least this quality in [0, 1] (the feedback score; "
        "answers without one count as 1.0)",
    )
    command.add_argument("--format", choices=("openai-chat", "sharegpt"), required=True)
    command.add_argument("--out", type=Path, required=True, metavar="FILE", help="the JSONL file to write")
    command.set_defaults(handler=export_command)


def export_command(args: argparse.Namespace) -> int:
    """Write the large tier's approved answers (rated GOOD, or judged with `rightsize label`) as JSONL.

    Rows whose prompt was not kept (log.store_prompts: false), failed calls and empty answers are dropped;
    a prompt appears once (its best-rated, newest answer); every line is checked against the format's
    schema. When nothing is approved the file is written empty and the command says why.
    """
    from router.fewshot.finetune import write_training_data
    from router.fewshot.sources import approved_pairs, deduplicated
    from router.requestlog import RequestLogError

    since = parse_since(args.since)
    settings = load_log_settings(args.config)
    try:
        with open_log_store(args.config, settings) as store:
            pairs = deduplicated(
                approved_pairs(store, since=since, tenant=args.tenant, min_quality=args.min_quality)
            )
    except RequestLogError as exc:
        raise CliError(str(exc)) from exc
    try:
        with args.out.open("w", encoding="utf-8") as out:
            run = write_training_data(pairs, args.format, out)
    except OSError as exc:
        raise CliError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
    if run.written == 0:
        print(
            f"no approved large-tier answers in the log{_scope(args)}: wrote an empty {args.out}. "
            "Answers count once rated GOOD (Feedback) or judged by `rightsize label`; their text is "
            "kept only with log.store_responses: true (or as the judge's stored answer).",
            file=sys.stderr,
        )
        return 0
    tenants = ", ".join(f"{name}: {count}" for name, count in sorted(run.tenants.items()))
    print(
        f"wrote {run.written} {args.format} lines to {args.out} (tenants {tenants}; "
        f"{run.duplicates} duplicates and {run.invalid} invalid skipped)",
        file=sys.stderr,
    )
    return 0


def _scope(args: argparse.Namespace) -> str:
    parts = [f"tenant {args.tenant}"] if args.tenant else []
    parts += [f"since {args.since}"] if args.since else []
    parts += [f"quality >= {args.min_quality:g}"] if args.min_quality else []
    return f" ({', '.join(parts)})" if parts else ""
