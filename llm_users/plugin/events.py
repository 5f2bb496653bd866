"""The plugin's own events, declared once, typed and documented, as Locust's ``Events`` are.

They live on the environment's ``events`` beside Locust's own, so a locustfile listens to
them as to any Locust event::

    @events.init.add_listener
    def on_init(environment, **_kw):
        environment.events.llm_request.add_listener(on_llm_request)
"""

from __future__ import annotations

from locust.event import EventHook, Events

__all__ = ["LLMEvents"]


class LLMEvents:
    """The plugin's hooks, on ``environment.events`` under these names (``llm_request``, ...).

    Each fires once per finished request that counts (warm-up requests do not), after
    Locust's own ``request`` event for it, in the user's greenlet: a listener must be quick.
    """

    llm_request: EventHook
    """Fired for every finished request, succeeded or failed.

    :param result: its figures, a :class:`~llm_users.measure.per_request.RequestResult`
    """

    llm_first_token: EventHook
    """Fired for a successful streamed request that had a first token.

    :param ttft_ms: its time to first token, in ms
    :param result: its figures, a :class:`~llm_users.measure.per_request.RequestResult`
    """

    llm_follow_tokens: EventHook
    """Fired right after ``llm_first_token``, for the tokens after the first.

    :param follow_tokens: how many tokens followed the first (None if unknown)
    :param follow_latency_ms: from the first token to the last, in ms (None with one token)
    :param result: its figures, a :class:`~llm_users.measure.per_request.RequestResult`
    """

    def __init__(self, events: Events) -> None:
        """The hooks on ``events`` (a Locust environment's), added there if not yet there:
        a second plugin on the same environment fires the same hooks."""
        for name in LLMEvents.__annotations__:
            hook = getattr(events, name, None)
            if not isinstance(hook, EventHook):
                hook = EventHook()
                setattr(events, name, hook)
            setattr(self, name, hook)
