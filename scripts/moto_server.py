"""The AWS emulator for the test suite: moto's server, with every request applied atomically.

moto's server handles requests on parallel threads without locking its backends, so concurrent
writes race: sixteen clients each adding 1 to a DynamoDB counter a hundred times end below 1600,
where DynamoDB guarantees exactly 1600. This wrapper serialises requests, as the real services
behave atomically per request. SQS long polls are emulated by short polls under the lock with
the lock released in between, so a waiting receive never blocks the other clients.

Usage: moto_server.py HOST PORT
"""

import io
import json
import sys
import threading
import time

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

LOCK = threading.Lock()
POLL_INTERVAL = 0.05


def call(app, environ, body):
    environ = dict(environ)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    captured = {}

    def start_response(status, headers, exc_info=None):
        captured["status"] = status
        captured["headers"] = headers
        return lambda data: None

    with LOCK:
        chunks = app(environ, start_response)
        try:
            payload = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
    return captured["status"], captured["headers"], payload


def serialised(app):
    def wrapped(environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        wait = 0
        if target == "AmazonSQS.ReceiveMessage":
            request = json.loads(body or b"{}")
            wait = int(request.get("WaitTimeSeconds") or 0)
            request["WaitTimeSeconds"] = 0
            body = json.dumps(request).encode()
        deadline = time.monotonic() + wait
        while True:
            status, headers, payload = call(app, environ, body)
            if wait == 0 or time.monotonic() >= deadline or not status.startswith("200"):
                break
            if json.loads(payload or b"{}").get("Messages"):
                break
            time.sleep(POLL_INTERVAL)
        start_response(status, headers)
        return [payload]

    return wrapped


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, serialised(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
