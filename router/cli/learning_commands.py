"""`rightsize label | retrain | report | models`: the learning loop's commands, all on the server's config."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from router.cli import CliError
from router.cli.log_commands import (
    CONFIG_HELP,
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
        choices=("diverse", "typical", "uncertainty", "random"),  # classifier.active.STRATEGIES
        default="uncertainty",
        help="which prompts the judge sees first: uncertainty (default; logged score nearest its threshold), "
        "diverse (spread over the embedding space, away from labelled ones), typical (the most typical "
        "prompt of each of the largest unlabelled clusters; --sample clusters, default 100) or random; "
        "on independent draws of benchmarks/learning_curve.py uncertainty led random by about 0.01 APGR "
        "at 100-400 labels and needs no embedding, the other two did not",
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
    retrain.add_argument(
        "--verdict-weight",
        type=float,
        default=0.0,
        metavar="W",
        help="prompt head: also train on unconfirmed cascade verdicts (answer stood = small_ok 1, escalated "
        "= 0), each weighing W (default 0: excluded; they never enter the held-out comparison)",
    )
    retrain.add_argument("--promote", action="store_true", help="serve the challenger if not worse")
    retrain.add_argument("--force", action="store_true", help="with --promote: promote even if worse")
    retrain.add_argument(
        "--head",
        choices=("all", "prompt", "answer"),
        default="all",
        help="which head to train: prompt (the classifier), answer (the cascade's answer-quality head, from "
        "cascade-verified calls with a confirmed label) or all (default: both; a head whose labels are too "
        "few is skipped with a note)",
    )
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
        command.add_argument("--config", type=Path, metavar="FILE", help=CONFIG_HELP)
        _models_dir(command)
        command.add_argument(
            "--answer-head",
            action="store_true",
            help="the cascade's answer-quality head (routing.cascade.head.path) instead of the classifier",
        )
        command.set_defaults(handler=handler)


def label_command(args: argparse.Namespace) -> int:
    """Judge unlabelled logged requests: both tiers' answers (logged or shadow ones first), then the large
    model's verdict in strict JSON, stored as the request's small_ok label."""
    import asyncio
    import itertools
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
        order = labelling_order(
            candidates, args.strategy, labelled, _embedder(embedding_cache(config)), args.seed, args.sample
        )
        count = len(candidates) if args.sample is None else min(len(candidates), args.sample)
        picked = itertools.islice(order, count)
        print(f"{count} requests to label, {args.strategy} first", file=sys.stderr)
        run = translate_log_errors(lambda: asyncio.run(_label(config, store, picked, count, args.budget_usd)))
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


async def _label(
    config: RouterConfig, store: Any, records: Iterable[Any], count: int, budget: float | None
) -> LabelRun:
    from router.learning.judge import Teacher

    async with running_tier_stack(config) as backend:
        teacher = Teacher(config, store, backend, budget_usd=budget, say=_say)
        return await teacher.label(records, count)


@contextlib.asynccontextmanager
async def running_tier_stack(config: RouterConfig) -> AsyncIterator[Any]:
    """The server's tier stack for a command (an embedded tier's calls go to its child, a failing tier's
    circuit opens), LiteLLM loaded; yields its top Backend and closes the stack after."""
    from router.backends.stack import build_tier_stack
    from router.metrics import RouterMetrics

    stack = build_tier_stack(config, RouterMetrics())
    backend = stack.litellm
    backend.start_loading()
    stack.embedded.start()
    try:
        if not await _wait_loaded(backend):
            raise CliError(f"cannot load LiteLLM: {backend.load_error}")
        yield stack.backend
    finally:
        await stack.aclose()


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
    on held-out logged prompts, write a markdown + PNG report, and with --promote serve it if not worse.
    The cascade's answer-quality head is retrained the same way from the cascade-verified calls whose small
    answer has a confirmed label (feedback or `rightsize label`), and promoted into its own registry
    (`<routing.cascade.head.path>/current`), which a running server watches."""
    from router.learning.retrain import RetrainError

    if not 0 < args.holdout < 1:
        raise CliError("--holdout must be between 0 and 1")
    if args.force and not args.promote:
        raise CliError("--force only makes sense with --promote")
    if not 0 <= args.verdict_weight <= 1:
        raise CliError("--verdict-weight must be between 0 and 1")
    config = load_server_config(args.config)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    heads = ("prompt", "answer") if args.head == "all" else (args.head,)
    trainers = {"prompt": _retrain_prompt_head, "answer": _retrain_answer_head}
    statuses = []
    for head in heads:
        try:
            statuses.append(trainers[head](args, config, stamp))
        except RetrainError as exc:
            if args.head != "all":
                raise
            print(f"{head} head: not retrained: {exc}")
    if not statuses:
        raise CliError(
            "neither head has enough labels to retrain (collect feedback or run `rightsize label`)"
        )
    return max(statuses)


def _retrain_prompt_head(args: argparse.Namespace, config: RouterConfig, stamp: str) -> int:
    from router.learning.retrain import (
        champion_recipe,
        compare,
        labelled_examples,
        read_base,
        split,
        train_candidate,
    )

    registry = _registry(config, args.models_dir)
    since = parse_since(args.since)
    with open_log_store(args.config, config.log) as store:
        # Streamed: the log is read in pages and only the labelled prompts are kept (10^5 rows: flat memory).
        examples = translate_log_errors(
            lambda: labelled_examples(store.iter_records(since=since), args.verdict_weight)
        )
    train, holdout = split(examples, args.holdout)
    base = read_base(args.base_data, args.base_weight) if args.base_data else []
    out = _candidate_dir(args.out, registry, stamp)
    champion = registry.current_path()
    recipe = champion_recipe(champion)
    _say(
        f"training with the champion's recipe: embedder {recipe.embedder}, long_text {recipe.long_text}, "
        f"label {recipe.label}, C={recipe.C:g}, balance {recipe.balance}; label, C, class balance and prior "
        "weight chosen by cross-validation on the logged labels"
    )
    selection = train_candidate(train, base, out, embedding_cache(config), _say, recipe, champion)
    comparison = compare(champion, out, holdout, len(train), len(base), selection)
    return _decide(args, comparison, out, registry)


def _retrain_answer_head(args: argparse.Namespace, config: RouterConfig, stamp: str) -> int:
    from router.learning.answer_retrain import (
        answer_examples,
        compare_answer_heads,
        split_answers,
        train_answer_candidate,
    )
    from router.rpc.server import verifier_registry

    registry = verifier_registry(config)
    since = parse_since(args.since)
    with open_log_store(args.config, config.log) as store:
        examples = translate_log_errors(lambda: answer_examples(store.iter_records(since=since)))
    train, holdout = split_answers(examples, args.holdout)
    out = _candidate_dir(args.out if args.head == "answer" else None, registry, stamp)
    champion = registry.current_path()
    train_answer_candidate(train, champion, out, _say)
    comparison = compare_answer_heads(champion, out, holdout, len(train))
    return _decide(args, comparison, out, registry)


def _candidate_dir(out: Path | None, registry: ModelRegistry, stamp: str) -> Path:
    out = out or registry.root / "candidates" / stamp
    if out.exists():
        raise CliError(f"{out} already exists; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _decide(args: argparse.Namespace, comparison: Any, out: Path, registry: ModelRegistry) -> int:
    """Write and print the report; with --promote, make `out` current when not worse (or forced)."""
    from router.learning.retrain import write_report as write_retrain_report

    markdown, png = write_retrain_report(comparison, out)
    print(markdown.read_text(encoding="utf-8").rsplit("\n![", 1)[0])
    print(f"\ncandidate {out}\nreport {markdown}\nchart {png}")
    if not args.promote:
        return 0
    if not comparison.not_worse and not args.force:
        print(f"not promoted: the {comparison.subject} challenger is worse than the champion (use --force)")
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
    registry = _models_registry(args)
    for version, path, promoted_at, current in registry.listing():
        print(f"{'*' if current else ' '} {version:<14} {promoted_at or '-':<26} {path}")
    return 0


def models_rollback_command(args: argparse.Namespace) -> int:
    """Point `current` back at the previously promoted model; a running server switches within a second."""
    registry = _models_registry(args)
    served = registry.rollback()
    print(f"now serving {served}")
    return 0


def _models_registry(args: argparse.Namespace) -> ModelRegistry:
    """The registry `models list|rollback` works on: the classifier's, or with --answer-head the head's."""
    config = load_server_config(args.config)
    if not args.answer_head:
        return _registry(config, args.models_dir)
    if args.models_dir is not None:
        raise CliError("--models-dir is the classifier's; the answer head's is routing.cascade.head.path")
    from router.rpc.server import verifier_registry

    return verifier_registry(config)


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
