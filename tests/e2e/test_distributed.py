"""A real master and two real workers against the simulator, for every way a run ends."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, locust_cmd

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _headless(users: int) -> list[str]:
    return ["--headless", "-u", str(users), "-r", str(users)]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Cluster:
    """`locust --master` plus N `--worker` processes on loopback."""

    def __init__(self, tmp: Path, host: str, master_args: list[str], workers: int = 2) -> None:
        self.port = _free_port()
        self.summary = tmp / "summary.json"
        self.records = tmp / "records.jsonl"
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
        self.master = subprocess.Popen(
            locust_cmd(
                "--master",
                "--master-bind-host",
                "127.0.0.1",
                "--master-bind-port",
                str(self.port),
                "--expect-workers",
                str(workers),
                "--host",
                host,
                "--summary-json",
                str(self.summary),
                "--records",
                str(self.records),
                *master_args,
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=ROOT,
            # Ctrl-C's signal reaches the master as from a terminal, even when this suite was
            # started in the background (`cmd &` in a script ignores SIGINT, and a child
            # inherits that: Python then never turns it into KeyboardInterrupt).
            preexec_fn=_default_sigint,
        )
        self.workers = [
            subprocess.Popen(
                locust_cmd(
                    "--worker", "--master-host", "127.0.0.1", "--master-port", str(self.port)
                ),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
                cwd=ROOT,
            )
            for _ in range(workers)
        ]

    def wait(self, timeout: float = 60) -> tuple[int, str]:
        try:
            out, _ = self.master.communicate(timeout=timeout)
            return self.master.returncode, out
        finally:
            self.kill()

    def kill(self) -> None:
        for p in [self.master, *self.workers]:
            if p.poll() is None:
                p.kill()
                p.wait(5)

    def result(self) -> dict:
        return json.loads(self.summary.read_text())

    def raw_records(self) -> list[dict]:
        rows = []
        for path in sorted(self.records.parent.glob(self.records.name + ".worker*")):
            rows += [json.loads(line) for line in path.read_text().splitlines()]
        return rows


def _nearest_rank(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[max(1, math.ceil(p / 100 * len(s))) - 1]


def _check_merged(summary: dict, rows: list[dict]) -> None:
    ok = [r for r in rows if r["ok"]]
    assert summary["requests"] == len(ok)
    ttft = [r["ttft_ms"] for r in ok]
    for p in (50, 90, 99):
        exact = _nearest_rank(ttft, p)
        assert abs(summary["ttft_ms"][f"p{p}"] - exact) <= exact * 0.0005 + 0.001, p
    assert summary["ttft_ms"]["max"] == pytest.approx(max(ttft))
    assert summary["ttft_ms"]["mean"] == pytest.approx(sum(ttft) / len(ttft))


@pytest.fixture
def slow_sim(simulator):
    return simulator(ttft_ms=40, itl_ms=20, output_tokens=25)


def test_requests_per_user_end(slow_sim, tmp_path):
    c = Cluster(
        tmp_path,
        slow_sim.url,
        [*_headless(6), "--stream", "--requests-per-user", "4"],
    )
    code, out = c.wait()
    assert code == 0, out[-3000:]
    s = c.result()
    assert s["requests"] == 24 == slow_sim.stats()["completed"]
    assert all(w["final_report"] for w in s["workers"].values()) and len(s["workers"]) == 2
    _check_merged(s, c.raw_records())


@pytest.mark.parametrize("how", ["run_time", "sigterm", "sigint"])
def test_other_ends_lose_nothing(slow_sim, tmp_path, how):
    args = [*_headless(6), "--stream", "--stop-timeout", "10"]
    if how == "run_time":
        args += ["-t", "4s"]
    c = Cluster(tmp_path, slow_sim.url, args)
    if how != "run_time":
        deadline = time.monotonic() + 30
        while slow_sim.stats()["completed"] < 12 and time.monotonic() < deadline:
            time.sleep(0.2)  # let requests finish, and some be in flight, before the signal
        c.master.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGINT)
    code, out = c.wait()
    assert "Traceback" not in out, out[-3000:]
    s = c.result()
    # in-flight streams finish within --stop-timeout, and every one reaches the master
    assert s["requests"] == slow_sim.stats()["completed"] >= 12, out[-3000:]
    assert s["failures"] == 0
    _check_merged(s, c.raw_records())


def test_a_dead_worker_is_reported_not_hidden(simulator, tmp_path):
    sim = simulator(ttft_ms=20, itl_ms=10, output_tokens=10)
    c = Cluster(
        tmp_path,
        sim.url,
        [*_headless(4), "--stream", "-t", "12s", "--stop-timeout", "5"],
    )
    deadline = time.monotonic() + 40
    while not sim.stats()["requests"] and time.monotonic() < deadline:
        time.sleep(0.2)  # the test has started on both workers (--expect-workers)
    time.sleep(4)  # mostly after a periodic report (every 3 s); listed as lost either way
    c.workers[0].kill()
    code, out = c.wait(timeout=60)
    s = c.result()
    assert s["requests"] > 0
    lost = [cid for cid, w in s["workers"].items() if not w["final_report"]]
    assert len(lost) == 1
    assert any("sent no final report" in n and lost[0] in n for n in s.get("notes", []))
    assert "sent no final report" in out


def test_open_loop_rate_is_for_the_whole_test_and_poisson(simulator, tmp_path):
    sim = simulator(ttft_ms=5, itl_ms=1, output_tokens=3)
    c = Cluster(
        tmp_path,
        sim.url,
        [
            *_headless(16),
            "--stream",
            "--request-rate",
            "60",
            "--seed",
            "1",  # the same draws every run: the bounds below hold for these, not by chance
            "-t",
            "8s",
            "--stop-timeout",
            "5",
        ],
    )
    code, out = c.wait()
    s = c.result()
    # Each worker's due times (start - queue delay, from its records): drawn from the seed,
    # so the bounds hold whatever the machine's load.
    due: dict[str, list[float]] = {}
    for r in c.raw_records():
        due.setdefault(r["worker"], []).append(r["start_wall"] - r["queue_delay_ms"] / 1000)
    assert len(due) == 2
    rate = 0.0
    for times in due.values():
        times.sort()
        # drop the first second (users spawning) and look at the steady part
        steady = [t for t in times if times[0] + 1.0 <= t]
        gaps = [b - a for a, b in zip(steady, steady[1:], strict=False)]
        rate += len(gaps) / (steady[-1] - steady[0])
        mean_gap = sum(gaps) / len(gaps)
        cv = (sum((g - mean_gap) ** 2 for g in gaps) / len(gaps)) ** 0.5 / mean_gap
        assert 0.8 <= cv <= 1.2, cv  # Poisson arrivals: coefficient of variation near 1
    assert 50 <= rate <= 70, rate  # 60/s for the whole test: 30/s per worker, not 60 each
    assert s["requests"] == sim.stats()["completed"]
    assert len(s["workers"]) == 2


def _post(url: str, data: dict[str, str]) -> dict:
    import urllib.parse
    import urllib.request

    body = urllib.parse.urlencode(data).encode()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(urllib.request.Request(url, data=body), timeout=30) as resp:
        return json.loads(resp.read() or b"{}")


def _get_json(url: str) -> dict:
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=30) as resp:
        return json.loads(resp.read())


def test_web_ui_stop_on_a_master_loses_nothing(slow_sim, tmp_path):
    web_port = _free_port()
    c = Cluster(
        tmp_path,
        slow_sim.url,
        [
            "--web-host",
            "127.0.0.1",
            "--web-port",
            str(web_port),
            "--stream",
            "--stop-timeout",
            "10",
        ],
    )
    base = f"http://127.0.0.1:{web_port}"
    try:
        deadline = time.monotonic() + 30
        while True:  # the web UI is up and both workers have connected
            try:
                if len(_get_json(base + "/stats/requests").get("workers") or []) == 2:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "web UI or workers not ready"
            time.sleep(0.3)
        _post(base + "/swarm", {"user_count": "6", "spawn_rate": "6", "host": slow_sim.url})
        while slow_sim.stats()["completed"] < 12 and time.monotonic() < deadline + 30:
            time.sleep(0.2)
        _post(base + "/stop", {})
        deadline = time.monotonic() + 30
        while not _get_json(base + "/llm/summary.json").get("duration_s"):
            assert time.monotonic() < deadline, "no final summary"
            time.sleep(0.3)
        time.sleep(0.5)
        s = _get_json(base + "/llm/summary.json")
        assert s == c.result()  # the page and --summary-json say the same
        assert s["requests"] == slow_sim.stats()["completed"] >= 12
        assert all(w["final_report"] for w in s["workers"].values()) and len(s["workers"]) == 2
        _check_merged(s, c.raw_records())
    finally:
        c.kill()


def test_a_sequential_dataset_is_split_between_workers(simulator, tmp_path):
    sim = simulator(ttft_ms=2, itl_ms=1, output_tokens=2)
    data = tmp_path / "prompts.txt"  # prompt i has i words: the simulator counts i tokens
    data.write_text("".join(" ".join(["alpha"] * i) + "\n" for i in range(1, 9)))
    c = Cluster(
        tmp_path,
        sim.url,
        [
            *_headless(2),
            "--endpoint",
            "completions",
            "--dataset",
            str(data),
            "--requests-per-user",
            "4",
        ],
    )
    code, out = c.wait()
    assert code == 0, out[-3000:]
    # worker i of 2 sends prompts i, i+2, ...: together, the file exactly once
    assert sorted(r["prompt_tokens"] for r in sim.records()) == list(range(1, 9))


def test_the_masters_api_key_reaches_the_workers(simulator, tmp_path):
    key = "sk-test-distributed-0123456789"
    sim = simulator(ttft_ms=2, itl_ms=1, output_tokens=3, api_key=key)
    c = Cluster(
        tmp_path,
        sim.url,
        [
            *_headless(2),
            "--stream",
            "--requests-per-user",
            "3",
            "--api-key",
            key,
        ],
    )
    code, out = c.wait()
    assert code == 0, out[-3000:]
    assert c.result()["requests"] == 6 and sim.stats()["by_status"] == {"200": 6}
    assert key not in out


def test_trace_is_split_between_workers_and_replayed_once(simulator, tokenizer_dir, tmp_path):
    trace = ROOT / "tests" / "fixtures" / "traces" / "small.jsonl"
    rows = [json.loads(line) for line in trace.read_text().splitlines()]
    sim = simulator(ttft_ms=1, itl_ms=1, prefix_cache=True, cache_block_tokens=16)
    c = Cluster(
        tmp_path,
        sim.url,
        [*_headless(6), "--stream", "--endpoint", "completions", "--tokenizer",
         str(tokenizer_dir), "--trace", str(trace), "--trace-block-tokens", "16", "--seed", "3"],
    )  # fmt: skip
    code, out = c.wait()
    assert code == 0, out[-3000:]
    s, records = c.result(), sim.records()
    assert s["requests"] == len(rows) == len(records) and s["failures"] == 0
    # worker i of 2 sent rows i, i+2, ...: each worker's records in its order are its rows
    by_worker: dict[str, list[int]] = {}
    for r in c.raw_records():
        by_worker.setdefault(r["worker"], []).append(r["prompt_tokens"])
    lengths = [r["input_length"] for r in rows]
    assert sorted(by_worker.values()) == sorted([lengths[0::2], lengths[1::2]])
    assert s["prefix_cache"]["cached_tokens"] == sim.stats()["prefix_cache_hits"] > 0


def test_warmup_is_split_and_conversations_stay_on_their_worker(slow_sim, tmp_path):
    c = Cluster(
        tmp_path,
        slow_sim.url,
        [*_headless(4), "--stream", "--turns", "3", "--requests-per-user", "6",
         "--warmup-requests", "5"],
    )  # fmt: skip
    code, out = c.wait()
    assert code == 0, out[-3000:]
    s = c.result()
    rows = c.raw_records()
    assert len(rows) == 24 == slow_sim.stats()["completed"]
    # 5 warm-up requests for the whole test: worker 0 takes 3, worker 1 takes 2
    per_worker = {w: sum(r["warmup"] for r in rows if r["worker"] == w) for w in ("0", "1")}
    assert per_worker == {"0": 3, "1": 2}
    assert s["warmup"]["requests"] == 5 and s["requests"] == 19
    assert sum(t["requests"] for t in s["turns"]) == 19
    assert [t["turn"] for t in s["turns"]] == [1, 2, 3]
    # every conversation went turn 1, 2, 3 on one worker: 8 of each size at the server
    sizes = sorted(r["num_messages"] for r in slow_sim.records())
    assert sizes == [2] * 8 + [4] * 8 + [6] * 8
    _check_merged(s, [r for r in rows if not r["warmup"]])


def test_only_the_master_scrapes_server_metrics(simulator, tmp_path):
    """Master + 2 workers for ~6 s, scraping every 0.5 s: every page the simulator served went
    to the master (its probe and its scrapes), about run time / interval of them."""
    sim = simulator(ttft_ms=40, itl_ms=10, output_tokens=20, metrics="on")
    interval = 0.5
    c = Cluster(
        tmp_path,
        sim.url,
        [*_headless(4), "--stream", "-t", "6s", "--server-metrics-interval", str(interval)],
    )
    code, out = c.wait(timeout=90)
    assert code == 0, out[-3000:]
    s = c.result()
    srv = s["server"]
    served = sim.stats()["metrics_scrapes"]
    # the master's count: one probe (auto) + its scrapes, failed or not; workers add nothing
    assert served == 1 + srv["scrapes"] + srv["failed_scrapes"], (served, srv)
    expected = srv["window_s"] / interval + 1  # the baseline, then one per interval
    assert expected - 1.5 <= srv["scrapes"] <= expected + 1.5, (srv["scrapes"], srv["window_s"])
    assert 5.0 <= srv["window_s"] <= 9.0
    assert srv["requests_finished"] == sim.stats()["completed"]
    assert "server metrics (" in out


def test_sigterm_on_the_master_prints_writes_and_stops_the_workers(slow_sim, tmp_path):
    c = Cluster(tmp_path, slow_sim.url, [*_headless(4), "--stream", "--stop-timeout", "10"])
    try:
        deadline = time.monotonic() + 30
        while slow_sim.stats()["completed"] < 8 and time.monotonic() < deadline:
            time.sleep(0.2)
        c.master.send_signal(signal.SIGTERM)
        out, _ = c.master.communicate(timeout=60)
        # The workers leave by themselves once the master has gone.
        codes = [w.wait(timeout=30) for w in c.workers]
    finally:
        c.kill()
    assert "Traceback" not in out, out[-3000:]
    assert all(code is not None for code in codes)
    s = c.result()
    assert s["requests"] == slow_sim.stats()["completed"] >= 8
    # The summary table was printed too, with the same count.
    assert f"requests ok {s['requests']:,}   failed 0" in out, out[-3000:]
