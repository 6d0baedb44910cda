"""The breaker's state machine on a fake clock."""

from __future__ import annotations

from router.backends.breaker import Breaker
from router.config.settings import BreakerSettings


def test_opens_after_n_failures_probes_once_when_half_open_and_closes_on_success() -> None:
    now = [0.0]
    changes: list[str] = []
    settings = BreakerSettings(failures=3, open_s=10)
    breaker = Breaker("small", settings, lambda _tier, state: changes.append(state), clock=lambda: now[0])
    for _ in range(2):
        assert breaker.allow()
        breaker.failed("connection")
    breaker.failed("bad_request")  # the request's fault: not counted
    assert breaker.state == "closed"
    breaker.failed("timeout")
    assert breaker.state == "open" and not breaker.allow() and breaker.retry_in_s() == 10
    now[0] = 10.0
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.failed("server")
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 20.0
    assert breaker.allow()
    breaker.succeeded()
    assert breaker.state == "closed" and breaker.allow()
    assert changes == ["open", "half_open", "open", "half_open", "closed"]


def test_a_retry_after_opens_the_circuit_at_once_for_that_long() -> None:
    now = [0.0]
    breaker = Breaker("large", BreakerSettings(failures=5, open_s=30), clock=lambda: now[0])
    breaker.failed("rate_limit", retry_after_s=2.5)
    assert breaker.state == "open" and breaker.retry_in_s() == 2.5
    now[0] = 2.5
    assert breaker.allow() and breaker.state == "half_open"
