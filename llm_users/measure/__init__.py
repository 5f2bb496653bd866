"""Records into mergeable figures, no gevent and no Locust: per-request figures, the figure
registry, histograms, aggregates and tallies."""
