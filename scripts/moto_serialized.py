"""moto's server, with each DynamoDB request handled on its own.

moto answers requests on many threads, and its DynamoDB backend checks a condition and
then writes with no lock held: two conditional writes (or transactions) racing on one
item can both succeed, which DynamoDB never allows. Our compare-and-swap commits and
KCL lease takes are tested by racing exactly so, and failed now and then on that gap.
Serializing DynamoDB's requests gives back the service's per-request atomicity; every
other service stays concurrent. Otherwise this starts moto as `moto_server` does.

    python moto_serialized.py HOST PORT
"""

import os
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


class SerializedDynamoDB:
    """A WSGI wrapper: DynamoDB requests (`X-Amz-Target: DynamoDB_...`) run one at a time."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
            with self.lock:
                # The answer is produced inside the lock: the whole request is one step.
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, SerializedDynamoDB(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
