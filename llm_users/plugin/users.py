"""The Locust users: thin; settings come from the plugin, the work is done by the client.

One request in flight per user, back to back (or --think-time apart), so ``-u`` is the
concurrency.
"""

from __future__ import annotations

import os
import random
from typing import Any

import gevent
from locust import User, task

from ..errors import LLMUsersError
from ..wire.client import LLMClient
from ..workload.conversation import Dialogue
from ..workload.prompts import PromptsExhausted, PromptSource
from .accounting import when_idle
from .backoff import Backoff
from .wiring import plugin_of

__all__ = ["BaseLLMUser", "LLMUser"]

_FOREVER = 365 * 24 * 3600.0
PREPARE_WAIT_S = 0.002  # the longest a user defers preparing its next request to others' reads


class BaseLLMUser(User):
    """Subclass to change what is sent: override :meth:`next_request` (prompt, max_tokens)."""

    abstract = True

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.plugin = plugin_of(environment)
        self.sent = 0
        self.done = False
        self.llm: LLMClient | None = None
        self.prompts: PromptSource | None = None
        self.dialogue: Dialogue | None = None  # conversations (--turns): this user's one
        self.session_id = os.urandom(16).hex()  # --session-header without conversations
        ctx = self.plugin.ctx
        self.think_rng = ctx.user_rng("think") if ctx is not None else random.Random()
        self.backoff = Backoff()  # after connection errors: this user waits, growing
        # --cancel-rate: which of this user's requests are hung up on (repeatable with --seed)
        # (only then: a user's number, hence its other streams, stay as without cancelling)
        self.cancel_rng = (
            ctx.user_rng("cancel") if ctx is not None and ctx.settings.cancel_rate > 0 else None
        )

    def wait_time(self) -> float:
        # A user that has sent its --requests-per-user waits "forever": Locust kills a
        # waiting user at once when the test stops (a user inside a task would delay it).
        if self.done:
            return _FOREVER
        ctx = self.plugin.ctx
        return self.think_rng.uniform(*ctx.settings.think_time) if ctx is not None else 0.0

    def on_start(self) -> None:
        ctx = self.plugin.ctx
        if ctx is None:
            raise LLMUsersError("llm_users: a user started before the plugin was configured")
        self.llm = ctx.new_client()
        self.prompts = ctx.prompts
        self.dialogue = ctx.new_dialogue()

    def on_stop(self) -> None:
        if self.llm is not None:
            self.llm.close()

    def body(self, prompt: Any, max_tokens: int | None = None) -> dict[str, Any]:
        """A request body for ``prompt`` (text or chat messages) as the options ask for it:
        endpoint, model, streaming, sampling, system prompt; ``max_tokens`` None: --max-tokens."""
        assert self.plugin.ctx is not None
        return self.plugin.ctx.body(prompt, max_tokens)

    def next_request(self) -> dict[str, Any]:
        """The JSON body of the next request (a conversation's next turn with --turns)."""
        if self.dialogue is not None:
            return self.dialogue.next_body()
        assert self.prompts is not None
        prompt: Any
        prompt, max_tokens = self.prompts.next()
        n = self.plugin.ctx.settings.texts_per_request if self.plugin.ctx is not None else 1
        if n > 1:  # embeddings and rerank: several texts per request, a list
            prompt = [prompt, *(self.prompts.next()[0] for _ in range(n - 1))]
        return self.body(prompt, max_tokens)

    @task
    def generate(self) -> None:
        if self.done:
            return
        assert self.llm is not None
        plugin, control = self.plugin, self.plugin.control
        if self.sent:
            # Other users' pending reads first: their data is already here, this request is
            # not sent yet (its start is taken when it is written).
            when_idle(PREPARE_WAIT_S)
        try:
            body = self.next_request()
        except PromptsExhausted:  # a finite source (a trace) is done: so is this user
            self._finish()
            return
        # Open loop: wait for the next due arrival; a late start is the queue delay.
        intended = control.schedule.wait() if control.schedule is not None else None
        step = control.step  # a sweep step owns the requests that start in it
        warmup = plugin.warmup.starts()
        # The session id: the conversation's (each turn of one the same), else the user's.
        session = self.dialogue.session_id if self.dialogue is not None else self.session_id
        cancel = False
        if self.cancel_rng is not None and plugin.ctx is not None:
            cancel = self.cancel_rng.random() < plugin.ctx.settings.cancel_rate
        plugin.in_flight += 1  # an interrupted run says how many it dropped
        try:
            record = self.llm.request(body, intended_start=intended, session=session, cancel=cancel)
        finally:
            plugin.in_flight -= 1
        record.warmup = warmup
        if self.dialogue is not None:
            self.dialogue.finish(record)  # its turn; the answer joins the history
        self.sent += 1
        plugin.accounting.submit(record, step)  # counted off the read path (accounting.py)
        plugin.reach.observe(record, plugin.sink.tally)
        limit = plugin.ctx.settings.requests_per_user if plugin.ctx is not None else 0
        if limit and self.sent >= limit:
            self._finish()
        elif wait_s := self.backoff.after(record):
            gevent.sleep(wait_s)  # no connection: not again at once (backoff.py)

    def _finish(self) -> None:
        self.done = True
        if self.llm is not None:
            self.llm.close()
        self.plugin.control.user_done()


class LLMUser(BaseLLMUser):
    """The ready user: endpoint, streaming and prompts are chosen with the plugin's options."""

    abstract = False
