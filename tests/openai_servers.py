"""Tiny real OpenAI-compatible HTTP servers on the loopback address, each misbehaving one way.

They speak just enough of the chat-completions API (``GET /v1/models``, streaming
``POST /v1/chat/completions`` as server-sent events) to be a lane; every request they got is kept,
so a test can also prove that nothing reached a server.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORDS = ["Loops", " repeat", " a", " block", " for", " each", " item", " in", " a", " sequence", "."]


@dataclass
class Behaviour:
    """How the server answers a completion: ``good``, ``drop`` (closes after a few tokens), ``http500``,
    ``hang`` (reads the request, never answers), ``no_usage_option`` (HTTP 400 for stream_options)."""

    kind: str = "good"
    tokens: int = len(WORDS)
    requests: list[dict] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)


def _handler(behaviour: Behaviour) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _json(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # http.server's naming
            behaviour.paths.append(self.path)
            models = [{"id": f"{behaviour.kind}-model", "object": "model"}]
            self._json(200, {"object": "list", "data": models})

        def do_POST(self) -> None:
            behaviour.paths.append(self.path)
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            behaviour.requests.append(body)
            if behaviour.kind == "hang":
                time.sleep(60)  # the client's timeout ends the wait long before
                return
            if behaviour.kind == "http500":
                self._json(500, {"error": {"message": "model crashed (test server)", "type": "server_error"}})
                return
            if behaviour.kind == "no_usage_option" and "stream_options" in body:
                self._json(400, {"error": {"message": "unknown field stream_options", "type": "invalid"}})
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            wanted = min(behaviour.tokens, int(body.get("max_tokens") or behaviour.tokens))
            for index in range(wanted):
                self._event({"choices": [{"index": 0, "delta": {"content": WORDS[index % len(WORDS)]},
                                          "finish_reason": None}]})
                if behaviour.kind == "drop" and index == 2:
                    self.wfile.flush()
                    self.connection.shutdown(2)  # the server dies mid-answer: no final chunk
                    return
                time.sleep(0.01)
            self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
            if "stream_options" in body:
                self._event({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": wanted,
                                                      "total_tokens": 7 + wanted}})
            self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")

        def _event(self, payload: dict) -> None:
            payload = {"id": "cmpl-test", "object": "chat.completion.chunk", "created": 0,
                       "model": f"{behaviour.kind}-model", **payload}
            self._chunk(f"data: {json.dumps(payload)}\n\n".encode())

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler


class LoopbackServer:
    """A server in a daemon thread; ``url`` is its API base."""

    def __init__(self, kind: str = "good", tokens: int = len(WORDS)) -> None:
        self.behaviour = Behaviour(kind, tokens)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.behaviour))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
