"""What a client's Feedback means as a label: the rule from a rating to `small_ok`.

* The answer the client rated came from the small tier (decided small, no fallback): GOOD means
  `small_ok = 1`, BAD means `small_ok = 0`.
* It came from the large tier (decided large, a small-tier failure answered by large, or a cascade
  escalation, whose small answer the client never saw): the rating is
  kept (rating, score, comment, for reports and for picking good large-tier answers as few-shot
  exemplars) but it says nothing about whether the small tier would have done, so `small_ok` stays None
  and `rightsize label` may still fill it in with a judge verdict (keeping the rating).
A shadow pair (a small-tier answer also sent to the large tier in the background) is the first case:
the client saw, and rated, the small tier's answer.
"""

from __future__ import annotations

from router.domain import Feedback
from router.requestlog import Label, LogRecord

SOURCE = "feedback"


def answered_tier(record: LogRecord) -> str | None:
    """The tier whose answer the client got: the decided tier, or large after a fallback or an escalation."""
    return record.answered_tier


def feedback_label(record: LogRecord, feedback: Feedback) -> Label:
    """The label that replaces `record`'s current one (the last feedback wins)."""
    small_ok: int | None = None
    if answered_tier(record) == "small":
        small_ok = 1 if feedback.rating == "GOOD" else 0
    return Label(
        small_ok=small_ok,
        source=SOURCE,
        rating=feedback.rating,
        score=feedback.score,
        comment=feedback.comment or None,
    )
