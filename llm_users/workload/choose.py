"""The prompt source of a shared-prefix or trace workload, from the settings."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .prompts import PromptSource

if TYPE_CHECKING:
    from ..options.settings import Settings
    from ..role import Role

__all__ = ["workload_prompts"]

log = logging.getLogger("llm_users")


def workload_prompts(s: Settings, role: Role) -> PromptSource:
    """Built once per process, before users start (prompts are tokenized here)."""
    if s.trace:
        from .trace import TracePrompts, read_trace

        return TracePrompts(
            read_trace(s.trace, s.trace_limit),
            tokenizer_name=s.tokenizer,
            path=s.trace,
            block_tokens=s.trace_block_tokens,
            speed=s.trace_speed,
            seed=s.seed,
            unique_seed=s.seed_for("trace-unique", role.index),
            partition=role.partition,
        )
    from .prefix import SharedPrefixPrompts

    if role.is_worker and s.seed is None:
        log.warning("llm-users: --prefix-tokens without --seed: each worker draws its own "
                    "prefixes (give --seed for the workers to share them)")  # fmt: skip
    return SharedPrefixPrompts(
        s.prefix_tokens,
        s.prefix_count,
        s.input_tokens,
        tokenizer_name=s.tokenizer,
        as_system=s.prefix_in == "system" and s.endpoint == "chat",
        prefix_seed=s.seed_for("prefixes", 0),
        seed=s.seed_for("prefix-prompts", role.index),
    )
