"""The plugin's Locust options, and one validated, frozen :class:`Settings` built from them.

Options are added to Locust's own parser (so they work on the command line, in config
files, as ``LOCUST_*`` environment variables and in the web UI form). Nothing is checked
at import; :meth:`Settings.from_options` checks everything once and raises
:class:`~llm_users.errors.ConfigError` naming the option and the bad value.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from typing import Any

import orjson

from .errors import ConfigError
from .prompts import PROMPT_TYPES

__all__ = ["Secret", "Settings", "add_arguments"]

# The seed also sends repetition_penalty 1.0: that is the neutral value (no penalty), and it is
# not an OpenAI field (OpenAI and `transformers serve` reject it), so it is left out.
SEED_SAMPLING = {"temperature": 0.01, "top_p": 0.3}
SEED_SYSTEM_PROMPT = "You are a helpful assistant."


class Secret(str):
    """A string option whose value is kept out of sight.

    It *is* the empty string to everything that prints, serialises or renders it (Locust's
    web UI form defaults, JSON, logs); the value is only reachable as ``.value``.
    """

    value: str

    def __new__(cls, value: object = "") -> Secret:
        self = super().__new__(cls, "")
        self.value = getattr(value, "value", None) or str(value or "")
        return self

    def __repr__(self) -> str:
        return "Secret('***')" if self.value else "Secret('')"


def add_arguments(parser: Any) -> None:
    """Register the options on Locust's parser (idempotent: the web UI calls the hook again)."""
    if any("--prompt-type" in a.option_strings for a in parser._actions):
        return

    def add(flag: str, **kw: Any) -> None:
        # Every option also reads LOCUST_<NAME> (--max-tokens: LOCUST_MAX_TOKENS).
        env = "LOCUST_" + flag.lstrip("-").upper().replace("-", "_")
        parser.add_argument(flag, env_var=env, **kw)

    add(
        "--prompt-type",
        default="0",
        choices=sorted(PROMPT_TYPES),
        help="The seed's prompt set: 0|short = one short question, 1|long = a ~2,000-character "
        "article to summarise, 2|random = one of four short questions",
    )
    add(
        "--prompt-language",
        default="en",
        choices=["en", "zh"],
        help="Language of the built-in prompts",
    )
    add(
        "--max-tokens",
        type=int,
        default=128,
        help="max_tokens sent with every request (0: not sent)",
    )
    add(
        "--stream",
        action="store_true",
        default=False,
        help="Stream responses (SSE) and measure TTFT, ITL, TPOT",
    )
    add(
        "--tokenizer",
        default="",
        help="Hugging Face tokenizer folder or name, to count follow tokens as the seed does "
        "(loaded once, before users start; local to each worker)",
    )
    add(
        "--model",
        default="",
        help="Model name sent in requests (default: the first model GET /v1/models lists)",
    )
    add(
        "--api-key",
        type=Secret,
        default=Secret(""),
        is_secret=True,
        help="API key sent as 'Authorization: Bearer' (default: $OPENAI_API_KEY)",
    )
    add(
        "--requests-per-user",
        type=int,
        default=0,
        help="Each user sends N requests then stops; the test ends when all are done (0: no limit)",
    )
    add(
        "--endpoint",
        default="chat",
        choices=["chat", "completions"],
        help="chat = /v1/chat/completions, completions = /v1/completions",
    )
    add(
        "--system-prompt",
        default=SEED_SYSTEM_PROMPT,
        help="System message for chat requests (empty: none)",
    )
    add(
        "--sampling",
        default="seed",
        choices=["seed", "none"],
        help="seed = send the seed's temperature 0.01 and top_p 0.3; none = send no sampling "
        "parameters (the server's defaults)",
    )
    add(
        "--extra-body",
        default="",
        help="JSON object merged into every request body, e.g. '{\"ignore_eos\": true}'",
    )
    add(
        "--header",
        action="append",
        default=[],
        include_in_web_ui=False,
        help="Extra request header 'Name: value' (repeatable)",
    )
    add(
        "--stream-usage",
        default="on",
        choices=["on", "off"],
        help="Ask for usage in streams (stream_options.include_usage)",
    )
    add(
        "--first-token-timeout",
        type=float,
        default=120.0,
        help="Seconds to wait for the first token before failing the request",
    )
    add(
        "--request-timeout",
        type=float,
        default=600.0,
        help="Seconds for a whole request before failing it",
    )
    add(
        "--connect-timeout",
        type=float,
        default=10.0,
        include_in_web_ui=False,
        help="Seconds to open a connection",
    )
    add(
        "--insecure",
        action="store_true",
        default=False,
        include_in_web_ui=False,
        help="Do not verify TLS certificates (warns)",
    )
    add(
        "--ca-bundle",
        default="",
        include_in_web_ui=False,
        help="PEM file of CA certificates to verify the server with",
    )
    add(
        "--preflight",
        default="on",
        choices=["on", "off"],
        help="Check the server (GET /v1/models) before the test starts",
    )
    add(
        "--summary-json",
        default="",
        include_in_web_ui=False,
        help="Write the summary as JSON to this file at test stop",
    )
    add(
        "--records",
        default="",
        include_in_web_ui=False,
        help="Write one JSON line per request to this file, as the test runs",
    )
    add(
        "--dataset",
        default="",
        help="Prompts from a file: text (one per line), JSONL ({prompt} or {messages}) or "
        "ShareGPT JSON (first human turn); replaces --prompt-type",
    )
    add(
        "--dataset-format",
        default="auto",
        choices=["auto", "text", "jsonl", "sharegpt"],
        include_in_web_ui=False,
        help="Format of --dataset",
    )
    add(
        "--dataset-order",
        default="sequential",
        choices=["sequential", "shuffle"],
        include_in_web_ui=False,
        help="Order prompts are sent in (shuffle: seeded, different per worker)",
    )
    add(
        "--dataset-output-len",
        default="off",
        choices=["on", "off"],
        include_in_web_ui=False,
        help="ShareGPT: use the recorded answer's length as that request's max_tokens",
    )
    add(
        "--input-tokens",
        type=int,
        default=0,
        help="Synthetic prompts of exactly N tokens by --tokenizer, different per request",
    )
    add(
        "--input-tokens-spread",
        type=float,
        default=0.0,
        include_in_web_ui=False,
        help="Draw each prompt's length from N*(1±spread), e.g. 0.2",
    )
    add(
        "--request-rate",
        type=float,
        default=0.0,
        help="Open loop: requests/s for the whole test (all workers); -u is the pool of users "
        "that can be in flight (0: closed loop, each user back to back)",
    )
    add(
        "--arrivals",
        default="poisson",
        choices=["poisson", "constant"],
        help="Open loop arrival process",
    )
    add(
        "--seed",
        default="",
        include_in_web_ui=False,
        help="Make random draws repeatable: arrival times, shuffled dataset order, synthetic "
        "and random prompts (each worker its own stream, from this seed and its index)",
    )
    add(
        "--sweep",
        default="",
        help="Step through these user counts (or rates with --sweep-of rate), e.g. 1,2,4,8; "
        "one summary row per step",
    )
    add(
        "--sweep-of",
        default="users",
        choices=["users", "rate"],
        help="What --sweep steps: the user count or the open-loop request rate",
    )
    add(
        "--sweep-step-time",
        type=float,
        default=30.0,
        help="Seconds per sweep step",
    )
    add(
        "--sweep-step-requests",
        type=int,
        default=0,
        help="End a sweep step once this many requests of it have finished (0: by time)",
    )
    add(
        "--slo",
        default="",
        help="Service-level objectives for goodput, e.g. ttft_ms=500,tpot_ms=50,e2e_ms=20000",
    )
    add(
        "--slo-target",
        type=float,
        default=0.0,
        help="Percent of requests that must meet every --slo; below it the exit code is 3",
    )
    add(
        "--max-failing-seconds",
        type=float,
        default=10.0,
        include_in_web_ui=False,
        help="Stop the test when every request has failed for this long (0: keep going)",
    )
    add(
        "--html-report",
        default="",
        include_in_web_ui=False,
        help="Write an offline HTML report (charts, percentiles, sweep curve) at test stop",
    )
    add(
        "--print-requests",
        action="store_true",
        default=False,
        include_in_web_ui=False,
        help="Print one line per finished request in the seed's format",
    )


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off", "none"):
        return False
    raise ConfigError(f"--{name} must be true or false, got {value!r}")


def _seed(value: Any) -> int | None:
    if value is None or str(value).strip() == "":
        return None
    return _int("seed", value)


def _int(name: str, value: Any, minimum: int = 0) -> int:
    try:
        n = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise ConfigError(f"--{name} must be a whole number, got {value!r}") from None
    if n < minimum:
        raise ConfigError(f"--{name} must be >= {minimum}, got {n}")
    return n


def _float(name: str, value: Any, positive: bool = True) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"--{name} must be a number, got {value!r}") from None
    if not math.isfinite(x):  # NaN passes every later "< 0" check; inf is no duration
        raise ConfigError(f"--{name} must be a finite number, got {value!r}")
    if positive and not x > 0:
        raise ConfigError(f"--{name} must be > 0, got {value!r}")
    return x


def _choice(name: str, value: Any, choices: Any) -> str:
    text = str(value).strip()
    if text not in choices:
        raise ConfigError(f"--{name} must be one of {', '.join(sorted(choices))}; got {value!r}")
    return text


def _extra_body(value: Any) -> dict[str, Any]:
    text = str(value or "").strip()
    if not text:
        return {}
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"--extra-body is not valid JSON ({exc}): {text[:80]!r}") from None
    if not isinstance(obj, dict):
        raise ConfigError(f"--extra-body must be a JSON object, got {text[:80]!r}")
    return obj


def _headers(values: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(values, str):
        values = [values] if values else []
    out = []
    for raw in values or []:
        name, sep, val = str(raw).partition(":")
        if not sep or not name.strip() or any(c in name for c in " \t\r\n"):
            raise ConfigError(f"--header must look like 'Name: value', got {str(raw)[:80]!r}")
        if "\r" in val or "\n" in val:
            raise ConfigError(f"--header value must be on one line: {name.strip()!r}")
        out.append((name.strip(), val.strip()))
    return tuple(out)


from .figures import SLO_KEYS  # noqa: E402  (the figures registry says which are SLO keys)


def _slo(value: Any) -> dict[str, float]:
    text = str(value or "").strip()
    out: dict[str, float] = {}
    if not text:
        return out
    for part in text.split(","):
        name, sep, num = part.partition("=")
        name = name.strip()
        if not sep or name not in SLO_KEYS:
            raise ConfigError(
                f"--slo must look like ttft_ms=500,tpot_ms=50 (keys: {', '.join(SLO_KEYS)}); "
                f"got {part.strip()!r}"
            )
        try:
            limit = float(num)
        except ValueError:
            raise ConfigError(f"--slo {name} needs a number of ms, got {num.strip()!r}") from None
        if not limit > 0:
            raise ConfigError(f"--slo {name} must be > 0, got {num.strip()!r}")
        out[name] = limit
    return out


def _sweep(value: Any) -> tuple[float, ...]:
    text = str(value or "").strip()
    if not text:
        return ()
    try:
        steps = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"--sweep must be numbers separated by commas, got {text!r}") from None
    if not steps or any(not x > 0 for x in steps):
        raise ConfigError(f"--sweep steps must all be > 0, got {text!r}")
    return steps


@dataclass(frozen=True)
class Settings:
    """Everything a user needs, validated. Built once per test start."""

    prompt_type: str = "short"
    prompt_language: str = "en"
    max_tokens: int | None = 128
    stream: bool = False
    tokenizer: str = ""
    model: str = ""
    api_key: str = field(default="", repr=False)
    requests_per_user: int = 0
    endpoint: str = "chat"
    system_prompt: str = SEED_SYSTEM_PROMPT
    extra_body: dict[str, Any] = field(default_factory=dict)
    headers: tuple[tuple[str, str], ...] = ()
    stream_usage: bool = True
    first_token_timeout: float = 120.0
    request_timeout: float = 600.0
    connect_timeout: float = 10.0
    insecure: bool = False
    ca_bundle: str = ""
    preflight: bool = True
    summary_json: str = ""
    records: str = ""
    print_requests: bool = False
    dataset: str = ""
    dataset_format: str = "auto"
    dataset_order: str = "sequential"
    dataset_output_len: bool = False
    input_tokens: int = 0
    input_tokens_spread: float = 0.0
    request_rate: float = 0.0
    arrivals: str = "poisson"
    seed: int | None = None
    sweep: tuple[float, ...] = ()
    sweep_of: str = "users"
    sweep_step_time: float = 30.0
    sweep_step_requests: int = 0
    slo: dict[str, float] = field(default_factory=dict)
    slo_target: float = 0.0
    max_failing_seconds: float = 10.0
    html_report: str = ""

    @classmethod
    def from_options(
        cls, opts: Any, environ: dict[str, str] | None = None, master_key: str = ""
    ) -> Settings:
        """Validate ``opts``. Key: --api-key, else the master's (workers), else $OPENAI_API_KEY."""
        env = os.environ if environ is None else environ
        g = lambda name, default=None: getattr(opts, name, default)  # noqa: E731
        max_tokens = _int("max-tokens", g("max_tokens", 128))
        sampling = _choice("sampling", g("sampling", "seed") or "seed", ("seed", "none"))
        extra = dict(SEED_SAMPLING) if sampling == "seed" else {}
        extra.update(_extra_body(g("extra_body", "")))
        key = getattr(g("api_key", ""), "value", None) or str(g("api_key", "") or "")
        key = key or master_key or env.get("OPENAI_API_KEY", "")
        ca_bundle = str(g("ca_bundle", "") or "")
        if ca_bundle and not os.path.isfile(ca_bundle):
            raise ConfigError(f"--ca-bundle file not found: {ca_bundle!r}")
        s = cls(
            prompt_type=PROMPT_TYPES[_choice("prompt-type", g("prompt_type", "0"), PROMPT_TYPES)],
            prompt_language=_choice("prompt-language", g("prompt_language", "en"), ("en", "zh")),
            max_tokens=max_tokens or None,
            stream=_bool("stream", g("stream", False)),
            tokenizer=str(g("tokenizer", "") or "").strip(),
            model=str(g("model", "") or "").strip(),
            api_key=key.strip(),
            requests_per_user=_int("requests-per-user", g("requests_per_user", 0)),
            endpoint=_choice("endpoint", g("endpoint", "chat"), ("chat", "completions")),
            system_prompt=str(g("system_prompt", SEED_SYSTEM_PROMPT) or ""),
            extra_body=extra,
            headers=_headers(g("header", [])),
            stream_usage=_choice("stream-usage", g("stream_usage", "on"), ("on", "off")) == "on",
            first_token_timeout=_float("first-token-timeout", g("first_token_timeout", 120.0)),
            request_timeout=_float("request-timeout", g("request_timeout", 600.0)),
            connect_timeout=_float("connect-timeout", g("connect_timeout", 10.0)),
            insecure=_bool("insecure", g("insecure", False)),
            ca_bundle=ca_bundle,
            preflight=_choice("preflight", g("preflight", "on"), ("on", "off")) == "on",
            summary_json=str(g("summary_json", "") or ""),
            records=str(g("records", "") or ""),
            print_requests=_bool("print-requests", g("print_requests", False)),
            dataset=str(g("dataset", "") or "").strip(),
            dataset_format=_choice(
                "dataset-format", g("dataset_format", "auto"), ("auto", "text", "jsonl", "sharegpt")
            ),
            dataset_order=_choice(
                "dataset-order", g("dataset_order", "sequential"), ("sequential", "shuffle")
            ),
            dataset_output_len=_bool("dataset-output-len", g("dataset_output_len", "off")),
            input_tokens=_int("input-tokens", g("input_tokens", 0)),
            input_tokens_spread=_float(
                "input-tokens-spread", g("input_tokens_spread", 0.0), positive=False
            ),
            request_rate=_float("request-rate", g("request_rate", 0.0), positive=False),
            arrivals=_choice("arrivals", g("arrivals", "poisson"), ("poisson", "constant")),
            seed=_seed(g("seed", "")),
            sweep=_sweep(g("sweep", "")),
            sweep_of=_choice("sweep-of", g("sweep_of", "users"), ("users", "rate")),
            sweep_step_time=_float("sweep-step-time", g("sweep_step_time", 30.0)),
            sweep_step_requests=_int("sweep-step-requests", g("sweep_step_requests", 0)),
            slo=_slo(g("slo", "")),
            slo_target=_float("slo-target", g("slo_target", 0.0), positive=False),
            max_failing_seconds=_float(
                "max-failing-seconds", g("max_failing_seconds", 10.0), positive=False
            ),
            html_report=str(g("html_report", "") or ""),
        )
        s._check()
        return s

    def _check(self) -> None:
        """Checks that involve several options."""
        if self.request_rate < 0:
            raise ConfigError(f"--request-rate must be >= 0, got {self.request_rate:g}")
        if not 0 <= self.slo_target <= 100:
            raise ConfigError(f"--slo-target is a percentage (0-100), got {self.slo_target:g}")
        if self.slo_target and not self.slo:
            raise ConfigError("--slo-target needs --slo (e.g. --slo ttft_ms=500)")
        if self.max_failing_seconds < 0:
            raise ConfigError(
                f"--max-failing-seconds must be >= 0, got {self.max_failing_seconds:g}"
            )
        if not 0 <= self.input_tokens_spread < 1:
            raise ConfigError(
                f"--input-tokens-spread must be in [0, 1), got {self.input_tokens_spread:g}"
            )
        if self.input_tokens and not self.tokenizer:
            raise ConfigError(f"--input-tokens {self.input_tokens} needs --tokenizer to count them")
        if self.input_tokens and self.dataset:
            raise ConfigError(
                "--input-tokens and --dataset are exclusive: choose one prompt source"
            )
        if self.dataset and not os.path.isfile(self.dataset):
            raise ConfigError(f"--dataset file not found: {self.dataset!r}")
        if self.sweep_of == "rate" and self.sweep and not self.request_rate:
            object.__setattr__(self, "request_rate", self.sweep[0])
        if self.sweep_of == "users" and any(x != int(x) for x in self.sweep):
            raise ConfigError(f"--sweep user counts must be whole numbers, got {self.sweep}")

    def seed_for(self, purpose: str, index: int = 0) -> int | None:
        """A seed of its own for each random stream (``purpose``) of each worker (``index``),
        all derived from --seed; None (a fresh draw) without --seed."""
        if self.seed is None:
            return None
        digest = hashlib.sha256(f"{self.seed}/{purpose}/{index}".encode()).digest()
        return int.from_bytes(digest[:8], "big")

    @property
    def mode(self) -> str:
        return "streaming" if self.stream else "non-streaming"

    def request_headers(self) -> tuple[tuple[str, str], ...]:
        """Headers for every request; the key only here, never in anything printed."""
        auth = (("Authorization", f"Bearer {self.api_key}"),) if self.api_key else ()
        return auth + self.headers
