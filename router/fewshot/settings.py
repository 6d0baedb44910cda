"""`FewShotSettings`: the validated `tiers.small.few_shot` section (never passed to LiteLLM)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

LOGS = "logs"
OPT_OUT_KEY = "few_shot"  # request metadata few_shot=off skips injection for that request
OPT_OUT_VALUE = "off"
TENANT_KEY = "tenant"  # request metadata naming the tenant whose exemplars may be used
TASK_KEY = "task"  # request metadata naming the task: a task's exemplars go only to requests of that task


class FewShotSettings(BaseModel):
    """Worked examples for the small tier, chosen per request by similarity to the routing embedding.

    `source` is "logs" (approved large-tier answers from the request log), the path of a curated JSONL
    file, or a list of both. `max_tokens` bounds the tokens the exemplars add (estimated, see
    router.fewshot.exemplars.estimate_tokens); `min_similarity` is a cosine similarity in [-1, 1].
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    k: int = Field(default=3, ge=1, le=16)
    min_similarity: float = Field(default=0.55, ge=-1, le=1)
    max_tokens: int = Field(default=800, ge=1)
    source: tuple[str, ...] = (LOGS,)
    min_quality: float = Field(default=0.0, ge=0, le=1)  # exemplars below this quality are not loaded
    refresh_s: float = Field(default=300.0, ge=1)  # how often the log (and a changed file) is re-read
    log_window_days: float = Field(default=30.0, gt=0)  # only log records this recent become exemplars
    max_exemplars: int = Field(default=100_000, ge=1)  # per build: the newest are kept beyond this

    @field_validator("source", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        if isinstance(value, str | Path):
            return (str(value),)
        return value

    @field_validator("source")
    @classmethod
    def _known_sources(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("name at least one source: logs or the path of a JSONL file")
        for item in value:
            if not item.strip():
                raise ValueError("a source is `logs` or the path of a JSONL file, not an empty string")
        if len(set(value)) != len(value):
            raise ValueError("a source is listed twice")
        return value

    @property
    def uses_logs(self) -> bool:
        return LOGS in self.source

    @property
    def files(self) -> tuple[Path, ...]:
        """The curated JSONL files among the sources."""
        return tuple(Path(item) for item in self.source if item != LOGS)

    def resolved(self, base: Path) -> FewShotSettings:
        """A copy with relative file paths made absolute against `base` (the config file's directory)."""
        sources = tuple(
            item if item == LOGS else str((base / Path(item).expanduser()).resolve()) for item in self.source
        )
        return self if sources == self.source else self.model_copy(update={"source": sources})
