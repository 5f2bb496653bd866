"""The plugin in Locust's web UI: the LLM tab, the /llm page, its live series, our /metrics."""
