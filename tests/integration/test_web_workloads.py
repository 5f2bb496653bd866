"""The web UI after a run with a warm-up and conversations: the LLM tab's rows and the /llm
page's state carry the new figures, and they agree with the per-request records."""

from __future__ import annotations

from typing import Any

import gevent
import orjson
from locust.env import Environment
from locust.event import Events

from llm_users import LLMUser, setup
from tests.helpers import parse_options


def _run_with_web_ui(host: str, *args: str, users: int) -> tuple[Any, Any]:
    """A local in-process run with Locust's web UI built (never listening): its Flask app."""
    opts = parse_options(*args)
    env = Environment(user_classes=[LLMUser], events=Events(), host=host, parsed_options=opts)
    plugin = setup(env)
    env.create_web_ui("127.0.0.1", 0, delayed_start=True)
    runner = env.create_local_runner()
    plugin.on_init()
    runner.start(users, spawn_rate=users)
    with gevent.Timeout(60):
        runner.greenlet.join()
    assert env.web_ui is not None
    return plugin, env.web_ui.app.test_client()


def test_tab_rows_and_page_state_show_warmup_conversations_and_cache(simulator, tmp_path):
    sim = simulator(ttft_ms=20, itl_ms=1, output_tokens=6, prefix_cache=True,
                    cache_block_tokens=4)  # fmt: skip
    records_path = tmp_path / "records.jsonl"
    plugin, client = _run_with_web_ui(
        sim.url, "--stream", "--turns", "2", "--warmup-requests", "2", "--prompt-type",
        "random", "--seed", "1", "--requests-per-user", "4", "--records", str(records_path),
        users=2,
    )  # fmt: skip
    s = plugin.last_summary
    rows = [orjson.loads(line) for line in records_path.read_bytes().splitlines()]
    assert len(rows) == len(sim.records())
    assert all({"warmup", "turn", "cached_tokens"} <= set(r) for r in rows)
    warm = [r for r in rows if r["warmup"]]
    kept = [r for r in rows if not r["warmup"]]
    assert len(warm) == 2 and s["warmup"]["requests"] == 2
    assert {r["turn"] for r in rows} == {1, 2}
    # with --turns 2, a conversation is completed by its successful turn 2
    completed = sum(1 for r in kept if r["turn"] == 2 and r["ok"])
    assert completed and s["conversations"]["completed"] == completed
    # the cached tokens of the records are the server's own, and the hit rate is theirs
    assert sorted(r["cached_tokens"] for r in rows) == sorted(
        r["cached_tokens"] for r in sim.records()
    )
    cached = sum(r["cached_tokens"] for r in kept)
    prompt = sum(r["prompt_tokens"] for r in kept)
    assert cached > 0 and s["prefix_cache"]["cached_tokens"] == cached
    rate = 100.0 * cached / prompt

    resp = client.get("/stats/requests")
    assert resp.status_code == 200
    (tab,) = [t for t in resp.get_json()["extended_stats"] if t["key"] == "llm"]
    values = {r["figure"]: r["value"] for r in tab["data"]}
    assert values["Status"] == "final"
    assert values["Warm-up requests (excluded)"] == "2"
    assert values["Conversations completed"] == str(completed)
    assert values["Prefix cache hit rate (%)"] == f"{rate:.1f}"

    state = client.get("/llm/state.json").get_json()
    turns = state["summary"]["turns"]
    assert [t["turn"] for t in turns] == [1, 2]
    assert [t["requests"] for t in turns] == [
        sum(1 for r in kept if r["turn"] == k and r["ok"]) for k in (1, 2)
    ]
    figures = {f["key"] for f in client.get("/llm/figures.json").get_json()}
    assert {"warmup.requests", "conversations.completed", "prefix_cache_hit_rate"} <= figures
    page = client.get("/llm").get_data(as_text=True)
    assert 'id="turns"' in page
