"""A real HTTP receiver for webhooks: http.server in a thread on 127.0.0.1, a free port. It records every POST
(path, headers, raw body) and answers with the status codes queued in `replies` (then 200)."""
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict
    raw: bytes

    @property
    def json(self):
        return json.loads(self.raw)


class WebhookReceiver:
    def __init__(self):
        self.received = []
        self.replies = []  # status codes for the next requests, in order; 200 once empty
        self.always = None  # a status code for every request (a receiver that keeps failing)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.receiver = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def url(self, path="/hook"):
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def status_for_next(self):
        if self.always is not None:
            return self.always
        return self.replies.pop(0) if self.replies else 200


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format, *args):
        pass

    def do_POST(self):
        receiver = self.server.receiver
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        receiver.received.append(Received(self.path, dict(self.headers), raw))
        status = receiver.status_for_next()
        answer = b'{"ok": true}' if status < 300 else b"receiver says no"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
