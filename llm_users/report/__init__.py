"""Snapshots into people's and machines' outputs: the summary, the HTML report, the JSON and
records writers, and the comparison of runs."""
