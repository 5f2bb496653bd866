"""The garbage collector around a test: nothing loaded before it is scanned during it.

A worker that loaded a tokenizer holds millions of objects (transformers, its modules, the
prompts). Python's full collection walks all of them: 30-130 ms with the event loop stopped,
measured in a 512-stream run, and every stream's reads wait for it. At test start (before
any request is timed) one collection clears what start-up left, then ``gc.freeze`` moves
everything alive into the permanent generation, which later collections skip; they then
scan only what the test itself allocates. At test stop the objects are handed back, so a
web UI session running test after test does not pile up frozen ones.
"""

from __future__ import annotations

import gc

__all__ = ["freeze_startup", "thaw"]


def freeze_startup() -> None:
    """Collect, then freeze every surviving object."""
    gc.collect()
    gc.freeze()


def thaw() -> None:
    gc.unfreeze()
