"""An LLM server's own /metrics, scraped over the test: parse, known names, window, scraper;
and a GPU exporter's page (DCGM) the same way: gpu."""

from .gpu import GPU_PORT, gpu_figures, gpu_url
from .names import FAMILIES, GPU_FAMILIES, Known, family_key, lookup
from .parse import MAX_BYTES, MAX_SERIES, NOT_PROMETHEUS, Parsed, parse
from .scraper import ScrapeError, Scraper, fetch, metrics_url, probe
from .window import NOT_REPORTED, Window, histogram_quantile

__all__ = [
    "FAMILIES",
    "GPU_FAMILIES",
    "GPU_PORT",
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
    "gpu_figures",
    "gpu_url",
    "histogram_quantile",
    "lookup",
    "metrics_url",
    "parse",
    "probe",
]
