"""Fine-tuning data from the log: approved large-tier answers as chat training pairs, schema-checked per line.

Formats:
- `openai-chat` (OpenAI chat fine-tuning):
  `{"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]}`;
- `sharegpt` (Axolotl, LLaMA-Factory, ...):
  `{"conversations": [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}]}`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, TextIO

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from router.fewshot.sources import ApprovedPair

Format = Literal["openai-chat", "sharegpt"]
FORMATS: tuple[Format, ...] = ("openai-chat", "sharegpt")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChatMessage(_Strict):
    """One OpenAI chat message with non-blank content."""

    role: Literal["system", "user", "assistant"]
    content: str = Field(min_length=1)

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("content is blank")
        return value


class OpenAIChatLine(_Strict):
    """One line of OpenAI chat fine-tuning data: user/assistant turns ending with the assistant."""

    messages: tuple[ChatMessage, ...] = Field(min_length=2)

    @model_validator(mode="after")
    def _ends_with_the_answer(self) -> OpenAIChatLine:
        if self.messages[-1].role != "assistant" or not any(m.role == "user" for m in self.messages):
            raise ValueError("a training line has a user turn and ends with the assistant's answer")
        return self


class ShareGPTTurn(_Strict):
    """One ShareGPT turn."""

    from_: Literal["system", "human", "gpt"] = Field(alias="from")
    value: str = Field(min_length=1)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ShareGPTLine(_Strict):
    """One line of ShareGPT data: human/gpt turns ending with gpt."""

    conversations: tuple[ShareGPTTurn, ...] = Field(min_length=2)

    @model_validator(mode="after")
    def _ends_with_the_answer(self) -> ShareGPTLine:
        if self.conversations[-1].from_ != "gpt" or not any(t.from_ == "human" for t in self.conversations):
            raise ValueError("a training line has a human turn and ends with the gpt answer")
        return self


SCHEMAS: dict[Format, type[_Strict]] = {"openai-chat": OpenAIChatLine, "sharegpt": ShareGPTLine}


def training_line(pair: ApprovedPair, fmt: Format) -> dict[str, object]:
    """The JSON object for one pair in `fmt`, validated against that format's schema."""
    if fmt == "openai-chat":
        raw: dict[str, object] = {
            "messages": [
                {"role": "user", "content": pair.prompt},
                {"role": "assistant", "content": pair.answer},
            ]
        }
    else:
        raw = {
            "conversations": [{"from": "human", "value": pair.prompt}, {"from": "gpt", "value": pair.answer}]
        }
    SCHEMAS[fmt].model_validate(raw)
    return raw


def validate_line(text: str, fmt: Format) -> None:
    """Raise ValueError (pydantic's ValidationError) when one JSONL line does not fit `fmt`."""
    SCHEMAS[fmt].model_validate_json(text)


@dataclass
class ExportRun:
    """What `export-finetune` wrote: lines, and pairs skipped as duplicates or schema-invalid."""

    written: int = 0
    duplicates: int = 0
    invalid: int = 0
    tenants: dict[str, int] = field(default_factory=dict)  # lines per tenant ("-": none)


def write_training_data(pairs: Iterable[ApprovedPair], fmt: Format, out: TextIO) -> ExportRun:
    """Write one validated line per distinct (prompt, answer); the first occurrence of a prompt wins."""
    run = ExportRun()
    seen: set[tuple[str, str]] = set()
    prompts: set[str] = set()
    for pair in pairs:
        key = (pair.prompt, pair.answer)
        if key in seen or pair.prompt in prompts:
            run.duplicates += 1
            continue
        seen.add(key)
        try:
            line = training_line(pair, fmt)
        except ValueError:
            run.invalid += 1
            continue
        prompts.add(pair.prompt)
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
        run.written += 1
        tenant = pair.tenant or "-"
        run.tenants[tenant] = run.tenants.get(tenant, 0) + 1
    return run
