"""Prometheus metrics of one server, in its own CollectorRegistry (never the global one)."""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Scoring takes ~1-30 ms; a completion from 50 ms to minutes.
_CLASSIFY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 1.0)
_COMPLETE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class RouterMetrics:
    """All the router's metrics; `serve_http()` exposes them on /metrics."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "rightsize_requests", "RPCs answered, by method and status code", ["method", "code"], registry=r
        )
        self.decisions = Counter(
            "rightsize_decisions", "Routing decisions by tier and rule", ["tier", "rule"], registry=r
        )
        self.classify_seconds = Histogram(
            "rightsize_classifier_seconds",
            "Classifier latency per request",
            buckets=_CLASSIFY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "rightsize_classifier_batch_size",
            "Texts per onnxruntime run",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=r,
        )
        self.completion_seconds = Histogram(
            "rightsize_completion_seconds",
            "Backend completion latency by tier that answered",
            ["tier"],
            buckets=_COMPLETE_BUCKETS,
            registry=r,
        )
        self.speculative = Counter(
            "rightsize_speculative_small_calls",
            "Small-tier calls started while scoring, by outcome (used, cancelled)",
            ["outcome"],
            registry=r,
        )
        self.fallbacks = Counter(
            "rightsize_fallbacks", "Small-tier failures retried on large, by kind", ["kind"], registry=r
        )
        self.backend_errors = Counter(
            "rightsize_backend_errors",
            "Failed model calls by tier and error kind",
            ["tier", "kind"],
            registry=r,
        )
        self.tokens = Counter(
            "rightsize_tokens",
            "Tokens by tier and direction (prompt, completion)",
            ["tier", "direction"],
            registry=r,
        )
        self.cost = Counter("rightsize_cost_usd", "Cost of completions in USD by tier", ["tier"], registry=r)
        self.ready = Gauge(
            "rightsize_ready",
            "1 when the component (classifier, completion) is ready",
            ["component"],
            registry=r,
        )
        self.local_model_up = Gauge(
            "rightsize_local_model_up",
            "1 while the tier's embedded llama.cpp child answers",
            ["tier"],
            registry=r,
        )
        self.local_model_restarts = Counter(
            "rightsize_local_model_restarts",
            "Restarts of the tier's embedded llama.cpp child",
            ["tier"],
            registry=r,
        )
        self.cascade_verdicts = Counter(
            "rightsize_cascade_verdicts",
            "Cascade verifier outcomes (pass, fail, skipped, error) by verifier (form, confidence, head)",
            ["verifier", "outcome"],
            registry=r,
        )
        self.cascade_answers = Counter(
            "rightsize_cascade_answers",
            "Cascade-mode Complete answers by outcome (small, escalated, unverified, direct_large)",
            ["outcome"],
            registry=r,
        )
        self.cascade_escalation_seconds = Histogram(
            "rightsize_cascade_escalation_added_seconds",
            "Latency an escalation adds: from the small answer to the large answer",
            buckets=_COMPLETE_BUCKETS,
            registry=r,
        )
        self.cascade_verify_seconds = Histogram(
            "rightsize_cascade_verify_seconds",
            "The verifiers' own time per small answer",
            buckets=_CLASSIFY_BUCKETS,
            registry=r,
        )
        self.cascade_logprobs = Gauge(
            "rightsize_cascade_logprobs_available",
            "1 when the small tier's last cascade answer came with token log-probabilities, 0 when not",
            registry=r,
        )
        self.cascade_logprobs_missing = Counter(
            "rightsize_cascade_logprobs_missing",
            "Cascade answers whose small tier returned no log-probabilities (confidence verifier skipped)",
            registry=r,
        )
        self._http: Any = None
        self._http_thread: threading.Thread | None = None

    def serve_http(self, port: int, address: str = "127.0.0.1") -> int:
        """Expose /metrics on a background thread; returns the bound port (port 0: any free port)."""
        from prometheus_client import start_http_server

        self._http, self._http_thread = start_http_server(port, addr=address, registry=self.registry)
        return int(self._http.server_port)

    def close(self) -> None:
        """Stop the /metrics endpoint, if it runs, without waiting for it (its loop polls every 0.5 s)."""
        if self._http is not None:
            http, self._http = self._http, None

            def stop() -> None:
                http.shutdown()
                http.server_close()

            threading.Thread(target=stop, name="metrics-http-stop", daemon=True).start()
