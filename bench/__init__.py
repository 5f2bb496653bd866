"""`make bench`: the plugin against the simulator, the simulator's timestamps as ground truth.

Real ``locust -f locustfile.py --headless`` subprocesses, pinned to one core, drive the
built-in simulator pinned to another. Four sections (see ``python -m bench --help``):

* fidelity: the plugin's TTFT and follow latency minus the simulator's own, at 1 to 256
  concurrent streams, and the client's event-loop lag;
* ingest: tokens per second one worker process consumes when whole streams arrive at once;
* distributed: the same ingest with two worker processes;
* memory: peak RSS of the locust process after N tiny requests (it must not grow with N).

``python -m bench.master_scale`` (also part of ``make bench``): one real Locust master with
the plugin, fed realistic 3-second worker reports by 10, 100 and 1,000 simulated workers
over zmq: its CPU per report, bytes per report and merge time.

The driver (``python -m bench``) never imports ``llm_users`` itself (that would
gevent-patch it): the simulator's process wrapper is standard library only and is loaded on
its own. Fidelity runs use ``bench/locustfile.py`` (the plugin unchanged; each request
tagged so that it pairs exactly with the simulator's record); the others the project's
``locustfile.py``.

Tools for a profile: ``python -m bench --profile DIR`` wraps each run in ``py-spy record``;
``python -m bench.stacks DIR/ingest.txt`` reads one; ``python -m bench.hotpath`` times each
stage of the client's read path in-process (µs per token).
"""
