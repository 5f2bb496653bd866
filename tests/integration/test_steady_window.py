"""The steady window: a run's figures while every user was running, the ramp-up and the
drain left out, as the requests' own records show."""

from __future__ import annotations

from tests.helpers import lag_ms, run_in_process

USERS, SPAWN_RATE = 4, 2.0  # a ramp-up of 1 to 1.5 s, as Locust paces the spawns
RAMP_S = (USERS - 1) / SPAWN_RATE


def test_steady_window_excludes_the_ramp_up(simulator, capsys):
    sim = simulator(ttft_ms=20, itl_ms=10, output_tokens=6)  # ~70 ms a request
    collect: list = []
    plugin = run_in_process(
        sim.url,
        "--stream",
        "--requests-per-user",
        "50",
        users=USERS,
        spawn_rate=SPAWN_RATE,
        collect=collect,
    )
    s = plugin.last_summary
    sd = s["steady"]
    results = [res for _, res in collect if not res.warmup]
    first_start = min(r.start_wall for r in results)
    lag_s = lag_ms(s) / 1000
    # The window opens when the requests in flight first reach -u (the last user's first
    # request), a ramp-up after the first request.
    events = sorted(
        [(r.start_wall, 1) for r in results]
        + [(r.start_wall + r.e2e_ms / 1000, -1) for r in results],
        key=lambda e: (e[0], e[1]),
    )
    in_flight, full_at = 0, None
    for at, delta in events:
        in_flight += delta
        if in_flight == USERS:
            full_at = at
            break
    assert full_at is not None and full_at - first_start >= RAMP_S / 2
    assert full_at - lag_s - 0.01 <= sd["from_wall"] <= full_at + lag_s + 0.01
    # ... and closes when the first user had sent its 50 requests.
    assert sd["until_wall"] is not None and sd["until_wall"] < max(
        r.start_wall + r.e2e_ms / 1000 for r in results
    )

    def inside(r) -> bool:
        end = r.start_wall + r.e2e_ms / 1000
        return r.start_wall >= sd["from_wall"] and end <= sd["until_wall"]

    ramp = [r for r in results if r.start_wall < sd["from_wall"]]
    assert len(ramp) >= 10  # the first users' requests during the 1.5 s ramp
    assert sd["requests"] == sum(inside(r) for r in results) < s["requests"]
    assert sd["output_tokens"] == sum(r.output_tokens for r in results if inside(r))
    assert 0 < sd["share_of_run_percent"] < 100
    assert "steady window:" in capsys.readouterr().out
