"""Learning curves: how fast retraining learns a new team's traffic from its first labels.

Each source group of ../shared/data/routing/train.jsonl (GSM8K's two sources together) plays a new team:
a start model is trained on the other groups (the shipped recipe); then N of the group's prompts are
labelled (N = 50, 100, 200, 400, 1000; fewer when the group is small) and each method retrains on them.
Every model scores the same held-out third of the group's prompts. Several random draws per point.

Methods: `start` (no retrain), `today` (the shipped recipe on the labels alone, as `rightsize retrain` did),
`plain` (class-balanced logistic regression, C=1, on the embeddings, label 1 - small_ok), `knn` (mean label
of the 15 nearest labelled prompts), `prior` (the start model's logit as an offset, C=0.1, balanced),
`mixed` (base data plus the labels at half the total weight), `auto` (what `rightsize retrain` does: the
recipe chosen by cross-validation on the labels, classifier.recipes, with the start model as prior, rule
`anchored_auc_2se`: the better, by cross-validated AUC, of the start model as it is and the plain model,
unless another candidate beats that by more than two standard errors of the paired fold APGR differences;
the start model below 100 labels), `auto_1se_auc` (rule `anchored_auc`, the default before 2026-12-03: one
standard error), `auto_anchor` (rule `anchor_only`: the better of those two, nothing else), `auto_mean`
(rule `anchored`: the two compared by APGR), `auto_1se` (rule `one_se`: from the start model alone),
`auto_plain` (rule `plain_first`: from the plain model), `auto_best` (rule `best`: the highest
cross-validated APGR). All are read off one cross-validation.
Active labelling: the `prior` recipe trained on N prompts picked by strategy (classifier.active).

    python benchmarks/learning_curve.py [--draws 3] [--seed 0] [--groups G ...] [--json FILE] [--png FILE]
        [--smoke]
    python benchmarks/learning_curve.py --merge A.json B.json --json ALL.json   # groups run apart
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.loso import EMBEDDER, default_cache, group_of  # noqa: E402
from classifier.active import diverse_order, typical_order, uncertainty_order  # noqa: E402
from classifier.cache import embed_cached  # noqa: E402
from classifier.data import Example, read_examples  # noqa: E402
from classifier.embedding import VARIANT_FILES, Embedder  # noqa: E402
from classifier.errors import DataError  # noqa: E402
from classifier.evaluation import evaluate  # noqa: E402
from classifier.recipes import Rule, choose, pick, select_recipe  # noqa: E402
from classifier.scoring import head_inputs  # noqa: E402
from classifier.training import HeadTrainer, LinearHead, Recipe, build_training_set  # noqa: E402

SIZES = (50, 100, 200, 400, 1000)
ACTIVE_SIZES = (100, 250, 400)
METHODS = (
    "start",
    "today",
    "plain",
    "knn",
    "prior",
    "mixed",
    "auto",
    "auto_mean",
    "auto_1se",
    "auto_plain",
    "auto_best",
    "auto_1se_auc",
    "auto_anchor",
)
# Recipe selection variants, read off one cross-validation: (method, rule). `auto` is what retrain does.
VARIANTS: tuple[tuple[str, Rule], ...] = (
    ("auto", "anchored_auc_2se"),
    ("auto_mean", "anchored"),
    ("auto_1se", "one_se"),
    ("auto_plain", "plain_first"),
    ("auto_best", "best"),
    ("auto_1se_auc", "anchored_auc"),
    ("auto_anchor", "anchor_only"),
)
PRIOR_RECIPE = Recipe(C=0.1, class_balance=True, prior=1.0, label="small_ok")


class Data:
    """Examples, their prompts' head inputs and embeddings, by text."""

    def __init__(self, examples: list[Example], vectors: np.ndarray, texts: list[str]):
        self.examples = examples
        self.row_of = {t: i for i, t in enumerate(texts)}
        self.vectors = vectors
        self.inputs = head_inputs(vectors, texts)
        self.texts = texts

    def x(self, texts: list[str]) -> np.ndarray:
        return self.inputs[[self.row_of[t] for t in texts]]

    def emb(self, texts: list[str]) -> np.ndarray:
        return self.vectors[[self.row_of[t] for t in texts]]


def fit_ranker(rows: list[Example], data: Data, recipe: Recipe, prior: LinearHead | None = None):  # type: ignore[no-untyped-def]
    """A ranking-only head (no Platt: it never changes the order) on `rows`; returns texts -> decision."""
    training = build_training_set(rows, recipe.balance, recipe.label)
    model = HeadTrainer(recipe, prior)._fit_one(data.x(training.texts), training.need_large, training.weights)
    return model, lambda texts: model.decision_function(data.x(texts))


def linear_of(model) -> LinearHead:  # type: ignore[no-untyped-def]
    """A fitted scaler + logistic pipeline as raw-space weights and intercept."""
    scaler, logistic = model.named_steps.values()
    coef = logistic.coef_[0] / scaler.scale_
    return coef, float(logistic.intercept_[0] - coef @ scaler.mean_)


def plain(rows: list[Example], data: Data):  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression

    training = build_training_set(rows, "none", "small_ok")
    target = (training.need_large >= 0.5).astype(int)
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
    model.fit(data.emb(training.texts), target)
    return lambda texts: model.decision_function(data.emb(texts))


def knn(rows: list[Example], data: Data, k: int = 15):  # type: ignore[no-untyped-def]
    training = build_training_set(rows, "none", "small_ok")
    labelled = data.emb(training.texts)
    k = max(1, min(k, len(training.texts) // 3))

    def score(texts: list[str]) -> np.ndarray:
        similarity = data.emb(texts) @ labelled.T
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        return training.need_large[nearest].mean(axis=1) + 1e-6 * similarity.max(axis=1)

    return score


def _describe(recipe: Recipe) -> str:
    balance = "balanced" if recipe.class_balance else "unbalanced"
    return f"{recipe.label} C={recipe.C:g} {balance} prior={recipe.prior:g} inputs={recipe.inputs}"


FIXED = ("start", "today", "plain", "knn", "prior", "mixed")


def fixed_method(
    method: str, labels: list[Example], data: Data, start_head: LinearHead, mixed_rows: list[Example]
):  # type: ignore[no-untyped-def]
    """The scorer of a method that needs no selection (None for `start`: the start model, already scored)."""
    if method == "today":
        return fit_ranker(labels, data, Recipe())[1]
    if method == "plain":
        return plain(labels, data)
    if method == "knn":
        return knn(labels, data)
    if method == "prior":
        return fit_ranker(labels, data, PRIOR_RECIPE, start_head)[1]
    if method == "mixed":
        weight = len(mixed_rows) / max(len(labels), 1)
        return fit_ranker(mixed_rows + [replace(e, weight=weight) for e in labels], data, Recipe())[1]
    return None


def figures(score, rows: list[Example]) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    report = evaluate(score([e.text for e in rows]), rows)
    return report.apgr, report.auc


def run_group(group: str, data: Data, args: argparse.Namespace, rng_seed: int) -> dict[str, object]:
    held = [e for e in data.examples if group_of(e.source) == group]
    base = [e for e in data.examples if group_of(e.source) != group]
    start_model, start = fit_ranker(base, data, Recipe())
    start_head = linear_of(start_model)
    rows_of: dict[str, list[Example]] = defaultdict(list)
    for e in held:
        rows_of[e.text].append(e)
    prompts = sorted(rows_of)
    base_prompts = sorted({e.text for e in base})
    curve: dict[str, dict[int, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    active: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    choices: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    for draw in range(args.draws):
        rng = random.Random(rng_seed + draw)
        order = prompts[:]
        rng.shuffle(order)
        test_prompts = order[: len(order) // 3]
        pool = order[len(order) // 3 :]
        test = [e for t in test_prompts for e in rows_of[t]]
        start_figures = figures(start, test)
        mixed_base = rng.sample(base_prompts, min(len(base_prompts), args.mixed_base))
        mixed_set = set(mixed_base)
        mixed_rows = [e for e in base if e.text in mixed_set]
        for size in [s for s in args.sizes if s <= len(pool)]:
            labels = [e for t in pool[:size] for e in rows_of[t]]
            if len({e.small_ok for e in labels}) < 2:
                continue
            for method in FIXED:
                if method in args.methods:
                    scorer = fixed_method(method, labels, data, start_head, mixed_rows)
                    curve[method][size].append(start_figures if scorer is None else figures(scorer, test))
            if not {m for m, _ in VARIANTS} & set(args.methods):
                continue
            texts = sorted({e.text for e in labels})
            smoke = {"repeats": 1, "cs": (0.1,)} if args.smoke else {}
            try:
                selection = select_recipe(labels, data.x(texts), texts, Recipe(), start_head, **smoke)
            except DataError:  # e.g. one failure among 50 labels: retrain refuses, the start model serves on
                for method, _ in VARIANTS:
                    curve[method][size].append(start_figures)
                    choices[method][size].append("start (too few of one class)")
                continue
            default = selection.default
            assert default is not None  # select_recipe always scores the first candidate
            for method, rule in VARIANTS:
                # What retrain would take under each rule (the champion below 100 labels); `best` without
                # that guard: the highest cross-validated APGR whatever the count.
                if rule == "best":
                    chosen = choose(selection.scores, default, rule).recipe
                else:
                    chosen = pick(selection.scores, default, rule, selection.prompts).recipe
                prior = start_head if chosen.prior > 0 else None
                curve[method][size].append(figures(fit_ranker(labels, data, chosen, prior)[1], test))
                choices[method][size].append(_describe(chosen))
        if not args.active:
            continue
        pool_scores = start(pool)
        picks = {
            "random": np.arange(len(pool)),
            "uncertainty": uncertainty_order(pool_scores, np.full(len(pool), np.median(pool_scores))),
            "diverse": diverse_order(data.emb(pool), count=max(args.active_sizes)),
            "typical": typical_order(data.emb(pool), count=max(args.active_sizes), seed=rng_seed + draw),
        }
        for strategy, picked in picks.items():
            for size in [s for s in args.active_sizes if s <= len(pool)]:
                labels = [e for i in picked[:size] for e in rows_of[pool[int(i)]]]
                if len({e.small_ok for e in labels}) < 2:
                    continue
                scorer = fit_ranker(labels, data, PRIOR_RECIPE, start_head)[1]
                active[strategy][size].append(figures(scorer, test)[0])
    return {
        "curve": {m: {str(s): v for s, v in sizes.items()} for m, sizes in curve.items()},
        "active": {m: {str(s): v for s, v in sizes.items()} for m, sizes in active.items()},
        "choices": {m: {str(s): v for s, v in sizes.items()} for m, sizes in choices.items()},
        "prompts": len(prompts),
    }


def summarise(results: dict[str, dict]) -> dict[str, object]:  # type: ignore[type-arg]
    """Mean over groups of each group's mean over draws, and the spread (sd over groups of those means,
    and mean within-group sd over draws)."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for section, index in (("curve", None), ("active", None)):
        del index
        methods = sorted({m for r in results.values() for m in r[section]})
        for method in methods:
            sizes = sorted({int(s) for r in results.values() for s in r[section].get(method, {})})
            for size in sizes:
                per_group = []
                within = []
                aucs = []
                for r in results.values():
                    values = r[section].get(method, {}).get(str(size))
                    if not values:
                        continue
                    apgrs = [v[0] if isinstance(v, list | tuple) else v for v in values]
                    per_group.append(float(np.mean(apgrs)))
                    within.append(float(np.std(apgrs)))
                    if section == "curve":
                        aucs.append(float(np.mean([v[1] for v in values])))
                key = f"{section}:{method}"
                table.setdefault(key, {})[str(size)] = {
                    "apgr": float(np.mean(per_group)),
                    "apgr_sd_groups": float(np.std(per_group)),
                    "apgr_sd_draws": float(np.mean(within)),
                    "auc": float(np.mean(aucs)) if aucs else float("nan"),
                    "groups": len(per_group),
                }
    return table


def print_table(table: dict[str, dict[str, dict[str, float]]], sizes: tuple[int, ...], section: str) -> None:
    header = f"{'method':<14}" + "".join(f"{s:>22}" for s in sizes)
    print(header)
    for key, by_size in table.items():
        if not key.startswith(section + ":"):
            continue
        cells = []
        for size in sizes:
            cell = by_size.get(str(size))
            text = f"{cell['apgr']:.3f}±{cell['apgr_sd_draws']:.3f} ({cell['auc']:.3f})" if cell else "-"
            cells.append(f"{text:>22}")
        print(f"{key.split(':', 1)[1]:<14}" + "".join(cells))


def markdown(table: dict[str, dict[str, dict[str, float]]], sizes: tuple[int, ...], section: str) -> str:
    """The README table: mean APGR over groups, ± mean sd over draws, [sd over groups], AUC."""
    lines = ["| method | " + " | ".join(str(s) for s in sizes) + " |", "| --- |" + " ---: |" * len(sizes)]
    for key, by_size in table.items():
        if key.startswith(section + ":"):
            cells = [
                f"{c['apgr']:.3f} ±{c['apgr_sd_draws']:.3f} [{c['apgr_sd_groups']:.3f}] ({c['auc']:.3f})"
                if (c := by_size.get(str(s)))
                else "-"
                for s in sizes
            ]
            lines.append(f"| {key.split(':', 1)[1]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def choice_counts(results: dict[str, dict]) -> dict[str, dict[str, dict[str, int]]]:  # type: ignore[type-arg]
    """method -> labels -> recipe description -> how often selection chose it (over groups and draws)."""
    counts: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    for r in results.values():
        for method, sizes in r.get("choices", {}).items():
            for size, chosen in sizes.items():
                for description in chosen:
                    counts[method][size][description] += 1
    return json.loads(json.dumps(counts))


def plot(table: dict[str, dict[str, dict[str, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    for key, by_size in table.items():
        section, method = key.split(":", 1)
        axes = left if section == "curve" else right
        sizes = sorted(int(s) for s in by_size)
        axes.errorbar(
            sizes,
            [by_size[str(s)]["apgr"] for s in sizes],
            yerr=[by_size[str(s)]["apgr_sd_draws"] for s in sizes],
            label=method,
            marker="o",
            capsize=2,
        )
    for axes, title in ((left, "retraining recipes"), (right, "active labelling (prior recipe)")):
        axes.axhline(0.5, color="grey", ls="--", lw=0.8)
        axes.set_xscale("log")
        axes.set_xlabel("labels from the new team (prompts)")
        axes.set_ylabel("mean APGR over held-out groups")
        axes.set_title(title)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "routing")
    parser.add_argument("--cache", type=Path, default=default_cache(Recipe().long_text, Recipe().embedder))
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument(
        "--seed", type=int, default=0, help="offset of every draw's seed: another value, independent draws"
    )
    parser.add_argument("--mixed-base", type=int, default=4000, help="base prompts sampled for `mixed`")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--png", type=Path)
    parser.add_argument("--smoke", action="store_true", help="two groups, few prompts, one draw")
    parser.add_argument("--groups", nargs="*", help="only these held-out groups (default: all)")
    parser.add_argument("--methods", nargs="*", default=METHODS, choices=METHODS, help="default: all")
    parser.add_argument("--no-active", dest="active", action="store_false", help="skip active labelling")
    parser.add_argument(
        "--merge", type=Path, nargs="*", help="summarise these --json files' groups instead of running"
    )
    args = parser.parse_args()
    args.sizes, args.active_sizes = SIZES, ACTIVE_SIZES
    if args.merge:
        results = {g: r for path in args.merge for g, r in json.loads(path.read_text())["groups"].items()}
        return report(results, args)
    examples = read_examples([args.data / "train.jsonl"])
    if args.smoke:
        examples = smoke_subset(examples)
        args.draws, args.sizes, args.active_sizes, args.mixed_base = 1, (50,), (50,), 300
    texts = sorted({e.text for e in examples})
    recipe = Recipe()
    embedder = Embedder.from_path(
        EMBEDDER, variant=VARIANT_FILES[recipe.embedder], long_text=recipe.long_text
    )
    started = time.perf_counter()
    vectors = embed_cached(embedder, texts, None if args.smoke else args.cache)
    print(f"embedded {len(texts)} prompts in {time.perf_counter() - started:.0f}s", flush=True)
    data = Data(examples, vectors, texts)
    groups = sorted({group_of(e.source) for e in examples})
    results = {}
    for number, group in enumerate(groups):
        if args.groups and group not in args.groups:
            continue
        started = time.perf_counter()
        results[group] = run_group(group, data, args, rng_seed=100 * number + args.seed)
        print(f"{group}: {time.perf_counter() - started:.0f}s", flush=True)
        if args.json:  # after each group, so that a long run keeps what it has
            args.json.write_text(json.dumps({"groups": results}, indent=1) + "\n")
    return report(results, args)


def report(results: dict[str, dict], args: argparse.Namespace) -> int:  # type: ignore[type-arg]
    """Print the tables; write the JSON (summary + groups) and the PNG when asked."""
    table = summarise(results)
    print("APGR mean over groups ± sd over draws (AUC); 0.5 = random")
    print_table(table, args.sizes, "curve")
    print("\nactive labelling: APGR by strategy and labels")
    print_table(table, args.active_sizes, "active")
    print("\n" + markdown(table, args.sizes, "curve") + "\n\n" + markdown(table, args.active_sizes, "active"))
    choices = choice_counts(results)
    for method, sizes in choices.items():
        for size, counted in sorted(sizes.items(), key=lambda kv: int(kv[0])):
            top = sorted(counted.items(), key=lambda kv: -kv[1])[:3]
            print(f"{method} at {size}: " + "; ".join(f"{d} x{n}" for d, n in top))
    if args.json:
        summary = {"summary": table, "choices": choices, "groups": results}
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    png = args.png or (args.json.with_suffix(".png") if args.json else None)
    if png is not None:
        plot(table, png)
    return 0


def smoke_subset(examples: list[Example]) -> list[Example]:
    """Two small groups, each the other's base data: enough to run every method once, in seconds."""
    keep = {"mbpp": 120, "winogrande": 120}
    chosen: dict[str, set[str]] = defaultdict(set)
    for e in examples:
        group = group_of(e.source)
        if group in keep and len(chosen[group]) < keep[group]:
            chosen[group].add(e.text)
    return [e for e in examples if e.text in chosen[group_of(e.source)]]


if __name__ == "__main__":
    import scipy.optimize  # noqa: F401  (loads scipy's own OpenBLAS, so that the limit below reaches it)
    import sklearn.linear_model  # noqa: F401
    from threadpoolctl import threadpool_limits

    # One BLAS/OpenMP thread: the fits are small, and two processes (--groups) each spinning two threads on
    # two cores ran the same groups 10-15x slower (mbpp 454 s against 29 s, 2026-12-04).
    with threadpool_limits(1):
        raise SystemExit(main())
