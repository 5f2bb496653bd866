"""One request on the wire, no Locust: connection, poller, kernel clock, SSE parser, the
endpoints' shapes, and the client that turns bytes into a request record."""
