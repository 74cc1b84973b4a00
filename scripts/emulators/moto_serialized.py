"""moto's server, answering one request at a time.

moto's backends are not thread-safe: its stock server handles requests on many threads, and
two conditional DynamoDB writes to one item can then both pass their conditions (seen here: 25
votes accepted on a competition that closes at 24). Real DynamoDB applies the writes to one
item one after another. This runs the same moto application under one lock, so concurrent
clients still connect and keep their connections alive, but moto sees one request at a time.

It also spares moto two costs per request that profiling the AWS soak found (py-spy, 2026-12-01:
together about a sixth of moto's CPU time, and moto's one core is what the AWS tests wait on):
werkzeug's access log line, and moto listing its own package directory to find a request's
service. Neither changes what moto answers.

One route is added, for the tests: `GET /thisthat/sns/endpoint-messages?arn=ARN` answers
`{"messages": [...]}`, what moto recorded as published to that platform endpoint, oldest
first (`[]` for an endpoint moto never created). AWS has no call to read what a push endpoint
received; moto's own way, `/moto-api/data.json`, serialises every object of every service on
each call (every stored item and object, by reflection), so checking a hundred endpoints at
the end of the AWS soak cost minutes. The route reads the same records moto's dashboard
reads (`PlatformEndpoint.instances_tracked`, deleted endpoints included), for one endpoint.

Usage: python moto_serialized.py HOST PORT
"""

import functools
import json
import logging
import signal
import sys
import threading
import urllib.parse

import werkzeug.serving
from moto import backends
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.sns.models import PlatformEndpoint
from werkzeug.serving import run_simple

# Listed once: the package's directories do not change while the server runs.
_modules = tuple(backends.list_of_moto_modules())
backends.list_of_moto_modules = functools.lru_cache(maxsize=None)(lambda: _modules)
# One access-log line per request, under the logging lock; errors still reach stderr.
logging.getLogger("werkzeug").setLevel(logging.WARNING)

# The tests open a thousand connections at once (the voter race); werkzeug's default listen
# backlog of 128 would leave most of them waiting out their connect timeout.
werkzeug.serving.BaseWSGIServer.request_queue_size = 4096


ENDPOINT_MESSAGES = "/thisthat/sns/endpoint-messages"


def endpoint_messages(environ, start_response):
    """What moto recorded as published to the endpoint named by `?arn=`, oldest first."""
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    arns = query.get("arn", [])
    if len(arns) != 1:
        start_response("400 Bad Request", [("Content-Type", "application/json")])
        return [json.dumps({"error": "give exactly one ?arn="}).encode()]
    messages = [
        message
        for endpoint in PlatformEndpoint.instances_tracked
        if endpoint.arn == arns[0]
        for message in endpoint.messages.values()
    ]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"messages": messages}).encode()]


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def one_at_a_time(environ, start_response):
        with lock:
            if environ.get("PATH_INFO") == ENDPOINT_MESSAGES:
                return endpoint_messages(environ, start_response)
            # Produce the whole response inside the lock: moto may build it lazily.
            return list(app(environ, start_response))

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    run_simple(host, port, one_at_a_time, threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
