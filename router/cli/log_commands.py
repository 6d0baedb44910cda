"""`rightsize logs export|stats`: read the request log that the server's config file points at."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from router.cli import CliError

if TYPE_CHECKING:
    from router.config import RouterConfig
    from router.requestlog import LogSettings, LogStats, RequestLogStore

_T = TypeVar("_T")
_AGE = re.compile(r"^(\d+)([smhdw])$")
_AGE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def register(subparsers: Any) -> None:
    """Add the `logs` command group to the top-level parser."""
    logs = subparsers.add_parser("logs", help="export or summarise the request log")
    commands = logs.add_subparsers(dest="logs_command", metavar="SUBCOMMAND")
    commands.required = True

    export = commands.add_parser("export", help="write logged requests as JSON Lines or CSV")
    add_log_arguments(export)
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl", help="default: jsonl")
    export.add_argument(
        "--output", "-o", type=Path, metavar="FILE", help="file to write (default: standard output)"
    )
    export.set_defaults(handler=export_command)

    stats = commands.add_parser("stats", help="counts, labels, fallbacks and cost, per tier")
    add_log_arguments(stats)
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    stats.set_defaults(handler=stats_command)


def export_command(args: argparse.Namespace) -> int:
    from router.requestlog import write_csv, write_jsonl

    since = parse_since(args.since)
    write = write_csv if args.format == "csv" else write_jsonl
    with open_log_store(args.config) as store, _output(args.output) as out:
        count = translate_log_errors(lambda: write(store.iter_records(since=since), out))
    if args.output is not None:
        print(f"exported {count} records to {args.output}", file=sys.stderr)
    return 0


def stats_command(args: argparse.Namespace) -> int:
    since = parse_since(args.since)
    with open_log_store(args.config) as store:
        stats = translate_log_errors(lambda: store.stats(since=since))
    print(json.dumps(stats_to_json(stats), indent=2) if args.json else format_stats(stats))
    return 0


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """`--since`: an ISO 8601 date or time (UTC when it has no offset), or an age such as 90m, 24h or 7d."""
    if text is None:
        return None
    age = _AGE.match(text.strip())
    if age:
        return (now or datetime.now(UTC)) - timedelta(**{_AGE_UNITS[age[2]]: int(age[1])})
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(
            f"--since {text!r}: expected an ISO date/time (2026-01-31T12:00) or an age (24h, 7d)"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def load_server_config(config: Path | None) -> RouterConfig:
    """The server's config file (None: the shipped default, as `serve` has it), validated as `serve` does."""
    from router.config import load_config
    from router.errors import ConfigError

    try:
        return load_config(config)
    except ConfigError as exc:
        raise CliError(str(exc)) from exc


def load_log_settings(config: Path | None) -> LogSettings:
    """The `log:` section of the server's config file (defaults when it has none)."""
    return load_server_config(config).log


def format_stats(stats: LogStats) -> str:
    """A human-readable summary: totals, then one row per tier."""
    span = "-"
    if stats.first_ts and stats.last_ts:
        span = f"{stats.first_ts:%Y-%m-%d %H:%M:%S} .. {stats.last_ts:%Y-%m-%d %H:%M:%S} UTC"
    lines = [
        f"requests   {stats.requests}",
        f"time span  {span}",
        f"labelled   {stats.labelled} (small_ok=1: {stats.small_ok})",
        f"fallbacks  {stats.fallbacks}",
        f"errors     {stats.errors}",
        f"cost_usd   {stats.cost_usd:.6f}",
        "",
        f"{'tier':<12}{'requests':>10}{'share':>8}{'fallbacks':>11}{'errors':>8}"
        f"{'prompt_tok':>12}{'compl_tok':>11}{'cost_usd':>14}{'mean_ms':>10}",
    ]
    for tier in stats.tiers:
        share = tier.requests / stats.requests if stats.requests else 0.0
        mean = "-" if tier.mean_total_ms is None else f"{tier.mean_total_ms:.1f}"
        lines.append(
            f"{tier.tier:<12}{tier.requests:>10}{share:>8.1%}{tier.fallbacks:>11}{tier.errors:>8}"
            f"{tier.prompt_tokens:>12}{tier.completion_tokens:>11}{tier.cost_usd:>14.6f}{mean:>10}"
        )
    return "\n".join(lines)


def stats_to_json(stats: LogStats) -> dict[str, Any]:
    """`LogStats` as JSON-ready values (times ISO 8601 UTC)."""
    from dataclasses import asdict

    from router.requestlog.records import format_ts

    payload = asdict(stats)
    payload["first_ts"] = stats.first_ts and format_ts(stats.first_ts)
    payload["last_ts"] = stats.last_ts and format_ts(stats.last_ts)
    payload.update(fallbacks=stats.fallbacks, errors=stats.errors, cost_usd=stats.cost_usd)
    return payload


CONFIG_HELP = "the server's config file (default: the shipped router/default_config.yaml, as for serve)"


def add_log_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE", help=CONFIG_HELP)
    parser.add_argument(
        "--since", metavar="WHEN", help="only requests since an ISO date/time or an age (24h, 7d)"
    )


@contextmanager
def open_log_store(config: Path | None, settings: LogSettings | None = None) -> Iterator[RequestLogStore]:
    """The request log the server configured by `config` writes (`settings`: its already-loaded `log:`)."""
    from router.requestlog import open_store, parse_url

    settings = settings if settings is not None else load_log_settings(config)
    url = parse_url(settings.url)
    if url.engine == "sqlite" and not url.path.is_file():
        # Reading commands must not create an empty log where the server never wrote one.
        raise CliError(f"no request log at {url.path} (log.url in {config or 'the shipped default config'})")
    store = open_store(settings.url, timeout_ms=settings.timeout_ms)
    try:
        yield store
    finally:
        store.close()


@contextmanager
def _output(path: Path | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    with path.open("w", encoding="utf-8", newline="") as out:
        yield out


def translate_log_errors(action: Callable[[], _T]) -> _T:
    from router.requestlog import RequestLogError

    try:
        return action()
    except RequestLogError as exc:
        raise CliError(str(exc)) from exc
