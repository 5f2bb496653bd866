"""An LLM server's own /metrics, scraped over the test: parse, known names, window, scraper."""

from .names import FAMILIES, Known, family_key, lookup
from .parse import MAX_BYTES, MAX_SERIES, NOT_PROMETHEUS, Parsed, parse
from .scraper import ScrapeError, Scraper, fetch, metrics_url, probe
from .window import NOT_REPORTED, Window, histogram_quantile

__all__ = [
    "FAMILIES",
    "MAX_BYTES",
    "MAX_SERIES",
    "NOT_PROMETHEUS",
    "NOT_REPORTED",
    "Known",
    "Parsed",
    "ScrapeError",
    "Scraper",
    "Window",
    "family_key",
    "fetch",
    "histogram_quantile",
    "lookup",
    "metrics_url",
    "parse",
    "probe",
]
