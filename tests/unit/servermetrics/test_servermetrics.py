"""Server /metrics: parsing, the known names per server, window math, fetch and probe."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import gevent
import pytest
from gevent.server import StreamServer

from llm_users.servermetrics import (
    NOT_PROMETHEUS,
    NOT_REPORTED,
    Parsed,
    Scraper,
    Window,
    histogram_quantile,
    metrics_url,
    parse,
    probe,
)
from llm_users.servermetrics.names import FAMILIES, KNOWN_KEYS, family_key

from ..servermetrics_pages import LLAMACPP, SGLANG, TGI, big_vllm_page, vllm

INF = float("inf")


# -- parse --------------------------------------------------------------------------------
def test_parse_reads_a_vllm_page_with_the_stock_parser() -> None:
    p = parse(vllm(running=2, ttft=(1, 1, 1, 1), queries=10, hits=5))
    assert p.ok
    assert p.families["vllm:num_requests_running"].samples[0].value == 2
    assert p.families["vllm:prefix_cache_queries"].type == "counter"  # `_total` dropped


@pytest.mark.parametrize(
    ("body", "what"),
    [
        ("<html><body><h1>404 Not Found</h1></body></html>", "HTML"),
        ('{"detail": "Not Found"}', "JSON"),
        ("404 page not found\n", NOT_PROMETHEUS),
        ("Not Found", NOT_PROMETHEUS),
        ("", "no metrics"),
        (b"\xff\xfe\x00garbage", "UTF-8"),
        ('metric{le="0.1" 3\n', NOT_PROMETHEUS),
    ],
)
def test_garbage_is_a_note_never_an_exception(body: str | bytes, what: str) -> None:
    p = parse(body)
    assert not p.ok and not p.families
    assert p.note is not None and NOT_PROMETHEUS in p.note and what in p.note


def test_oversized_page_and_too_many_series_are_refused() -> None:
    page = vllm(running=1)
    assert parse(page, max_bytes=len(page)).ok
    p = parse(page, max_bytes=len(page) - 1)
    assert not p.ok and f"larger than {len(page) - 1} bytes" in (p.note or "")
    many = "".join(f"m{i} 1\n" for i in range(50))
    p = parse(many, max_series=49)
    assert not p.ok and "more than 49 series" in (p.note or "")
    assert parse(many, max_series=50).ok


# -- histogram_quantile: PromQL's interpolation, by hand ----------------------------------
BUCKETS = [(0.1, 2.0), (0.2, 6.0), (0.4, 8.0), (INF, 10.0)]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.10, 0.05),  # rank 1 of 2 in [0, 0.1]
        (0.50, 0.175),  # rank 5: 3rd of 4 in (0.1, 0.2] -> 0.1 + 0.1 * 3/4
        (0.80, 0.4),  # rank 8: the top of (0.2, 0.4]
        (0.90, 0.4),  # rank 9 is in +Inf: the highest finite bound
        (0.0, 0.0),
    ],
)
def test_histogram_quantile_by_hand(q: float, expected: float) -> None:
    assert histogram_quantile(q, BUCKETS) == pytest.approx(expected)


def test_histogram_quantile_edge_cases() -> None:
    assert histogram_quantile(0.5, [(0.1, 0.0), (INF, 0.0)]) is None  # no samples
    assert histogram_quantile(0.5, [(0.1, 1.0)]) is None  # no +Inf bucket
    # a non-monotonic scrape (not atomic) is made monotonic, as Prometheus does
    assert histogram_quantile(0.5, [(0.1, 2.0), (0.2, 1.0), (INF, 4.0)]) == pytest.approx(0.1)


# -- the window: deltas, resets, gauges ---------------------------------------------------
def test_window_histogram_is_the_delta_over_the_test() -> None:
    w = Window("http://x/metrics")
    w.add(10.0, parse(vllm(ttft=(1, 1, 1, 1), ttft_sum=0.05)))  # before the test: 1 sample
    w.add(11.0, parse(vllm(ttft=(3, 7, 9, 11), ttft_sum=1.55)))  # +10 samples, +1.5 s
    r = w.result()
    ttft = r["ttft_ms"]
    assert ttft["count"] == 10
    assert ttft["mean"] == pytest.approx(150.0)  # 1.5 s / 10
    assert ttft["p50"] == pytest.approx(175.0)  # deltas 2, 6, 8, 10 = BUCKETS above
    assert ttft["p90"] == pytest.approx(400.0)
    assert r["families"]["ttft"] == "vllm:time_to_first_token_seconds"
    assert r["window_s"] == pytest.approx(1.0)


def test_window_sums_engines_label_sets() -> None:
    w = Window("u")
    w.add(0.0, parse(vllm(running=1, ttft=(0, 0, 0, 0), engines=2)))
    w.add(1.0, parse(vllm(running=3, ttft=(1, 3, 4, 5), ttft_sum=1.0, engines=2)))
    r = w.result()
    assert r["ttft_ms"]["count"] == 10  # 5 per engine
    assert r["ttft_ms"]["mean"] == pytest.approx(200.0)  # 2.0 s / 10
    assert r["running"] == {"mean": 4.0, "max": 6.0}  # (2 + 6) / 2: engines add up


def test_counter_reset_counts_what_the_restarted_server_counted() -> None:
    w = Window("u")
    for t, (q, h) in enumerate([(100, 50), (150, 80), (20, 10), (50, 35)]):
        w.add(float(t), parse(vllm(queries=q, hits=h)))
    r = w.result()
    # queries: +50, restart (20 since), +30 = 100; hits: +30, 10, +25 = 65
    assert r["prefix_cache_hit_rate"] == pytest.approx(0.65)


def test_histogram_reset_takes_the_new_counts() -> None:
    w = Window("u")
    w.add(0.0, parse(vllm(ttft=(5, 5, 5, 5), ttft_sum=0.25)))
    w.add(1.0, parse(vllm(ttft=(6, 6, 6, 6), ttft_sum=0.30)))  # +1 at 50 ms
    w.add(2.0, parse(vllm(ttft=(0, 2, 2, 2), ttft_sum=0.30)))  # restarted: 2 at 150 ms
    r = w.result()["ttft_ms"]
    assert r["count"] == 3
    assert r["mean"] == pytest.approx((50 + 300) / 3)


def test_gauges_mean_max_and_series() -> None:
    w = Window("u")
    for t, (run, wait, kv) in enumerate([(2, 0, 0.1), (4, 1, 0.3), (6, 5, 0.2)]):
        w.add(100.0 + t, parse(vllm(running=run, waiting=wait, kv=kv)))
    r = w.result()
    assert r["running"] == {"mean": 4.0, "max": 6.0}
    assert r["waiting"] == {"mean": 2.0, "max": 5.0}
    assert r["kv_cache_usage"]["mean"] == pytest.approx(0.2)
    assert r["kv_cache_usage"]["max"] == pytest.approx(0.3)
    assert [p["t"] for p in r["series"]] == [0.0, 1.0, 2.0]
    assert [p["running"] for p in r["series"]] == [2, 4, 6]


def test_series_stays_bounded() -> None:
    w = Window("u", max_points=10)
    page = parse(vllm(running=1))
    for t in range(1000):
        w.add(float(t), page)
    series = w.result()["series"]
    assert len(series) <= 10
    ts = [p["t"] for p in series]
    gaps = {b - a for a, b in zip(ts, ts[1:], strict=False)}
    assert ts[0] == 0.0 and len(gaps) == 1  # evenly thinned, from the start
    assert ts[-1] >= 999 - gaps.pop()  # and up to the last stride


def test_failed_scrapes_are_counted_not_fatal() -> None:
    w = Window("u")
    w.add(0.0, Parsed(note="HTTP 404"))
    w.add(1.0, parse(vllm(running=1)))
    r = w.result()
    assert r["failed_scrapes"] == 1 and r["scrapes"] == 1 and r["last_error"] == "HTTP 404"


def test_old_vllm_names_are_read() -> None:
    w = Window("u")
    w.add(0.0, parse(vllm(kv=0.5, queries=10, hits=0, old_names=True)))
    w.add(1.0, parse(vllm(kv=0.7, queries=30, hits=10, old_names=True)))
    r = w.result()
    assert r["families"]["kv_cache_usage"] == "vllm:gpu_cache_usage_perc"
    assert r["families"]["itl"] == "vllm:time_per_output_token_seconds"
    assert r["kv_cache_usage"]["max"] == pytest.approx(0.7)
    assert r["prefix_cache_hit_rate"] == pytest.approx(0.5)  # 10 / 20


def test_new_name_wins_when_both_are_exposed() -> None:
    both = vllm(kv=0.5) + vllm(kv=0.9, old_names=True).replace(
        "vllm:num_requests", "x_num_requests"
    )  # a vLLM 0.9 page keeps the deprecated gauge alongside
    p = parse(both)
    assert p.ok, p.note
    w = Window("u")
    w.add(0.0, p)
    assert w.result()["families"]["kv_cache_usage"] == "vllm:kv_cache_usage_perc"


# -- each server's families ---------------------------------------------------------------
def _one(page: str) -> dict:
    w = Window("u")
    w.add(0.0, parse(page))
    return w.result()


def test_sglang_mapping() -> None:
    r = _one(SGLANG)
    assert r["families"] == {
        "e2e": "sglang:e2e_request_latency_seconds",
        "generation_tokens": "sglang:generation_tokens",
        "itl": "sglang:inter_token_latency_seconds",
        "kv_cache_usage": "sglang:token_usage",
        "prefix_cache_hit_rate": "sglang:cache_hit_rate",
        "queue_time": "sglang:queue_time_seconds",
        "running": "sglang:num_running_reqs",
        "ttft": "sglang:time_to_first_token_seconds",
        "waiting": "sglang:num_queue_reqs",
    }
    assert r["running"] == {"mean": 3.0, "max": 3.0}
    assert r["prefix_cache_hit_rate"] == pytest.approx(0.5)
    assert r["ttft_ms"]["count"] == 0  # reported, nothing during the (empty) window
    assert r["tpot_ms"] == NOT_REPORTED


def test_tgi_mapping() -> None:
    r = _one(TGI)
    assert r["families"]["running"] == "tgi_batch_current_size"
    assert r["families"]["waiting"] == "tgi_queue_size"
    assert r["families"]["queue_time"] == "tgi_request_queue_duration"
    assert r["families"]["e2e"] == "tgi_request_duration"
    assert r["families"]["tpot"] == "tgi_request_mean_time_per_token_duration"
    assert r["ttft_ms"] == NOT_REPORTED  # TGI has no TTFT histogram
    assert r["waiting"] == {"mean": 4.0, "max": 4.0}


def test_llamacpp_mapping() -> None:
    r = _one(LLAMACPP)
    assert r["families"] == {
        "generation_tokens": "llamacpp:tokens_predicted",
        "kv_cache_usage": "llamacpp:kv_cache_usage_ratio",
        "prompt_tokens": "llamacpp:prompt_tokens",
        "running": "llamacpp:requests_processing",
        "waiting": "llamacpp:requests_deferred",
    }
    assert r["kv_cache_usage"] == {"mean": 0.125, "max": 0.125}
    for key in ("ttft_ms", "itl_ms", "e2e_ms", "queue_time_ms"):
        assert r[key] == NOT_REPORTED
    assert r["prefix_cache_hit_rate"] == NOT_REPORTED


def test_unknown_families_are_kept_raw_not_mapped() -> None:
    p = parse(vllm(running=1))
    assert "vllm:lora_requests_info" in p.families  # kept, for whoever wants it
    mapped = {family_key(n) for k in FAMILIES for n in k.names}
    assert "vllm:lora_requests_info" not in mapped


def test_every_known_name_has_its_server_prefix() -> None:
    prefixes = ("vllm:", "sglang:", "tgi_", "llamacpp:")
    for k in FAMILIES:
        assert all(n.startswith(prefixes) for n in k.names), k


# -- fetch and probe against tiny servers --------------------------------------------------
Handler = Callable[[object], None]


@pytest.fixture
def tiny_server() -> Iterator[Callable[[bytes | None], str]]:
    """``url = tiny_server(raw_response)``; None: accept and never answer."""
    servers: list[StreamServer] = []

    def start(raw: bytes | None) -> str:
        def handle(sock: object, _addr: object) -> None:
            sock.recv(65536)  # type: ignore[attr-defined]
            if raw is None:
                gevent.sleep(30)
                return
            sock.sendall(raw)  # type: ignore[attr-defined]

        srv = StreamServer(("127.0.0.1", 0), handle)
        srv.start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_port}/metrics"

    yield start
    for srv in servers:
        srv.stop(timeout=1)


def _http(status: str, body: bytes, ctype: str = "text/plain; version=0.0.4") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
    return (head + "Connection: close\r\n\r\n").encode() + body


def test_probe_valid_page(tiny_server: Callable[[bytes | None], str]) -> None:
    url = tiny_server(_http("200 OK", vllm(running=1).encode()))
    ok, reason = probe(url)
    assert ok, reason
    assert "known" in reason


def test_probe_404(tiny_server: Callable[[bytes | None], str]) -> None:
    ok, reason = probe(tiny_server(_http("404 Not Found", b"404 page not found")))
    assert (ok, reason) == (False, "HTTP 404")


def test_probe_html_page(tiny_server: Callable[[bytes | None], str]) -> None:
    html = b"<!doctype html><html><body>Welcome</body></html>"
    ok, reason = probe(tiny_server(_http("200 OK", html, "text/html")))
    assert not ok and NOT_PROMETHEUS in reason and "HTML" in reason


def test_probe_timeout(tiny_server: Callable[[bytes | None], str]) -> None:
    url = tiny_server(None)
    with gevent.Timeout(5):  # the probe's own timeout must fire first
        ok, reason = probe(url, timeout_s=0.3)
    assert (ok, reason) == (False, "timeout after 0.3 s")


def test_probe_huge_body_by_length(tiny_server: Callable[[bytes | None], str]) -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n" + b"m 1\n" * 100
    ok, reason = probe(tiny_server(raw), max_bytes=10_000)
    assert not ok and "larger than 10000 bytes" in reason


def test_probe_huge_body_without_length(tiny_server: Callable[[bytes | None], str]) -> None:
    raw = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"m 1\n" * 50_000  # 200 KB
    ok, reason = probe(tiny_server(raw), max_bytes=10_000)
    assert not ok and "larger than 10000 bytes" in reason


def test_probe_refused() -> None:
    srv = StreamServer(("127.0.0.1", 0), lambda s, a: None)
    srv.start()
    port = srv.server_port
    srv.stop()
    ok, reason = probe(f"http://127.0.0.1:{port}/metrics", timeout_s=1)
    assert (ok, reason) == (False, "connection refused")


def test_scraper_window_over_a_changing_page(tiny_server: Callable[[bytes | None], str]) -> None:
    """Three scrapes of a server whose TTFT histogram grows: the window holds the delta."""
    pages = [vllm(running=r, ttft=t, ttft_sum=s) for r, t, s in [
        (1, (1, 1, 1, 1), 0.05), (2, (2, 4, 4, 4), 0.5), (3, (3, 7, 9, 11), 1.55)]]  # fmt: skip
    served = iter(pages)

    def handle(sock: object, _addr: object) -> None:
        sock.recv(65536)  # type: ignore[attr-defined]
        sock.sendall(_http("200 OK", next(served).encode()))  # type: ignore[attr-defined]

    srv = StreamServer(("127.0.0.1", 0), handle)
    srv.start()
    try:
        s = Scraper(f"http://127.0.0.1:{srv.server_port}/metrics", interval_s=3600)
        s.start()
        gevent.sleep(0)  # the loop's first scrape (the baseline), then it waits an hour
        with gevent.Timeout(5):
            while s.window.scrapes < 1:
                gevent.sleep(0.01)
        s.scrape_once()
        s.stop(final=True)
    finally:
        srv.stop(timeout=1)
    r = s.result()
    assert r["scrapes"] == 3 and r["failed_scrapes"] == 0
    assert r["ttft_ms"]["count"] == 10 and r["ttft_ms"]["p50"] == pytest.approx(175.0)
    assert r["running"] == {"mean": 2.0, "max": 3.0}


def test_metrics_url_from_host() -> None:
    assert metrics_url("http://gpu:8000/v1") == "http://gpu:8000/metrics"
    assert metrics_url("127.0.0.1:8000") == "http://127.0.0.1:8000/metrics"


def test_big_page_parses_off_the_loop() -> None:
    page = big_vllm_page(200_000)
    assert 150_000 < len(page) < 250_000
    p = parse(page)
    assert p.ok and p.families["vllm:num_requests_running"].samples


def test_parsing_in_pieces_gives_the_same_families() -> None:
    page = big_vllm_page(50_000)
    whole = parse(page)
    pauses: list[int] = []
    pieces = parse(page, pause=lambda: pauses.append(1), lines_per_piece=7)
    assert len(pauses) > 50
    assert {n: f.samples for n, f in whole.families.items()} == {
        n: f.samples for n, f in pieces.families.items()
    }
    known = parse(page, keep=KNOWN_KEYS, pause=lambda: None)
    assert set(known.families) <= KNOWN_KEYS and "vllm:request_prompt_tokens" not in known.families
    for name, fam in known.families.items():
        assert fam.samples == whole.families[name].samples


def test_quantile_bucket_and_an_all_zero_histogram() -> None:
    from llm_users.servermetrics.window import quantile_bucket

    inf = float("inf")
    pairs = [(0.1, 0.0), (0.25, 40.0), (0.5, 40.0), (inf, 40.0)]
    assert quantile_bucket(0.5, pairs) == (0.1, 0.25)
    assert quantile_bucket(0.99, [(0.1, 1.0), (inf, 2.0)]) == (0.1, inf)
    assert quantile_bucket(0.5, [(0.1, 0.0), (inf, 0.0)]) is None


def test_a_dcgm_page_over_a_window_gives_gpu_figures() -> None:
    from llm_users.servermetrics import GPU_FAMILIES, Window, gpu_figures, gpu_url, parse

    def page(watts: float, energy_mj: float) -> str:
        lines = []
        for name, kind, v in (
            ("DCGM_FI_DEV_POWER_USAGE", "gauge", watts),
            ("DCGM_FI_DEV_GPU_UTIL", "gauge", 40.0),
            ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", energy_mj),
        ):
            lines += [f"# TYPE {name} {kind}"]
            lines += [f'{name}{{gpu="{i}",UUID="GPU-{i}"}} {v}' for i in range(2)]
        return "\n".join(lines) + "\n"

    w = Window("x", families=GPU_FAMILIES)
    w.add(10.0, parse(page(100.0, 5_000_000.0)))
    w.add(12.0, parse(page(300.0, 5_400_000.0)))
    g = gpu_figures(w)
    assert g["gpus"] == 2 and g["window_s"] == 2.0
    assert g["power_w"] == {"mean": 400.0, "max": 600.0}  # two GPUs add up
    assert g["utilization_percent"]["mean"] == 40.0  # a mean over GPUs
    assert g["energy_j"] == 800.0 and g["energy_from"] == "energy counter"  # 2 x 400,000 mJ
    assert gpu_url("https://gpu-box:8000/v1") == "http://gpu-box:9400/metrics"
