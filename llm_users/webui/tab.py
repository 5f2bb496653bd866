"""The plugin in Locust's web UI: an "LLM" tab, an /llm page with charts, JSON and CSV.

The tab's rows ride in Locust's ``/stats/requests`` JSON (``extended_stats``).
"""

from __future__ import annotations

import copy
import csv
import io
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import gevent
from flask import Blueprint, Response, jsonify, request, send_file, send_from_directory
from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING, MasterRunner
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..errors import ConfigError
from ..measure.figures import FIGURES, fmt, lookup, registry_json
from ..measure.histogram import PERCENTILES
from ..report.safe_text import csv_cell
from ..report.summary import seed_lines, summary_dict
from .exporter import make_registry, render
from .live import LiveView
from .live_series import LiveSeries

__all__ = ["LLMWebView", "install_web_ui"]

log = logging.getLogger("llm_users")
TAB = "llm"
PAGE = Path(__file__).with_name("llm.html")
TAB_SCRIPT = Path(__file__).with_name("tab.js")  # makes the tab's /llm cell a link
VENDOR = PAGE.parent / "vendor"
SAMPLE_S = 2.0  # chart resolution
MASTER_WINDOW_S = 6.0  # workers report every ~3 s
MAX_POINTS = 3600  # two hours at SAMPLE_S; memory stays bounded
STOP_WAIT_S = 5.0
TEXT_TYPES = ("application/json", "text/html", "text/csv", "text/plain")
COLUMNS = [("figure", "Figure"), ("value", "Value / count"), ("mean", "Mean")]
COLUMNS += [(f"p{p}", f"p{p}") for p in PERCENTILES] + [("max", "Max")]


# Locust's own fields of the start form (its React app posts them in snake case).
LOCUST_FORM_FIELDS = frozenset(
    ("user_count", "spawn_rate", "host", "run_time", "profile", "user_classes", "shape_class")
)


# The form's first fields: what a request sends (the rest follow in --help's group order).
FORM_FIRST = ("stream", "max_tokens", "model", "prompt_type", "endpoint")


def form_order(extra: dict[str, Any]) -> dict[str, Any]:
    """The start form's extra fields in the order --help groups them, the request's first
    (Locust's form lists them in the order of this dict; a locustfile's own come last)."""
    from ..options.declare import GROUPS, declared
    from ..options.settings import Settings

    groups = list(GROUPS)
    rank = {o.dest: (groups.index(o.group), i) for i, (_n, o) in enumerate(declared(Settings))}
    rank |= {dest: (-1, i) for i, dest in enumerate(FORM_FIRST)}
    last = (len(groups), 0)
    return dict(sorted(extra.items(), key=lambda kv: rank.get(kv[0], last)))


def form_error(opts: Any, form: Any) -> str | None:
    """The one-line reason the values posted by the start form cannot start a test, or None.

    The form's values go onto a copy of the parsed options and through the same checks as
    the command line's (:meth:`Settings.from_options`): Locust's /swarm would otherwise
    answer a value it cannot convert (``abc`` for a number) with a 500.
    """
    from ..options.declare import declared
    from ..options.settings import Settings

    ours = {o.dest for _n, o in declared(Settings)}
    trial = copy.copy(opts)
    for key, raw in form.items():
        if key in LOCUST_FORM_FIELDS or not hasattr(trial, key):
            continue
        if key in ours:
            setattr(trial, key, raw)  # Opt.read parses the text as from the command line
            continue
        current = getattr(trial, key)  # a locustfile's own: converted as Locust's /swarm does
        if current is not None and not isinstance(current, (bool, list)):
            try:
                type(current)(raw)
            except (TypeError, ValueError):
                kind = type(current).__name__
                return f"{key.replace('_', ' ')}: {raw[:80]!r} is not a valid {kind}"
    try:
        Settings.from_options(trial)
    except ConfigError as exc:
        return str(exc)
    return None


def form_fields() -> frozenset[str]:
    """Every field the start form shows: Locust's own and each option added with
    ``include_in_web_ui`` (ours declared ``web=True``, and a locustfile's own)."""
    from locust.argument_parser import get_parser  # the web UI itself builds it per page

    from ..options.declare import declared
    from ..options.settings import Settings

    ours = (o.dest for _name, o in declared(Settings) if o.web)
    return LOCUST_FORM_FIELDS | frozenset(ours) | frozenset(get_parser().args_included_in_web_ui)


def install_web_ui(env: Any, view: LiveView) -> LLMWebView:
    """Add the LLM tab, the /llm page and its routes to this Environment's web UI."""
    return LLMWebView(env, view).install()


def _row(figure: str, value: Any, digits: int | None = 2) -> dict[str, str]:
    return {"figure": figure, "value": fmt(value, digits)}


def table_rows(
    s: dict[str, Any], status: str, page: str = "/llm", setup_error: str | None = None
) -> list[dict[str, str]]:
    """The tab's rows (no "name" key: the UI sorts by it, and these have a reading order)."""
    rows = [_row("Status", status)]
    if setup_error:  # the test stopped before any request: say why where the user looks
        rows.append({"figure": "Setup error", "value": setup_error})
    if not s:
        return rows
    absent = object()
    for f in FIGURES:
        v = lookup(s, f.key, absent)
        if not f.tab or v is absent:
            continue
        if f.kind == "distribution":
            d = v
            if d:
                cells = {k: f.fmt(d[k]) for k, _ in COLUMNS[2:]}
                rows.append({"figure": f.with_unit, "value": fmt(d["count"]), **cells})
            continue
        rows.append(_row(f.with_unit, v, f.digits))
        if f.key == "failures":
            rows += [_row(f"Failures: {kind}", n) for kind, n in s["failures_by_kind"].items()]
    rows.append(_row("Charts over time, final summary", f"open {page} (also under Download Data)"))
    return rows


def csv_rows(s: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """One (figure, value) row per figure; nested figures get dotted names."""
    out: list[tuple[str, str]] = []
    for key, value in s.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out += csv_rows(value, name + ".")
        elif isinstance(value, list):
            out.append((name, "; ".join(map(str, value))))
        else:
            out.append((name, "" if value is None else str(value)))
    return out


class LLMWebView:
    """Live and final LLM figures for the web UI, plus a bounded time series for charts."""

    def __init__(self, env: Any, view: LiveView) -> None:
        self.view = view
        self.env = env
        self.live = LiveSeries(SAMPLE_S, MAX_POINTS)  # the window is set at test start
        self._cached: tuple[float, dict[str, Any]] = (0.0, {})
        self.active = False  # between our test_start and test_stop listeners
        self.page_path = "/llm"
        v = view
        self.registry = make_registry(v.aggregate, v.users, v.loop_lag_s)  # for GET /metrics

    def install(self) -> LLMWebView:
        web_ui = self.env.web_ui
        assert web_ui is not None and web_ui.app is not None
        web_ui.template_args.update(
            extended_tabs=[{"key": TAB, "title": "LLM"}],
            extended_tables=[
                {"key": TAB, "structure": [{"key": k, "title": t} for k, t in COLUMNS]}
            ],
            extended_csv_files=[
                {"href": "./llm/summary.csv", "title": "Download LLM summary CSV"},
                {"href": "./llm/summary.json", "title": "Download LLM summary JSON"},
                {"href": "./llm", "title": "LLM charts and final summary"},
            ],
        )
        opts = self.env.parsed_options
        base = getattr(opts, "web_base_path", None)
        self.page_path = f"{base or ''}/llm"
        bp = Blueprint("llm_users", __name__, url_prefix=base)
        auth = web_ui.auth_required_if_enabled
        bp.add_url_rule("/llm", "page", auth(self.page))
        bp.add_url_rule("/llm/summary.json", "summary_json", auth(self.summary_json))
        bp.add_url_rule("/llm/summary.csv", "summary_csv", auth(self.summary_csv))
        bp.add_url_rule("/llm/state.json", "state_json", auth(self.state_json))
        bp.add_url_rule("/llm/figures.json", "figures_json", auth(self.figures_json))
        bp.add_url_rule("/llm/vendor/<path:name>", "vendor", auth(self.vendor))
        bp.add_url_rule("/llm/tab.js", "tab_js", auth(self.tab_js))
        bp.add_url_rule("/metrics", "metrics", auth(self.metrics))
        web_ui.app.register_blueprint(bp)
        web_ui.app.before_request(self._guard_swarm)
        web_ui.app.after_request(self._after_request)
        # The form lists the extra options in the order of this dict, but Flask's tojson
        # sorts keys (an alphabetical form): keep the order form_order gives.
        web_ui.app.jinja_env.policies["json.dumps_kwargs"] = {"sort_keys": False}
        update = web_ui.update_template_args

        def update_template_args() -> None:
            update()
            extra = web_ui.template_args.get("extra_options") or {}
            web_ui.template_args["extra_options"] = form_order(extra)

        web_ui.update_template_args = update_template_args
        ev = self.env.events
        ev.test_start.add_listener(self._on_test_start)  # after the plugin's: total is fresh
        ev.test_stop.add_listener(self._on_test_stop)  # after the plugin's: the final summary
        gevent.spawn(self._sampler)
        return self

    # -- figures ---------------------------------------------------------------------------
    @property
    def state(self) -> str:
        runner = self.env.runner
        return getattr(runner, "state", "") or ""

    def status(self) -> str:
        if self.view.final() is not None:
            return "final"
        return "live" if self.active and self.view.configured() else "idle"

    def summary(self) -> dict[str, Any]:
        """The final summary after a test, the live one during it; {} before any."""
        final = self.view.final()
        if final is not None:
            return final
        if self.status() != "live":
            return {}
        now = time.monotonic()
        if now - self._cached[0] > 1.0:  # several pollers share one computation
            self._cached = (now, summary_dict(self.view.aggregate(), self.view.info()))
        return self._cached[1]

    def seed_text(self) -> list[str]:
        if self.status() == "idle" or not self.view.configured():
            return []
        return seed_lines(self.view.aggregate(), self.view.info())

    def series(self) -> dict[str, list[Any]]:
        """The charts' points: one list per field of :data:`~llm_users.webui.live_series.FIELDS`."""
        return self.live.columns()

    def _sample(self) -> None:
        users = getattr(self.env.runner, "user_count", 0) or 0
        self.live.sample(self.view.aggregate(), users, time.time())

    def _sampler(self) -> None:
        while True:
            gevent.sleep(SAMPLE_S)
            if self.active:
                self._sample()

    def _on_test_start(self, **_kw: Any) -> None:
        self.live.clear()
        # a master hears from workers every ~3 s: a shorter window would alias
        self.live.window_s = (
            MASTER_WINDOW_S if isinstance(self.env.runner, MasterRunner) else SAMPLE_S
        )
        self._cached = (0.0, {})
        self.active = True
        self._sample()

    def _on_test_stop(self, **_kw: Any) -> None:
        self._sample()
        self.active = False

    # -- routes ----------------------------------------------------------------------------
    def page(self) -> Response:
        return send_file(PAGE, mimetype="text/html", max_age=0)

    def tab_js(self) -> Response:
        return send_file(TAB_SCRIPT, mimetype="text/javascript", max_age=0)

    def figures_json(self) -> Response:
        return jsonify(registry_json())

    def vendor(self, name: str) -> Response:
        """The charting library, served from the package: the page works offline."""
        return send_from_directory(VENDOR, name, max_age=3600)

    def metrics(self) -> Response:
        """The load generator's own figures in the Prometheus text format (exporter.py)."""
        return Response(render(self.registry), content_type=CONTENT_TYPE_LATEST)

    def summary_json(self) -> Response:
        return jsonify(self.summary())

    def summary_csv(self) -> Response:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(("figure", "value"))
        writer.writerows((csv_cell(k), csv_cell(v)) for k, v in csv_rows(self.summary()))
        resp = Response(buf.getvalue(), mimetype="text/csv")
        resp.headers["Content-Disposition"] = "attachment; filename=llm_summary.csv"
        return resp

    def state_json(self) -> Response:
        summary = self.summary()
        return jsonify(
            status=self.status(), locust_state=self.state, summary=summary,
            seed_lines=self.seed_text(), series=self.series(), server=self.view.server(),
            search=summary.get("search"),  # the probes so far (and the one measuring now)
        )  # fmt: skip

    def _after_request(self, response: Response) -> Response:
        if request.endpoint == "locust.request_stats":
            self._extend_stats(response)
        elif request.endpoint == "locust.index" and response.mimetype == "text/html":
            self._add_tab_script(response)
        return self._scrub(response)

    def _add_tab_script(self, response: Response) -> None:
        """Locust's tables render cells as text: a small script makes the /llm cell a link."""
        if response.direct_passthrough:
            return
        src = f"{self.page_path}/tab.js".encode()
        tag = b'<script defer src="' + src + b'" data-page="' + self.page_path.encode() + b'">'
        body = response.get_data()
        if b"</body>" in body:
            response.set_data(body.replace(b"</body>", tag + b"</script></body>", 1))

    def _guard_swarm(self) -> Response | None:
        """The start form sets only what it shows: Locust's /swarm would take any option
        (an output path, a dataset to send, Locust's own --html) posted by anyone."""
        if request.method != "POST" or request.endpoint != "locust.swarm":
            return None
        shown = form_fields()
        refused = sorted(k for k in request.form if k not in shown)
        if refused:
            names = ", ".join(repr(k[:40]) for k in refused[:5])
            message = f"the start form cannot set {names}: not a field of the form"
        else:
            # checked as the command line is, answered as Locust answers its own bad values
            message = form_error(self.env.parsed_options, request.form) or ""
        if not message:
            return None
        log.warning("llm-users: %s", message)
        answer = {"success": False, "message": f"llm-users: {message}", "host": self.env.host}
        return jsonify(answer)

    def _extend_stats(self, response: Response) -> None:
        data = response.get_json(silent=True)
        if not isinstance(data, dict):
            return
        if data.get("state") in (STATE_STOPPING, STATE_CLEANUP, STATE_STOPPED):
            self._wait_stopped()
            data["state"] = self.state
            data["user_count"] = getattr(self.env.runner, "user_count", 0)
        data["extended_stats"] = [
            {
                "key": TAB,
                "data": table_rows(
                    self.summary(), self.status(), self.page_path, self.view.setup_error()
                ),
            }
        ]
        response.set_data(json.dumps(data))

    def _wait_stopped(self) -> None:
        """Hold a poll that caught the runner stopping until test_stop has run (bounded)."""
        # The UI polls only while spawning/running: a poll answered "stopping" (or "stopped"
        # before the master's test_stop) is its last, and would leave pre-final figures.
        deadline = time.monotonic() + STOP_WAIT_S
        while self.active and time.monotonic() < deadline:
            gevent.sleep(0.1)

    def _scrub(self, response: Response) -> Response:
        """Belt and braces: no API key in anything the web UI serves, whatever echoed it."""
        if response.direct_passthrough or response.mimetype not in TEXT_TYPES:
            return response
        body = response.get_data()
        for key in self._secrets():
            if key.encode() in body:
                body = body.replace(key.encode(), b"***")
                response.set_data(body)
        return response

    def _secrets(self) -> set[str]:
        opts = self.env.parsed_options
        keys = {getattr(getattr(opts, "api_key", None), "value", "") or ""}
        keys |= {os.environ.get("OPENAI_API_KEY", ""), os.environ.get("LOCUST_API_KEY", "")}
        keys.add(self.view.api_key())
        return {k for k in keys if len(k) >= 8}  # a shorter one would mangle the page
