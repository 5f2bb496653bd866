"""Helpers to run a real third-party OpenAI-compatible server (transformers serve)."""
