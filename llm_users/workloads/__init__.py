"""Workloads beyond one prompt per request: shared-prefix prompts and trace replay."""
