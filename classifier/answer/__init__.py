"""Verifying a small-tier answer: form checks, token-confidence features and the answer-quality head.

Pure logic and ONNX inference only: the router owns the JSON Schema check, thresholds and escalation.
"""

from classifier.answer.confidence import (
    ConfidenceFeatures,
    FocusedConfidence,
    TokenLogprob,
    confidence_features,
    focused_confidence,
    parse_openai_logprobs,
)
from classifier.answer.consistency import agreement_score, answer_agreement
from classifier.answer.form import FormConfig, FormVerdict, form_verdict, is_refusal, repetition_score
from classifier.answer.inputs import ANSWER_FEATURE_NAMES, ANSWER_FEATURES_VERSION, AnswerInput
from classifier.answer.scorer import AnswerScorer
from classifier.answer.training import AnswerExample, AnswerRecipe, train_answer_head

__all__ = [
    "ANSWER_FEATURES_VERSION",
    "ANSWER_FEATURE_NAMES",
    "AnswerExample",
    "AnswerInput",
    "AnswerRecipe",
    "AnswerScorer",
    "ConfidenceFeatures",
    "FocusedConfidence",
    "FormConfig",
    "FormVerdict",
    "TokenLogprob",
    "agreement_score",
    "answer_agreement",
    "confidence_features",
    "focused_confidence",
    "form_verdict",
    "is_refusal",
    "parse_openai_logprobs",
    "repetition_score",
    "train_answer_head",
]
