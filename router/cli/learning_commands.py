"""`rightsize label | retrain | report | models`: the learning loop's commands, all on the server's config."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from router.cli import CliError
from router.cli.log_commands import (
    add_log_arguments,
    load_server_config,
    open_log_store,
    parse_since,
    translate_log_errors,
)

if TYPE_CHECKING:
    from router.config import RouterConfig
    from router.learning.judge import LabelRun
    from router.model_registry import ModelRegistry

# `retrain --promote` exits with this when the challenger is worse and --force was not given.
NOT_PROMOTED = 3


def register(subparsers: Any) -> None:
    """Add label, retrain, report and models to the `rightsize` parser."""
    label = subparsers.add_parser(
        "label",
        help="have the large model judge logged small-tier answers",
        description=label_command.__doc__,
    )
    _from_logs(label)
    add_log_arguments(label)
    label.add_argument("--sample", type=_positive_int, metavar="N", help="label a random N of the candidates")
    label.add_argument("--budget-usd", type=float, metavar="X", help="stop before spending more than X USD")
    label.add_argument("--seed", type=int, default=0, help="seed of --sample (default: 0)")
    label.add_argument(
        "--strategy",
        choices=("diverse", "uncertainty", "random"),  # classifier.active.STRATEGIES
        default="uncertainty",
        help="which prompts the judge sees first: uncertainty (default; logged score nearest its threshold), "
        "diverse (spread over the embedding space, away from labelled ones) or random; measured level within "
        "noise (benchmarks/learning_curve.py), uncertainty with the least spread and no embedding",
    )
    label.set_defaults(handler=label_command)

    retrain = subparsers.add_parser(
        "retrain", help="train a challenger on labelled logs and compare", description=retrain_command.__doc__
    )
    _from_logs(retrain)
    add_log_arguments(retrain)
    retrain.add_argument("--base-data", type=Path, metavar="FILE", help="JSONL training data mixed in")
    retrain.add_argument(
        "--base-weight",
        type=float,
        default=1.0,
        metavar="W",
        help="weight of each base row (a logged row weighs 1; default: 1)",
    )
    retrain.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="candidate directory (default: MODELS_DIR/candidates/<UTC time>)",
    )
    retrain.add_argument("--holdout", type=float, default=0.2, help="share of logged prompts held out")
    retrain.add_argument("--promote", action="store_true", help="serve the challenger if not worse")
    retrain.add_argument("--force", action="store_true", help="with --promote: promote even if worse")
    _models_dir(retrain)
    retrain.set_defaults(handler=retrain_command)

    report = subparsers.add_parser(
        "report",
        help="savings, tier mix, latency and fallbacks from the log",
        description=report_command.__doc__,
    )
    add_log_arguments(report)
    report.add_argument("--png", type=Path, metavar="FILE", help="write the tier-mix and savings chart")
    report.add_argument("--json", action="store_true", help="print the figures as JSON")
    report.set_defaults(handler=report_command)

    models = subparsers.add_parser("models", help="list promoted models, or roll back to the previous one")
    commands = models.add_subparsers(dest="models_command", metavar="SUBCOMMAND")
    commands.required = True
    for name, handler, text in (
        ("list", models_list_command, "list models and the one served"),
        ("rollback", models_rollback_command, "serve the previously promoted model"),
    ):
        command = commands.add_parser(name, help=text, description=handler.__doc__)
        command.add_argument(
            "--config", type=Path, required=True, metavar="FILE", help="the server's config file"
        )
        _models_dir(command)
        command.set_defaults(handler=handler)


def label_command(args: argparse.Namespace) -> int:
    """Judge unlabelled logged requests: both tiers' answers (logged or shadow ones first), then the large
    model's verdict in strict JSON, stored as the request's small_ok label."""
    import asyncio
    import random

    from router.learning.judge import labelling_order, unlabelled

    config = load_server_config(args.config)
    since = parse_since(args.since)
    with open_log_store(args.config, config.log) as store:
        records = translate_log_errors(lambda: list(store.iter_records(since=since)))
        candidates = unlabelled(records)
        if args.sample is not None and args.sample < len(candidates) and args.strategy == "random":
            candidates = random.Random(args.seed).sample(candidates, args.sample)
        labelled = [r.prompt for r in records if r.small_ok is not None and r.prompt]
        candidates = labelling_order(
            candidates, args.strategy, labelled, _embedder(embedding_cache(config)), args.seed
        )
        candidates = candidates[: args.sample] if args.sample is not None else candidates
        print(f"{len(candidates)} requests to label, {args.strategy} first", file=sys.stderr)
        run = translate_log_errors(lambda: asyncio.run(_label(config, store, candidates, args.budget_usd)))
    print(_label_summary(run))
    return 0


def embedding_cache(config: RouterConfig) -> Path:
    """Where `label` and `retrain` keep embeddings of logged prompts: `cache/embeddings.npz` in the state
    directory the request log already uses (the parent of `log.spill_dir`, absolute once the config is
    loaded), never the models directory, which by default is the installed package's."""
    return config.log.spill_dir.parent / "cache" / "embeddings.npz"


def _embedder(cache: Path) -> Any:
    """Texts -> shipped-embedder vectors, through the embedding cache `cache`."""

    def embed(texts: list[str]) -> Any:
        from classifier.cache import embed_cached
        from classifier.embedding import VARIANT_FILES, Embedder
        from classifier.paths import SHIPPED_EMBEDDER
        from classifier.training import Recipe

        recipe = Recipe()
        variant = VARIANT_FILES[recipe.embedder]
        embedder = Embedder.from_path(SHIPPED_EMBEDDER, variant=variant, long_text=recipe.long_text)
        return embed_cached(embedder, texts, cache)

    return embed


async def _label(config: RouterConfig, store: Any, records: list[Any], budget: float | None) -> LabelRun:
    from router.backends import LiteLLMBackend
    from router.learning.judge import Teacher

    backend = LiteLLMBackend()
    backend.start_loading()
    if not await _wait_loaded(backend):
        raise CliError(f"cannot load LiteLLM: {backend.load_error}")
    try:
        teacher = Teacher(config, store, backend, budget_usd=budget, say=_say)
        return await teacher.label(records)
    finally:
        await backend.aclose()


async def _wait_loaded(backend: Any) -> bool:
    import asyncio

    return bool(await asyncio.get_running_loop().run_in_executor(None, backend.wait_loaded, 120))


def _label_summary(run: LabelRun) -> str:
    stop = " (stopped at the budget)" if run.stopped_at_budget else ""
    return (
        f"labelled {run.labelled} of {run.candidates} ({run.small_ok} small_ok=1); malformed verdicts"
        f" {run.malformed}, failed calls {run.failed}; spent ${run.spent_usd:.6f}"
        f" (judge ${run.judge_usd:.6f}){stop}"
    )


def retrain_command(args: argparse.Namespace) -> int:
    """Train a challenger on the labelled logs (plus optional base data), compare it with the served model
    on held-out logged prompts, write a markdown + PNG report, and with --promote serve it if not worse."""
    from router.learning.retrain import (
        champion_recipe,
        compare,
        labelled_examples,
        read_base,
        split,
        train_candidate,
    )
    from router.learning.retrain import write_report as write_retrain_report

    if not 0 < args.holdout < 1:
        raise CliError("--holdout must be between 0 and 1")
    if args.force and not args.promote:
        raise CliError("--force only makes sense with --promote")
    config = load_server_config(args.config)
    registry = _registry(config, args.models_dir)
    since = parse_since(args.since)
    with open_log_store(args.config, config.log) as store:
        examples = labelled_examples(translate_log_errors(lambda: list(store.iter_records(since=since))))
    train, holdout = split(examples, args.holdout)
    base = read_base(args.base_data, args.base_weight) if args.base_data else []
    out = args.out or registry.root / "candidates" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    if out.exists():
        raise CliError(f"{out} already exists; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    champion = registry.current_path()
    recipe = champion_recipe(champion)
    _say(
        f"training with the champion's recipe: embedder {recipe.embedder}, long_text {recipe.long_text}, "
        f"label {recipe.label}, C={recipe.C:g}, balance {recipe.balance}; label, C, class balance and prior "
        "weight chosen by cross-validation on the logged labels"
    )
    selection = train_candidate(train, base, out, embedding_cache(config), _say, recipe, champion)
    comparison = compare(champion, out, holdout, len(train), len(base), selection)
    markdown, png = write_retrain_report(comparison, out)
    print(markdown.read_text(encoding="utf-8").rsplit("\n![", 1)[0])
    print(f"\ncandidate {out}\nreport {markdown}\nchart {png}")
    if not args.promote:
        return 0
    if not comparison.not_worse and not args.force:
        print("not promoted: the challenger is worse than the champion (use --force to override)")
        return NOT_PROMOTED
    entry = registry.promote(out)
    print(f"promoted {entry.version}: {registry.pointer} -> {entry.path}")
    return 0


def report_command(args: argparse.Namespace) -> int:
    """Requests and share by tier, actual cost vs everything on the large tier, the saving, p50/p95 latency
    by tier and fallbacks, from the request log."""
    from router.learning.report import build_report, format_report, large_price, plot_report, report_to_json

    config = load_server_config(args.config)
    since = parse_since(args.since)
    price = large_price(config.tiers.large)
    with open_log_store(args.config, config.log) as store:
        report = build_report(translate_log_errors(lambda: list(store.iter_records(since=since))), price)
    print(json.dumps(report_to_json(report), indent=2) if args.json else format_report(report))
    if args.png is not None:
        plot_report(report, args.png)
        print(f"chart written to {args.png}", file=sys.stderr)
    return 0


def models_list_command(args: argparse.Namespace) -> int:
    """List the models directory: the served model (*), promoted versions and candidates."""
    registry = _registry(load_server_config(args.config), args.models_dir)
    for version, path, promoted_at, current in registry.listing():
        print(f"{'*' if current else ' '} {version:<14} {promoted_at or '-':<26} {path}")
    return 0


def models_rollback_command(args: argparse.Namespace) -> int:
    """Point `current` back at the previously promoted model; a running server switches within a second."""
    registry = _registry(load_server_config(args.config), args.models_dir)
    served = registry.rollback()
    print(f"now serving {served}")
    return 0


def _registry(config: RouterConfig, models_dir: Path | None) -> ModelRegistry:
    from router.model_registry import ModelRegistry

    models = config.models
    return ModelRegistry(models_dir or models.root, models.active, models.keep)


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def _from_logs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from-logs",
        action="store_true",
        required=True,
        help="work from the request log (the only source for now)",
    )


def _models_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models-dir", type=Path, metavar="DIR", help="overrides models.dir of the config")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value
