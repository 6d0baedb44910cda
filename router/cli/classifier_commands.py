"""`rightsize score | train | eval`: the classifier's commands (no server needed)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from router.cli import CliError, unit_float


def register(subparsers: Any) -> None:
    from classifier.paths import DEFAULT_MODEL_DIR

    score = subparsers.add_parser(
        "score", help="score prompts from a JSONL file", description=score_command.__doc__
    )
    score.add_argument(
        "--input", type=Path, required=True, help='JSONL: {"id":..,"prompt":..} or {"id":..,"messages":[..]}'
    )
    score.add_argument("--output", type=Path, required=True, help="JSONL out ('-' for stdout)")
    score.add_argument(
        "--model", type=Path, default=DEFAULT_MODEL_DIR, help="model directory (default: shipped)"
    )
    score.add_argument("--threshold", type=unit_float, default=0.5, help="route large when score >= this")
    score.set_defaults(handler=score_command)

    train = subparsers.add_parser("train", help="train a classifier head", description=train_command.__doc__)
    train.add_argument(
        "--data", type=Path, nargs="+", required=True, help="JSONL with prompt|messages and small_ok"
    )
    train.add_argument("--out", type=Path, required=True, help="model directory to write")
    train.add_argument(
        "--embedding-cache", type=Path, help="npz cache of prompt embeddings (reused across runs)"
    )
    train.add_argument(
        "--calibration-prompts",
        type=Path,
        help="JSONL of typical traffic for the manifest's suggested thresholds",
    )
    train.add_argument(
        "--recipe",
        choices=("auto", "shipped"),
        default="auto",
        help="auto (default): choose label, C, class balance by cross-validation on the data (up to 5,000 "
        "prompts; larger data keeps the shipped recipe); shipped: the shipped recipe as is",
    )
    train.add_argument(
        "--C", type=float, default=None, help="inverse L2 strength (implies --recipe shipped with this C)"
    )
    train.add_argument(
        "--balance", choices=("none", "sqrt", "equal"), default=None, help="per-source weighting"
    )
    train.add_argument(
        "--long-text",
        choices=("head_tail", "joined", "truncate"),  # classifier.embedding.LongText, without importing numpy
        default=None,
        help="how prompts past the 256-token window are embedded (default: the recipe's, joined; recorded "
        "in the manifest)",
    )
    train.add_argument(
        "--embedder",
        choices=("fp32", "int8"),  # classifier.embedding.EmbedderVariant
        default=None,
        help="the embedder file to train on, recorded in the manifest and served by default (default: the "
        "recipe's, int8)",
    )
    train.set_defaults(handler=train_command)

    evaluate = subparsers.add_parser(
        "eval", help="routing quality on labelled data", description=eval_command.__doc__
    )
    evaluate.add_argument(
        "--data", type=Path, required=True, help="JSONL with small_ok (and small/large_score)"
    )
    evaluate.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR)
    evaluate.add_argument("--plot", type=Path, help="write the quality-vs-large-share curve as PNG")
    evaluate.add_argument("--json", action="store_true", help="print the figures as JSON")
    evaluate.set_defaults(handler=eval_command)


def score_command(args: argparse.Namespace) -> int:
    """Score each prompt; write {"id", "score", "tier"} per line, in input order."""
    from classifier.data import read_prompts
    from classifier.scoring import Scorer

    prompts = read_prompts(args.input)
    scorer = Scorer.from_path(args.model)
    scores = scorer.score([p.text for p in prompts])
    lines = [
        json.dumps(
            {"id": p.id, "score": round(float(s), 6), "tier": "large" if s >= args.threshold else "small"}
        )
        for p, s in zip(prompts, scores, strict=True)
    ]
    _write_text(args.output, "\n".join(lines) + "\n")
    large = sum(1 for s in scores if s >= args.threshold)
    print(
        f"scored {len(prompts)} prompts with {scorer.version}: {large} large, {len(prompts) - large} small "
        f"(threshold {args.threshold})",
        file=sys.stderr,
    )
    return 0


def train_command(args: argparse.Namespace) -> int:
    """Train an embedding + features logistic head, calibrate it, and write a model directory."""
    from dataclasses import replace

    from classifier.cache import embed_cached
    from classifier.data import read_examples, read_prompts
    from classifier.embedding import VARIANT_FILES, Embedder
    from classifier.paths import SHIPPED_EMBEDDER
    from classifier.training import Recipe, train_model

    if args.out.exists() and any(args.out.iterdir()) and not (args.out / "manifest.json").is_file():
        raise CliError(f"{args.out} exists and is not a model directory; refusing to write into it")
    notes: list[str] = []
    examples = read_examples(args.data, notes=notes)
    for note in notes:
        print(note, file=sys.stderr)
    recipe = Recipe()
    fixed = args.recipe == "shipped" or args.C is not None or args.balance is not None
    if args.C is not None:
        if not args.C > 0:
            raise CliError("--C must be positive")
        recipe = replace(recipe, C=args.C)
    if args.balance is not None:
        recipe = replace(recipe, balance=args.balance)
    if args.long_text is not None:
        recipe = replace(recipe, long_text=args.long_text)
    if args.embedder is not None:
        recipe = replace(recipe, embedder=args.embedder)
    embedder = Embedder.from_path(
        SHIPPED_EMBEDDER, variant=VARIANT_FILES[recipe.embedder], long_text=recipe.long_text
    )
    texts = sorted({e.text for e in examples})
    print(
        f"embedding {len(texts)} distinct prompts from {len(examples)} rows ...", file=sys.stderr, flush=True
    )
    embeddings = embed_cached(embedder, texts, args.embedding_cache)
    selection_metrics: dict[str, object] = {}
    if not fixed:
        recipe, selection_metrics = _chosen_recipe(examples, embeddings, texts, recipe)
    calibration = None
    if args.calibration_prompts is not None:
        cal_texts = [p.text for p in read_prompts(args.calibration_prompts)]
        calibration = (embed_cached(embedder, cal_texts, args.embedding_cache), cal_texts)
    manifest = train_model(
        examples,
        embeddings,
        texts,
        args.out,
        SHIPPED_EMBEDDER,
        recipe=recipe,
        data_files=args.data,
        calibration_scores_texts=calibration,
        metrics=selection_metrics,
    )
    oof = manifest.metrics["out_of_fold"]
    assert isinstance(oof, dict)
    print(
        f"wrote {args.out} (version {manifest.version}); label {recipe.label}, C={recipe.C:g}, class "
        f"balance {'on' if recipe.class_balance else 'off'}; out-of-fold AUC {oof['auc']:.3f}"
        f" APGR {oof['apgr']:.3f};"
        f" suggested thresholds {manifest.suggested_thresholds}"
    )
    return 0


def _chosen_recipe(
    examples: Any, embeddings: Any, texts: list[str], recipe: Any
) -> tuple[Any, dict[str, object]]:
    """The recipe cross-validation picks on these examples (the given one for large data sets), and the
    selection's figures for the manifest."""
    from classifier.recipes import MAX_PROMPTS, select_recipe
    from classifier.scoring import head_inputs

    if len(texts) > MAX_PROMPTS:
        print(
            f"{len(texts)} prompts (> {MAX_PROMPTS}): keeping the shipped recipe (label {recipe.label}, "
            f"C={recipe.C:g}), chosen by leave-one-source-out validation",
            file=sys.stderr,
        )
        return recipe, {}
    print(f"choosing the recipe by cross-validation on {len(texts)} prompts ...", file=sys.stderr, flush=True)
    selection = select_recipe(examples, head_inputs(embeddings, texts), texts, recipe)
    best = selection.scores[0]
    print(f"chose {best.describe()}: CV APGR {best.apgr:.3f} (sd {best.apgr_sd:.3f})", file=sys.stderr)
    return selection.chosen, {"recipe_selection": selection.summary()}


def eval_command(args: argparse.Namespace) -> int:
    """AUC, APGR, CPT(50%), CPT(80%) of a model on labelled data, beside random and always-small."""
    from classifier.data import read_examples
    from classifier.evaluation import evaluate, evaluate_by_scale, format_report, plot_curve
    from classifier.scoring import Scorer

    notes: list[str] = []
    examples = read_examples([args.data], notes=notes)
    for note in notes:
        print(note, file=sys.stderr)
    scorer = Scorer.from_path(args.model)
    scores = scorer.score([e.text for e in examples])
    report = evaluate(scores, examples)
    by_scale = evaluate_by_scale(scores, examples) if len({e.scale for e in examples}) > 1 else {}
    if args.json:
        print(
            json.dumps(
                {
                    "model": scorer.version,
                    "rows": report.rows,
                    "auc": report.auc,
                    "apgr": report.apgr,
                    "cpt50": report.cpt50,
                    "cpt80": report.cpt80,
                    "quality_basis": report.quality_basis,
                    "by_scale": {
                        scale: {
                            "rows": r.rows,
                            "auc": r.auc,
                            "apgr": r.apgr,
                            "quality_basis": r.quality_basis,
                        }
                        for scale, r in by_scale.items()
                    },
                }
            )
        )
    else:
        print(f"model {scorer.version} ({args.model})")
        print(format_report(report))
        for scale, part in by_scale.items():
            print(f"\nrows on scale {scale} alone:\n{format_report(part)}")
    if args.plot is not None:
        plot_curve(report, args.plot)
        print(f"curve written to {args.plot}", file=sys.stderr)
    return 0


def _write_text(path: Path, text: str) -> None:
    """Write all or nothing: a temp file renamed into place (or stdout for '-')."""
    if str(path) == "-":
        sys.stdout.write(text)
        return
    if path.is_dir():
        raise CliError(f"{path} is a directory")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
