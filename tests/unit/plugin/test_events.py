"""The plugin's own events: declared on LLMEvents, attached to a Locust environment's events."""

from __future__ import annotations

from typing import Any

from locust.env import Environment
from locust.event import EventHook

from llm_users.measure.per_request import RequestResult
from llm_users.plugin.events import LLMEvents
from llm_users.plugin.sink import tell_locust

NAMES = ("llm_request", "llm_first_token", "llm_follow_tokens")


def test_each_declared_hook_is_on_the_environment_under_its_name() -> None:
    env = Environment()
    ours = LLMEvents(env.events)
    assert tuple(LLMEvents.__annotations__) == NAMES
    for name in NAMES:
        assert isinstance(getattr(ours, name), EventHook)
        assert getattr(env.events, name) is getattr(ours, name)
        assert (getattr(LLMEvents, name, None) is None) and LLMEvents.__doc__  # declared only
    again = LLMEvents(env.events)  # a second plugin on the same environment: the same hooks
    assert all(getattr(again, n) is getattr(ours, n) for n in NAMES)


def test_a_streamed_request_fires_each_event_once_a_failed_one_only_llm_request() -> None:
    env = Environment()
    ours = LLMEvents(env.events)
    seen: list[tuple[str, dict[str, Any]]] = []
    for name in NAMES:
        getattr(env.events, name).add_listener(lambda n=name, **kw: seen.append((n, kw)))
    ok = RequestResult(endpoint="chat", stream=True, ok=True, start_wall=0.0, e2e_ms=300.0,
                       ttft_ms=100.0, follow_tokens=9, follow_latency_ms=180.0)  # fmt: skip
    tell_locust(env, ours, ok)
    assert seen == [
        ("llm_first_token", {"ttft_ms": 100.0, "result": ok}),
        ("llm_follow_tokens", {"follow_tokens": 9, "follow_latency_ms": 180.0, "result": ok}),
        ("llm_request", {"result": ok}),
    ]
    seen.clear()
    failed = RequestResult(endpoint="chat", stream=True, ok=False, start_wall=0.0, e2e_ms=5.0,
                           failure="http", message="HTTP 500")  # fmt: skip
    tell_locust(env, ours, failed)
    assert seen == [("llm_request", {"result": failed})]
