"""`rightsize calibrate`: the threshold that sends a target share of traffic to the large tier, optionally
written into the config file (in place, atomically) for a running server to pick up."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from router.cli import CliError, unit_float

if TYPE_CHECKING:
    import numpy as np


def register(subparsers: Any) -> None:
    """Add the calibrate command to the `rightsize` parser."""
    from router.cli.traffic import add_source_arguments

    calibrate = subparsers.add_parser(
        "calibrate", help="threshold for a target large-model share", description=calibrate_command.__doc__
    )
    target = calibrate.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-large-fraction", type=unit_float, help="share in [0, 1]")
    target.add_argument(
        "--target-escalation-rate",
        type=unit_float,
        metavar="R",
        help="with --from-logs: the cascade's answer-head threshold that escalates at most share R of the "
        "verified small answers (replayed from the log)",
    )
    add_source_arguments(calibrate, input_help="JSONL prompts typical of your traffic")
    calibrate.add_argument(
        "--tenant",
        metavar="T",
        help="calibrate tenant T's traffic (metadata tenant=T) and write its override",
    )
    calibrate.add_argument(
        "--write",
        type=Path,
        metavar="CONFIG",
        help="set the threshold in this config file, in place (comments and layout kept)",
    )
    calibrate.set_defaults(handler=calibrate_command)


def calibrate_command(args: argparse.Namespace) -> int:
    """Print the threshold that sends the target share of these prompts (or logged requests) to large.

    With --write, routing.threshold (or, with --tenant, the override for metadata tenant=T) is updated in
    the file; a server watching it applies the change within 2 s.
    """
    if args.since and not args.from_logs:
        raise CliError("--since goes with --from-logs")
    config_path: Path | None = args.config or args.write
    if args.target_escalation_rate is not None:
        return _calibrate_cascade(args, config_path)
    scores, social, what = _scores(args, config_path)
    fraction = args.target_large_fraction
    if not len(scores):
        raise CliError(f"all {social} {what} are social turns, which go small whatever the threshold")
    threshold = stable_threshold(scores, fraction, social)
    share = float((scores >= threshold).sum()) / (len(scores) + social)
    print(f"{threshold:.6f}")
    counted = f" ({social} social turns among them, small whatever the threshold)" if social else ""
    print(
        f"threshold {threshold:.6f} sends {share:.1%} of {len(scores) + social} {what}{counted} to the large "
        f"tier (target {fraction:.1%})",
        file=sys.stderr,
    )
    if args.write is not None:
        _write(args.write, threshold, args.tenant)
    return 0


def _calibrate_cascade(args: argparse.Namespace, config_path: Path | None) -> int:
    from router.cli.traffic import cascade_rows
    from router.config import load_config
    from router.routing.simulation import head_threshold_for_rate

    if not args.from_logs or config_path is None:
        raise CliError("--target-escalation-rate needs --from-logs and --config FILE: it replays the log")
    if args.write is not None:
        raise CliError("--write sets routing.threshold only: put the head threshold in routing.cascade.head")
    config = load_config(config_path)
    metadata = {"tenant": args.tenant} if args.tenant else {}
    rows = cascade_rows(config, config_path, args.since, metadata)
    try:
        outcome = head_threshold_for_rate(rows, args.target_escalation_rate, None)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    print(f"{outcome.head_threshold:.6f}")
    verified = sum(row.verified for row in rows)
    print(
        f"head threshold {outcome.head_threshold:.6f} escalates {outcome.escalation_rate:.1%} "
        f"of {verified} verified small answers (target {args.target_escalation_rate:.1%}); "
        f"answered small {outcome.small_share:.1%} of {len(rows)} cascade calls",
        file=sys.stderr,
    )
    return 0


def stable_threshold(scores: np.ndarray, fraction: float, always_small: int = 0) -> float:
    """`threshold_for_share`, rounded to 6 decimals in the direction that keeps the same share."""
    from classifier.calibration import threshold_for_share

    exact = threshold_for_share(scores, fraction, always_small)
    share = int((scores >= exact).sum())
    for candidate in (round(exact, 6), math.floor(exact * 1e6) / 1e6, math.ceil(exact * 1e6) / 1e6):
        if 0.0 <= candidate <= 1.0 and int((scores >= candidate).sum()) == share:
            return candidate
    return exact


def _scores(args: argparse.Namespace, config_path: Path | None) -> tuple[np.ndarray, int, str]:
    """(scores the threshold decides, how many social turns go small besides them, what they are): a
    social turn counts in the share as the server routes it (router.routing.thresholds)."""
    import numpy as np

    from router.cli.traffic import input_model_dir, scored_records
    from router.config import load_config
    from router.domain import SOCIAL_RULE

    metadata = {"tenant": args.tenant} if args.tenant else {}
    if args.from_logs:
        if config_path is None:
            raise CliError("--from-logs needs --config FILE (or --write FILE): the config names the log")
        config = load_config(config_path)
        records = scored_records(config, config_path, args.since, metadata)
        scores = np.array([r.score for r in records if r.rule != SOCIAL_RULE], dtype=np.float64)
        what = "logged requests" + (f" of tenant {args.tenant}" if args.tenant else "")
        return scores, len(records) - len(scores), what
    from classifier.data import read_prompts
    from classifier.scoring import Scorer
    from classifier.social import is_social_turn

    model = input_model_dir(args.model, config_path)
    texts = [prompt.text for prompt in read_prompts(args.input)]
    if load_config(config_path).routing.social_turns == "small":
        tasks = [text for text in texts if not is_social_turn(text)]
    else:
        tasks = texts
    scores = Scorer.from_path(model).score(tasks).astype(np.float64) if tasks else np.empty(0)
    return scores, len(texts) - len(tasks), "prompts"


def _write(path: Path, threshold: float, tenant: str | None) -> None:
    from router.config import load_config
    from router.config.edit import set_threshold, write_atomically
    from router.errors import ConfigError

    try:
        original = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        edit = set_threshold(original, threshold, tenant=tenant)
    except ConfigError as exc:
        raise CliError(f"{path}: {exc}") from exc
    # Validate the result exactly as the server will, before it replaces the file.
    check = path.with_name(f".{path.name}.check")
    try:
        check.write_text(edit.text, encoding="utf-8")
        load_config(check)
    except ConfigError as exc:
        raise CliError(f"not writing {path}: the edited file would be invalid: {exc}") from exc
    finally:
        check.unlink(missing_ok=True)
    write_atomically(path, edit.text)
    print(f"wrote {path}: {edit.change}", file=sys.stderr)
