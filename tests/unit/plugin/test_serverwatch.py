"""--server-metrics: its options, and the console lines beside the client's figures."""

from __future__ import annotations

import pytest

from llm_users.errors import ConfigError
from llm_users.options.settings import Settings
from llm_users.plugin.serverwatch import ServerWatch, series_columns, server_lines
from tests.helpers import parse_options


def test_options_default_and_values() -> None:
    s = Settings.from_options(parse_options())
    assert (s.server_metrics, s.server_metrics_interval) == ("auto", 1.0)
    s = Settings.from_options(
        parse_options("--server-metrics", "https://gpu:8000/metrics",
                      "--server-metrics-interval", "0.25")
    )  # fmt: skip
    assert (s.server_metrics, s.server_metrics_interval) == ("https://gpu:8000/metrics", 0.25)
    assert Settings.from_options(parse_options("--server-metrics", "off")).server_metrics == "off"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--server-metrics", "ftp://gpu/metrics"), "--server-metrics must be auto, off or an "
         "http(s) URL, got 'ftp://gpu/metrics'"),
        (("--server-metrics", "http://"), "--server-metrics must be auto, off or an http(s) URL"),
        (("--server-metrics-interval", "0"), "--server-metrics-interval must be > 0"),
    ],
)  # fmt: skip
def test_bad_values_name_the_option(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        Settings.from_options(parse_options(*args))
    assert str(exc.value).startswith(message)


def test_nothing_scraped_says_why() -> None:
    w = ServerWatch()
    assert w.result() == {
        "source": None,
        "how": "off",
        "not_available": "off (--server-metrics off)",
    }
    assert w.live() is None and w.scrapes == 0
    lines = server_lines({"server": {"source": None, "not_available": "not available: HTTP 404"}})
    assert lines == ["  server metrics: not available: HTTP 404"]


def test_console_lines_put_client_and_server_side_by_side() -> None:
    summary = {
        "ttft_ms": {"count": 10, "mean": 110.0, "p50": 105.0, "p99": 190.0},
        "server": {
            "source": "http://s/metrics", "scrapes": 5, "window_s": 4.0, "failed_scrapes": 0,
            "ttft_ms": {"count": 10, "mean": 100.0, "p50": 100.0, "p99": 200.0},
            "queue_time_ms": "not reported by the server",
            "running": {"mean": 1.5, "max": 2.0}, "waiting": {"mean": 0.25, "max": 1.0},
            "kv_cache_usage": {"mean": 0.125, "max": 0.5}, "prefix_cache_hit_rate": 0.75,
        },
    }  # fmt: skip
    text = "\n".join(server_lines(summary))
    assert "server metrics (http://s/metrics, 5 scrapes over 4.0 s, 0 failed)" in text
    # only the mean is exact on the server's side: percentiles are not subtracted
    assert "client - server mean +10.0" in text and "p50 +5.0" not in text
    assert "queue time: not reported by the server" in text
    assert "running: mean 1.50, max 2.00   waiting: mean 0.25, max 1.00" in text
    assert "KV-cache usage: mean 12.50 %, max 50.00 %" in text
    assert "prefix-cache hit rate: 75.0 %" in text


def test_series_columns_on_the_wall_clock() -> None:
    cols = series_columns([{"t": 0.0, "running": 1}, {"t": 1.5, "running": 2, "waiting": 3}], 100.0)
    assert cols["t"] == [100.0, 101.5]
    assert cols["running"] == [1, 2] and cols["waiting"] == [None, 3]


def test_auto_does_not_probe_with_preflight_off() -> None:
    """--preflight off: nothing is sent to the server before the test, /metrics neither."""
    from llm_users.plugin.context import build_context
    from llm_users.role import Role

    ctx = build_context(parse_options("--preflight", "off"), "http://127.0.0.1:9", Role())
    w = ServerWatch()
    w.resolve(ctx)  # port 9 (discard): a probe would fail with another reason
    why = "not available: not probed (--preflight off)"
    assert w.result() == {"source": None, "how": "auto", "not_available": why}


def test_server_percentiles_show_the_bucket_they_lie_in() -> None:
    """A server histogram answers a percentile only to its bucket: the line says which."""
    dist = {"count": 40, "mean": 121.6, "p50": 175.0, "p99": 248.5,
            "p50_bucket": [100.0, 250.0], "p99_bucket": [100.0, 250.0]}  # fmt: skip
    srv = {"source": "s", "scrapes": 2, "window_s": 1.0, "failed_scrapes": 0, "ttft_ms": dist,
           "queue_time_ms": "not reported by the server"}  # fmt: skip
    summary = {"server": srv}
    text = "\n".join(server_lines(summary))
    assert "p50 175.0 (100-250)  p99 248.5 (100-250)" in text
