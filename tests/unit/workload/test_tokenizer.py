"""Token counting: exact on both paths, and long texts are counted off the gevent loop."""

from __future__ import annotations

import gevent
import pytest

from llm_users.simulator.payloads import token_texts
from llm_users.workload.tokenizer import OFFLOAD_CHARS, load_counter


@pytest.fixture(scope="module")
def count(tokenizer_dir):
    return load_counter(str(tokenizer_dir))


def test_short_and_long_texts_are_counted_exactly(count):
    short = "".join(token_texts("mixed", 1, 20))
    long = "".join(token_texts("mixed", 2, 3000))
    assert len(short) < OFFLOAD_CHARS < len(long)
    assert count(short) == 20 and count(long) == 3000 and count("") == 0


def test_counting_long_texts_leaves_the_loop_free(count):
    text = "".join(token_texts("en", 3, 3000))
    ticks = []

    def ticker():
        while True:
            ticks.append(1)
            gevent.sleep(0.0005)

    g = gevent.spawn(ticker)
    gevent.sleep(0.01)
    ticks.clear()
    for _ in range(20):
        assert count(text) == 3000
    g.kill()
    # Counted inside the loop, the ticker could not run at all until the end; off the loop
    # (encode_batch releases the GIL) it keeps ticking while the counts go on.
    assert len(ticks) >= 10
