"""`LogSettings`: the validated `log:` section of the config, embeddable in the service's settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from router.redact import RedactSettings

DEFAULT_URL = "sqlite:///var/rightsize/requests.db"


class LogSettings(BaseModel):
    """How and where requests are logged.

    Relative paths (in a `sqlite:///` URL and in `spill_dir`) are made absolute by `router.config.load_config`
    against the config file's directory (the working directory for the shipped default config); use
    `sqlite:////abs/path.db` (four slashes) for an absolute one.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(
        default=DEFAULT_URL, description="sqlite:///PATH (WAL, the embedded default) or postgresql://..."
    )
    store_prompts: bool = Field(
        default=True, description="keep the prompt text; when false only its sha256 is kept"
    )
    store_responses: bool = Field(default=False, description="keep the response text")
    store_cascade_answers: bool = Field(
        default=True,
        description="keep both answers of a call the cascade verified (the labels need them), even when"
        " store_responses is false",
    )
    spill_dir: Path = Field(default=Path("var/rightsize/spill"), description="local JSONL spill files")
    queue_size: int = Field(default=10_000, ge=1, description="records held in memory before spilling")
    batch_size: int = Field(default=200, ge=1, description="records per insert")
    flush_interval_ms: int = Field(default=200, ge=1, description="longest a record waits in memory, in ms")
    sync: Literal["batch", "strict"] = Field(
        default="batch",
        description="strict: submit() returns only once the record is in the store or fsync'd spill",
    )
    timeout_ms: int = Field(
        default=5_000, ge=100, description="connect and statement timeout of the store, in ms"
    )
    redact: RedactSettings = Field(
        default=RedactSettings(), description="patterns masked in prompts and responses before storing"
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        from router.requestlog.urls import parse_url

        parse_url(url)  # raises InvalidURLError (a ValueError) for anything else
        return url
