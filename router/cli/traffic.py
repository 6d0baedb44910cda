"""The traffic `calibrate` and `simulate` work on: the request log named by a config file, or a JSONL file."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from router.cli import CliError

if TYPE_CHECKING:
    from router.config import RouterConfig
    from router.requestlog import LogRecord
    from router.routing.simulation import CascadeRow, TrafficRow


def add_source_arguments(parser: argparse.ArgumentParser, *, input_help: str) -> None:
    """--from-logs [--since] | --input FILE, plus --config and --model."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--from-logs", action="store_true", help="use the scores logged by the server")
    source.add_argument("--input", type=Path, metavar="FILE", help=input_help)
    parser.add_argument(
        "--since",
        metavar="WHEN",
        help="with --from-logs: requests since an ISO date/time or an age (24h, 7d); "
        "default: routing.target_window of the config",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="the server's config file: the request log, tiers and models it names",
    )
    parser.add_argument(
        "--model",
        type=Path,
        metavar="DIR",
        help="with --input: the model to score with (default: the model the --config file "
        "serves; without --config the shipped model, as `rightsize score`)",
    )


def input_model_dir(model: Path | None, config_path: Path | None) -> Path:
    """The model for `--input` rows: --model, else the model --config serves, else the shipped one."""
    if model is not None:
        return model
    if config_path is None:
        from classifier.paths import DEFAULT_MODEL_DIR

        return DEFAULT_MODEL_DIR
    from router.config import load_config

    return served_model_dir(load_config(config_path))


def served_model_dir(config: RouterConfig) -> Path:
    """The model directory the server serves: the `models.dir/current` pointer, else `models.active`."""
    from router.model_registry import ModelRegistry

    return ModelRegistry(config.models.root, config.models.active).current_path()


def logged_records(config: RouterConfig, config_path: Path | None, since: str | None) -> Iterator[LogRecord]:
    """Logged records since `--since` (default: the target window's start), oldest first."""
    from router.cli.log_commands import parse_since
    from router.requestlog import RequestLogError, open_store, parse_url
    from router.routing.target_share import window_start

    settings = config.log
    url = parse_url(settings.url)
    if url.engine == "sqlite" and not url.path.is_file():
        raise CliError(f"no request log at {url.path} (log.url in {config_path or 'the default config'})")
    start = parse_since(since) if since else window_start(config.routing.target_window)
    store = open_store(settings.url, timeout_ms=settings.timeout_ms)
    try:
        yield from store.iter_records(since=start)
    except RequestLogError as exc:
        raise CliError(str(exc)) from exc
    finally:
        store.close()


def scored_records(
    config: RouterConfig, config_path: Path | None, since: str | None, metadata: Mapping[str, str]
) -> list[LogRecord]:
    """Logged records with a score, scored by the served classifier version, carrying `metadata`.

    Only the last `routing.target_window.max_requests` are kept when `since` is not given.
    """
    from collections import deque

    from classifier.artifacts import read_manifest
    from classifier.errors import ClassifierError

    try:
        version: str | None = read_manifest(served_model_dir(config)).version
    except ClassifierError:
        version = None  # the served model is unreadable here: use every version's scores
    limit = None if since else config.routing.target_window.max_requests
    kept: deque[LogRecord] = deque(maxlen=limit)
    other_versions: set[str] = set()
    for record in logged_records(config, config_path, since):
        if record.score is None:
            continue
        if any(record.metadata.get(key) != value for key, value in metadata.items()):
            continue
        if version is not None and record.classifier_version != version:
            other_versions.add(record.classifier_version or "?")
            continue
        kept.append(record)
    if not kept:
        hint = ""
        if other_versions:
            others = ", ".join(sorted(other_versions))
            hint = (
                f"; logged scores are from classifier {others}, not the served {version}: "
                "use --input to score prompts with it"
            )
        where = " with " + " ".join(f"{k}={v}" for k, v in metadata.items()) if metadata else ""
        raise CliError(f"no scored requests{where} in the request log window{hint}")
    return list(kept)


def input_rows(path: Path, model: Callable[[], Path], social_turns: bool = True) -> list[TrafficRow]:
    """Rows of a JSONL file: `score` if present, else scored with the model `model()` names; usage, labels;
    with `social_turns`, a `prompt` that is a social turn (classifier.social) is marked so."""
    from classifier.data import iter_json_lines, text_of
    from classifier.social import is_social_turn
    from router.routing.simulation import TrafficRow

    lines = list(iter_json_lines(path))
    if not lines:
        raise CliError(f"{path} holds no rows")
    unscored = [
        (index, text_of(obj, f"{path}:{number}"))
        for index, (number, obj) in enumerate(lines)
        if _number(obj, "score") is None
    ]
    scores: dict[int, float] = {}
    if unscored:
        from classifier.scoring import Scorer

        values = Scorer.from_path(model()).score([text for _, text in unscored])
        scores = {index: float(value) for (index, _), value in zip(unscored, values, strict=True)}
    rows = []
    for index, (number, obj) in enumerate(lines):
        label = obj.get("small_ok")
        if label not in (None, 0, 1, True, False):
            raise CliError(f"{path}:{number}: small_ok must be 0, 1 or null, got {label!r}")
        score = _number(obj, "score")
        rows.append(
            TrafficRow(
                score=scores[index] if score is None else score,
                prompt_tokens=_int(obj, "prompt_tokens"),
                completion_tokens=_int(obj, "completion_tokens"),
                small_ok=None if label is None else int(label),
                small_score=_number(obj, "small_score"),
                large_score=_number(obj, "large_score"),
                social=social_turns and isinstance(obj.get("prompt"), str) and is_social_turn(obj["prompt"]),
            )
        )
    return rows


def record_row(record: LogRecord) -> TrafficRow:
    """A logged request as a simulation row (its logged usage; small_ok when labelled)."""
    from router.domain import SOCIAL_RULE
    from router.routing.simulation import TrafficRow

    assert record.score is not None
    return TrafficRow(
        record.score,
        record.prompt_tokens,
        record.completion_tokens,
        record.small_ok,
        social=record.rule == SOCIAL_RULE,
    )


def _number(obj: Mapping[str, Any], key: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CliError(f"`{key}` must be a number, got {value!r}")
    return float(value)


def _int(obj: Mapping[str, Any], key: str) -> int | None:
    value = _number(obj, key)
    return None if value is None else int(value)


def cascade_rows(
    config: RouterConfig, config_path: Path | None, since: str | None, metadata: Mapping[str, str]
) -> list[CascadeRow]:
    """The logged cascade calls (mode `cascade`) as replay rows: each verifier's (outcome, value)."""
    import json

    from router.routing.simulation import CascadeRow

    rows = []
    for record in logged_records(config, config_path, since):
        if record.mode != "cascade" or any(record.metadata.get(k) != v for k, v in metadata.items()):
            continue
        try:
            checks = json.loads(record.verifier_inputs or "{}").get("checks", {})
        except (ValueError, AttributeError):
            checks = {}
        parsed = {
            name: (str(pair[0]), None if pair[1] is None else float(pair[1])) for name, pair in checks.items()
        }
        rows.append(CascadeRow(parsed, record.small_ok))
    if not rows:
        raise CliError("no cascade calls in the request log (routing.mode: cascade) in that window")
    return rows
