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


NOT_CACHED = "llm-users-tests/no-such-tokenizer"  # never in any local cache


def test_an_uncached_hub_name_offline_is_one_line_at_once(monkeypatch) -> None:
    import time

    from llm_users.errors import ConfigError
    from llm_users.workload.tokenizer import load_tokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(ConfigError) as err:
        load_tokenizer(NOT_CACHED)
    assert time.monotonic() - start < 5
    assert "not in the local Hugging Face cache and HF_HUB_OFFLINE is set" in str(err.value)
    assert "give a local tokenizer folder" in str(err.value) and "\n" not in str(err.value)


def test_an_uncached_hub_name_with_the_hub_unreachable_is_one_line_at_once(monkeypatch) -> None:
    import socket
    import time

    from llm_users.errors import ConfigError
    from llm_users.workload.tokenizer import load_tokenizer

    with socket.socket() as s:  # a port that was free: nothing listens there now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    start = time.monotonic()
    with pytest.raises(ConfigError) as err:
        load_tokenizer(NOT_CACHED)
    assert time.monotonic() - start < 5
    assert f"http://127.0.0.1:{port} cannot be reached" in str(err.value)
