"""`rightsize config check` and `rightsize simulate`: validate a config file; what-if for other thresholds."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from router.cli import CliError, unit_float


def register(subparsers: Any) -> None:
    """Add `config check` and `simulate` to the `rightsize` parser."""
    from router.cli.traffic import add_source_arguments

    config = subparsers.add_parser("config", help="check a config file")
    commands = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    commands.required = True
    check = commands.add_parser(
        "check", help="validate a config file without serving", description=check_command.__doc__
    )
    check.add_argument("file", type=Path, metavar="FILE")
    check.set_defaults(handler=check_command)

    simulate = subparsers.add_parser(
        "simulate",
        help="large share, cost and quality at other thresholds",
        description=simulate_command.__doc__,
    )
    add_source_arguments(
        simulate,
        input_help="JSONL with prompt|messages or score, and optionally small_ok, "
        "small_score/large_score, prompt_tokens/completion_tokens",
    )
    simulate.add_argument(
        "--thresholds",
        type=_thresholds,
        required=True,
        metavar="T1,T2,...",
        help="comma-separated thresholds in [0, 1], e.g. 0.3,0.5,0.7",
    )
    simulate.add_argument(
        "--cascade",
        action="store_true",
        help="with --from-logs: replay the logged cascade calls; --thresholds are answer-head thresholds",
    )
    simulate.add_argument(
        "--confidence-thresholds",
        type=_thresholds,
        metavar="C1,C2,...",
        help="with --cascade: confidence min_score values to try too (default: as logged)",
    )
    simulate.add_argument("--png", type=Path, metavar="FILE", help="write the curves as a PNG")
    simulate.add_argument("--json", action="store_true", help="print the figures as JSON")
    simulate.set_defaults(handler=simulate_command)


def check_command(args: argparse.Namespace) -> int:
    """Validate FILE exactly as the server loads it; exit 0 and a summary line, or 1 and the key at fault."""
    from router.config import load_config

    config = load_config(args.file)  # ConfigError: one line naming the key, exit 1
    routing = config.routing
    threshold = f"threshold {routing.threshold:g}"
    if routing.target_large_fraction is not None:
        threshold = f"target large fraction {routing.target_large_fraction:g}"
    print(
        f"{args.file}: ok ({threshold}, {len(routing.overrides)} overrides; "
        f"small {config.tiers.small.model}, large {config.tiers.large.model})"
    )
    return 0


def simulate_command(args: argparse.Namespace) -> int:
    """For each threshold: the large share, estimated cost from usage and tier prices, and quality (labels).

    Prices: a tier's input/output_cost_per_token in the config, else 0 for a local model, else LiteLLM's
    bundled price map. Usage: the logged (or given) token counts, the same on either tier.
    """
    from router.cli.traffic import record_row, scored_records
    from router.config import load_config
    from router.routing.simulation import plot, simulate, tier_price

    if args.since and not args.from_logs:
        raise CliError("--since goes with --from-logs")
    config = load_config(args.config)
    if args.cascade or args.confidence_thresholds:
        return _simulate_cascade(args, config)
    if args.from_logs:
        if args.config is None:
            raise CliError("--from-logs needs --config FILE: the config names the request log")
        rows = [record_row(record) for record in scored_records(config, args.config, args.since, {})]
    else:
        from router.cli.traffic import input_model_dir, input_rows

        social_turns = config.routing.social_turns == "small"
        rows = input_rows(args.input, lambda: input_model_dir(args.model, args.config), social_turns)
    small, large = tier_price(config.tiers.small), tier_price(config.tiers.large)
    result = simulate(rows, args.thresholds, small, large)
    if args.json:
        _print_json(result, small, large)
    else:
        _print_report(result, small, large, config)
    if args.png is not None:
        plot(result, rows, small, large, args.png)
        print(f"curves written to {args.png}", file=sys.stderr)
    return 0


def _simulate_cascade(args: argparse.Namespace, config: Any) -> int:
    import json
    from dataclasses import asdict

    from router.cli.traffic import cascade_rows
    from router.routing.simulation import format_cascade_table, simulate_cascade

    if not args.cascade:
        raise CliError("--confidence-thresholds goes with --cascade")
    if not args.from_logs or args.config is None:
        raise CliError("--cascade needs --from-logs and --config FILE: it replays the logged verifier values")
    if args.png is not None:
        raise CliError("--png is not available with --cascade")
    rows = cascade_rows(config, args.config, args.since, {})
    outcomes = simulate_cascade(rows, args.thresholds, args.confidence_thresholds or [None])
    verified = sum(row.verified for row in rows)
    labelled = sum(row.small_ok is not None for row in rows)
    if args.json:
        payload = {"rows": len(rows), "verified": verified, "labelled": labelled}
        print(json.dumps({**payload, "outcomes": [asdict(outcome) for outcome in outcomes]}))
        return 0
    print(
        f"cascade calls {len(rows)}; small answers verified {verified}; labelled {labelled}"
        + (" (quality: small_ok of answers kept small, large assumed good enough)" if labelled else "")
    )
    print()
    print(format_cascade_table(outcomes))
    return 0


def _print_report(result: Any, small: Any, large: Any, config: Any) -> None:
    from router.routing.simulation import format_table

    print(
        f"requests {result.rows}; with usage {result.priced_rows}; labelled {result.labelled_rows}"
        + (f" (quality from {result.quality_basis})" if result.labelled_rows else "")
    )
    for name, price, tier in (("small", small, config.tiers.small), ("large", large, config.tiers.large)):
        if price is None:
            print(
                f"{name} tier {tier.model}: no known price (set input/output_cost_per_token): "
                "cost not estimated"
            )
        else:
            print(
                f"{name} tier {tier.model}: ${price.input_per_token:.3g}/input token, "
                f"${price.output_per_token:.3g}/output token ({price.source})"
            )
    print()
    print(format_table(result))


def _print_json(result: Any, small: Any, large: Any) -> None:
    import json
    from dataclasses import asdict

    payload = asdict(result)
    payload["baselines"] = [dict(outcome, threshold=None) for outcome in payload["baselines"]]
    payload["prices"] = {"small": small and asdict(small), "large": large and asdict(large)}
    print(json.dumps(payload))


def _thresholds(text: str) -> tuple[float, ...]:
    return tuple(unit_float(part) for part in text.split(","))
