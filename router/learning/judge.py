"""The teacher: a large model judges, in strict JSON, whether the small tier's answer is as good as the large
tier's, and `Teacher` turns that into `small_ok` labels in the request log within a budget."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from router.backends.litellm import Backend, BackendCall
from router.config import RouterConfig, TierSettings
from router.domain import GenerationParams, Message, Tier
from router.errors import BackendError, RouterError
from router.learning.feedback import answered_tier
from router.redact import redacted, redactor_for
from router.requestlog import Label, LogRecord, RequestLogStore, ShadowAnswer

log = logging.getLogger(__name__)

SOURCE = "judge"
JUDGE_SYSTEM = (
    "You are a strict grader. You get a user's prompt and two answers to it. Answer A comes from a small, "
    "cheap model; answer B comes from a large model and is the reference. Decide whether answer A is as "
    "good as answer B for the user: as correct, as complete as the prompt needs, and following the same "
    "instructions. Reply with exactly one JSON object and nothing else, in this form:\n"
    '{"small_ok": true, "reason": "one short sentence"}\n'
    "small_ok is true when answer A is as good as answer B, false otherwise."
)
JUDGE_RETRY = (
    "That reply was not in the required format. Reply with exactly one JSON object and nothing else: "
    '{"small_ok": true or false, "reason": "one short sentence"}'
)
JUDGE_PARAMS = GenerationParams(max_tokens=300, temperature=0.0)
VERDICT_KEYS = frozenset({"small_ok", "reason"})


class MalformedVerdictError(RouterError):
    """The judge's reply is not exactly {"small_ok": bool, "reason": str}."""


@dataclass(frozen=True)
class Verdict:
    """The judge's decision: is the small tier's answer as good as the large tier's?"""

    small_ok: bool
    reason: str


def parse_verdict(text: str) -> Verdict:
    """Parse a reply that must be one JSON object with exactly `small_ok` (bool) and `reason` (str)."""
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise MalformedVerdictError(f"not JSON: {text[:120]!r}") from exc
    if not isinstance(payload, dict) or set(payload) != VERDICT_KEYS:
        raise MalformedVerdictError(f"expected exactly the keys small_ok and reason: {text[:120]!r}")
    if not isinstance(payload["small_ok"], bool) or not isinstance(payload["reason"], str):
        raise MalformedVerdictError(f"small_ok must be true/false and reason a string: {text[:120]!r}")
    return Verdict(payload["small_ok"], payload["reason"].strip())


def judge_prompt(prompt: str, small_answer: str, large_answer: str) -> str:
    """The user message the judge gets."""
    return (
        f"## Prompt\n{prompt}\n\n## Answer A (small model)\n{small_answer}\n\n"
        f"## Answer B (large model, reference)\n{large_answer}\n"
    )


@dataclass
class LabelRun:
    """What a `rightsize label` run did; costs in USD (answers generated + judge calls)."""

    candidates: int = 0
    labelled: int = 0
    small_ok: int = 0
    malformed: int = 0
    failed: int = 0
    spent_usd: float = 0.0
    judge_usd: float = 0.0
    stopped_at_budget: bool = False


class Teacher:
    """Labels logged requests: both tiers' answers (stored ones first), then the judge's verdict."""

    def __init__(
        self,
        config: RouterConfig,
        store: RequestLogStore,
        backend: Backend,
        *,
        budget_usd: float | None = None,
        say: Callable[[str], None] = log.info,
    ) -> None:
        self.config = config
        self.store = store
        self.backend = backend
        self.budget_usd = budget_usd
        self.say = say
        self.judge: TierSettings = config.learning.judge or config.tiers.large
        # Answers generated here and the judge's reasons are stored masked, as the request log is.
        self.redactor = redactor_for(config.log.redact)

    async def label(self, records: Iterable[LogRecord], candidates: int) -> LabelRun:
        """Label `records` (`candidates` of them) in order; stops before a record that could take the spend
        over the budget, so a lazy order is computed only as far as the budget reaches."""
        run = LabelRun(candidates=candidates)
        most_per_record = 0.0
        for record in records:
            if self.budget_usd is not None and run.spent_usd + most_per_record > self.budget_usd:
                run.stopped_at_budget = True
                self.say(f"budget reached: spent ${run.spent_usd:.6f} of ${self.budget_usd:.6f}; stopping")
                break
            before = run.spent_usd
            await self._label_one(record, run)
            most_per_record = max(most_per_record, run.spent_usd - before)
        return run

    async def _label_one(self, record: LogRecord, run: LabelRun) -> None:
        assert record.prompt is not None
        answers = {answer.tier: answer for answer in self.store.answers(record.request_id)}
        try:
            small = await self._answer("small", record, answers, run)
            large = await self._answer("large", record, answers, run)
            verdict, cost = await self._verdict(record.prompt, small, large, run)
        except BackendError as exc:
            run.failed += 1
            self.say(f"{record.request_id}: skipped: {exc}")
            return
        if verdict is None:
            run.malformed += 1
            self.say(f"{record.request_id}: skipped: the judge's verdict was malformed twice")
            return
        label = Label(
            small_ok=int(verdict.small_ok), source=SOURCE, rating=record.feedback_rating,
            score=record.feedback_score, comment=record.feedback_comment, judge_model=self.judge.model,
            judge_cost_usd=cost, judge_reason=verdict.reason,
        )  # fmt: skip
        if self.store.set_label(record.request_id, redacted(label, self.redactor)):
            run.labelled += 1
            run.small_ok += int(verdict.small_ok)

    async def _answer(
        self, tier: Tier, record: LogRecord, answers: dict[str, ShadowAnswer], run: LabelRun
    ) -> str:
        """The tier's answer: stored (shadow or an earlier run), logged (a cascade-verified call keeps its
        small answer: the judge then confirms or refutes the cascade's verdict without generating anything
        but its own reply), or generated now and stored."""
        stored = answers.get(tier)
        if stored is not None and stored.response is not None:
            return stored.response
        if tier == "small" and record.small_response is not None:
            return record.small_response  # the cascade kept the small answer it verified (escalated or not)
        if record.response is not None and answered_tier(record) == tier:
            return record.response
        assert record.prompt is not None
        settings = self.config.tiers.get(tier)
        started = time.perf_counter()
        call = BackendCall(tier, settings, (Message("user", record.prompt),), GenerationParams())
        generation = await self.backend.complete(call)
        run.spent_usd += generation.cost_usd
        answer = redacted(ShadowAnswer(
            record.request_id, tier, generation.model, datetime.now(UTC), response=generation.text,
            prompt_tokens=generation.usage.prompt_tokens,
            completion_tokens=generation.usage.completion_tokens, cost_usd=generation.cost_usd,
            total_ms=(time.perf_counter() - started) * 1000,
        ), self.redactor)  # fmt: skip
        self.store.add_answer(answer)
        return answer.response or ""

    async def _verdict(
        self, prompt: str, small: str, large: str, run: LabelRun
    ) -> tuple[Verdict | None, float]:
        """The judge's verdict, asking once more after a malformed reply; (None, cost) after two."""
        messages = [Message("system", JUDGE_SYSTEM), Message("user", judge_prompt(prompt, small, large))]
        cost = 0.0
        for attempt in range(2):
            call = BackendCall("large", self.judge, tuple(messages), JUDGE_PARAMS)
            generation = await self.backend.complete(call)
            cost += generation.cost_usd
            run.spent_usd += generation.cost_usd
            run.judge_usd += generation.cost_usd
            try:
                return parse_verdict(generation.text), cost
            except MalformedVerdictError as exc:
                log.info("malformed verdict (attempt %d): %s", attempt + 1, exc)
                messages += [Message("assistant", generation.text), Message("user", JUDGE_RETRY)]
        return None, cost


def labelling_order(
    candidates: Sequence[LogRecord],
    strategy: str,
    labelled_prompts: Sequence[str],
    embed: Callable[[list[str]], Any],
    seed: int = 0,
    clusters: int | None = None,
) -> Iterator[LogRecord]:
    """`candidates` in the order the judge should see them (classifier.active): `uncertainty` = logged score
    closest to its threshold first (records without both last); `diverse` = farthest-first over the
    embedding space, away from the prompts already labelled; `typical` = the most typical prompt of each of
    the largest k-means clusters not yet labelled (`clusters` of them, e.g. the --sample size; default 100),
    then farthest-first; `random` = a seeded shuffle. `embed` maps texts to L2-normalised embeddings (only
    `diverse` and `typical` call it). Lazy where it matters: a farthest-first pick costs a pass over the
    candidates, so a caller that stops at its sample or budget pays for the picks it takes only."""
    import random

    import numpy as np

    from classifier.active import diverse_picks, typical_picks, uncertainty_order

    if strategy == "random":
        shuffled = list(candidates)
        random.Random(seed).shuffle(shuffled)
        return iter(shuffled)
    if strategy == "uncertainty":
        scored = [r for r in candidates if r.score is not None and r.threshold is not None]
        rest = [r for r in candidates if r.score is None or r.threshold is None]
        order = uncertainty_order(
            np.array([r.score for r in scored], dtype=float),
            np.array([r.threshold for r in scored], dtype=float),
        )
        return iter([scored[int(i)] for i in order] + rest)
    if strategy in ("diverse", "typical"):
        prompts = [str(r.prompt) for r in candidates]
        if not prompts:
            return iter(())
        vectors = embed(prompts + list(labelled_prompts))
        pool, labelled = vectors[: len(prompts)], vectors[len(prompts) :]
        if strategy == "diverse":
            picks = diverse_picks(pool, labelled)
        else:
            picks = typical_picks(pool, labelled, clusters=clusters, seed=seed)
        return (candidates[i] for i in picks)
    raise ValueError(f"unknown labelling strategy {strategy!r}")


def unlabelled(records: Sequence[LogRecord]) -> list[LogRecord]:
    """The records a judge can label: answered or routed without error, prompt kept, no small_ok yet."""
    return [
        r for r in records
        if r.small_ok is None and r.error is None and r.prompt is not None and r.tier is not None
    ]  # fmt: skip
