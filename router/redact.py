"""Redaction: personal data out of stored prompts, responses and answers (`log.redact`); secrets out of logs.

Built-in patterns, each replaced by a bracketed tag:
- `email`: addresses like name@example.com -> [EMAIL];
- `phone`: international (+country code) or 10-15 digit numbers with common separators -> [PHONE];
- `card`: 13-19 digit card numbers that pass the Luhn check -> [CARD];
- `iban`: IBANs (country, check digits, up to 30 alphanumerics, spaces allowed) that pass mod-97 -> [IBAN].
Custom `patterns` are Python regular expressions, replaced by [REDACTED]. Card and IBAN candidates that
fail their checksum are left as they are, so order numbers and the like survive.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, field_validator

Builtin = Literal["email", "phone", "card", "iban"]
MASK = "***"

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){2,4}(?!\w)"
)
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")


class RedactSettings(BaseModel):
    """`log.redact`: what to mask in prompts and responses before they are stored (nothing by default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    builtin: tuple[Builtin, ...] = ()  # e.g. [email, phone, card, iban]
    patterns: tuple[str, ...] = ()  # custom regular expressions

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from exc
        return patterns

    @property
    def enabled(self) -> bool:
        return bool(self.builtin or self.patterns)


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn checksum (card numbers)."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """True when `text` (spaces allowed) is an IBAN whose check digits pass ISO 7064 mod 97."""
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


class Redactor:
    """Masks the configured patterns in a text; `apply(text)` is pure and thread-safe."""

    def __init__(self, settings: RedactSettings):
        self.steps: list[Callable[[str], str]] = []
        chosen = set(settings.builtin)
        # Checked numbers first: a card number also looks like a phone number.
        if "iban" in chosen:
            self.steps.append(_checked(_IBAN, iban_valid, "[IBAN]"))
        if "card" in chosen:
            self.steps.append(_checked(_CARD, lambda text: luhn_valid(re.sub(r"\D", "", text)), "[CARD]"))
        if "email" in chosen:
            self.steps.append(_substitute(_EMAIL, "[EMAIL]"))
        if "phone" in chosen:
            self.steps.append(_checked(_PHONE, _phone_like, "[PHONE]"))
        for pattern in settings.patterns:
            compiled = re.compile(pattern)
            self.steps.append(_substitute(compiled, "[REDACTED]"))

    def apply(self, text: str) -> str:
        """`text` with every match masked."""
        for step in self.steps:
            text = step(text)
        return text


def redactor_for(settings: RedactSettings) -> Redactor | None:
    """The Redactor for `settings`, or None when they mask nothing."""
    return Redactor(settings) if settings.enabled else None


def _substitute(pattern: re.Pattern[str], tag: str) -> Callable[[str], str]:
    return lambda text: pattern.sub(tag, text)


def _checked(pattern: re.Pattern[str], valid: Callable[[str], bool], tag: str) -> Callable[[str], str]:
    return lambda text: pattern.sub(lambda match: tag if valid(match.group()) else match.group(), text)


def _phone_like(text: str) -> bool:
    return 10 <= len(re.sub(r"\D", "", text)) <= 15


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with each secret (at least 6 characters) and any `Bearer <token>` replaced by ***."""
    for secret in secrets:
        if len(secret) >= 6:
            text = text.replace(secret, MASK)
    return _BEARER.sub(lambda match: match.group(1) + MASK, text)


class SecretFilter(logging.Filter):
    """A logging filter masking known secrets (and bearer tokens) in every record it sees."""

    def __init__(self, secrets: Iterable[str]):
        super().__init__()
        self.secrets = tuple(secret for secret in secrets if len(secret) >= 6)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = scrub(message, self.secrets)
        if masked != message or record.exc_info:
            if record.exc_info:
                trace = logging.Formatter().formatException(record.exc_info)
                masked = scrub(f"{masked}\n{trace}", self.secrets)
                record.exc_info = None
                record.exc_text = None
            record.msg, record.args = masked, None
        return True


def install_secret_filter(secrets: Iterable[str]) -> SecretFilter:
    """Attach a SecretFilter to every handler of the root logger (handler filters see propagated records)."""
    secret_filter = SecretFilter(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(secret_filter)
    return secret_filter


R = TypeVar("R")


# The free-text fields of what the request log stores: LogRecord, ShadowAnswer (a shadow or teacher answer)
# and Label (a feedback comment, a judge's reason). Errors too: a provider's message may quote the prompt.
TEXT_FIELDS = ("prompt", "response", "small_response", "comment", "judge_reason", "error", "fallback_reason")


def redacted(record: R, redactor: Redactor | None) -> R:
    """A copy of a frozen dataclass record with its free text (TEXT_FIELDS, when set) masked.

    `redactor` None (redaction off) returns `record` itself."""
    if redactor is None:
        return record
    changes = {
        name: redactor.apply(value)
        for name in TEXT_FIELDS
        if isinstance(value := getattr(record, name, None), str)
    }
    replaced: Any = dataclasses.replace(record, **changes) if changes else record  # type: ignore[type-var]
    return replaced
