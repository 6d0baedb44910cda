"""Stand-in model servers for tests: real HTTP on 127.0.0.1, speaking Ollama's and OpenAI's chat protocols.

`StandIn("ollama")` serves POST /api/chat (JSON, or NDJSON when streaming); `StandIn("openai")` serves
POST /v1/chat/completions (JSON, or SSE when streaming). Knobs: `status` (answer with that HTTP error),
`delay_s` (wait before answering), `chunk_delay_s` (wait between stream chunks), `script` (replies to
give, in order, before falling back to `reply`; e.g. a judge's verdicts), `kill()` (close the listening
socket and every open connection: later calls get "connection refused"), `restart()` (listen again).
Faults: `retry_after_s` and `echo_key` (with `status`), `raw_body` (200 with a body as given, e.g. broken
JSON), `stall_after` (a stream stops after that many chunks for `stall_s`, then the connection is cut).
Log-probabilities (OpenAI kind, unary): a request with `logprobs` gets each reply word as a token at
`logprob` (natural log; None: the stand-in returns none, like Ollama) with a second-best token 2 nats below.
`answers` maps a text found in the last user message to (reply, logprob): right and wrong answers.
Answers per request: `answer` (a function of the request body, e.g. the gold answer to its last user
message) replaces `script` and `reply` for unary calls.
Tools: `tool_calls` (a list of {"name": ..., "arguments": {...}}) makes every answer call those tools
(OpenAI: message.tool_calls with JSON-text arguments, streamed as argument pieces; Ollama: objects).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Kind = Literal["ollama", "openai"]
PATHS = {"ollama": "/api/chat", "openai": "/v1/chat/completions"}


class StandIn:
    """One stand-in backend in a background thread. Token counts: words in, words out."""

    def __init__(self, kind: Kind, reply: str = "hello from the stand-in", model: str = "stand-in"):
        self.kind = kind
        self.reply = reply
        self.model = model
        self.status: int | None = None
        self.delay_s = 0.0
        self.chunk_delay_s = 0.0
        self.unary_extra_s = 0.0  # unary answers only: e.g. the generation time a stream spreads over chunks
        self.script: list[str] = []
        self.answer: Callable[[dict[str, Any]], str] | None = None  # unary calls: the reply to this body
        # Fault knobs (tests/router/guards): see `faults` in the module docstring.
        self.retry_after_s: float | None = None  # with `status`: a Retry-After header
        self.echo_key = False  # with `status`: the error message quotes the request's Authorization header
        self.raw_body: str | None = None  # answer 200 with this body as it is (e.g. malformed JSON)
        self.stall_after: int | None = None  # streams: after this many chunks, stall for `stall_s`, then cut
        self.stall_s = 30.0
        self.tool_calls: list[dict[str, Any]] = []
        self.logprob: float | None = -0.05
        self.answers: dict[str, tuple[str, float | None]] = {}
        self.requests: list[dict[str, Any]] = []
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.standin = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The api_base LiteLLM needs: http://127.0.0.1:PORT (Ollama) or .../v1 (OpenAI)."""
        base = f"http://127.0.0.1:{self.port}"
        return base if self.kind == "ollama" else base + "/v1"

    def restart(self) -> None:
        """Listen again on the same port after `kill()`, like a restarted server."""
        if not self.stopping.is_set():
            return
        self._server = _Server(("127.0.0.1", self.port), _Handler)
        self._server.standin = self
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def kill(self) -> None:
        """Stop listening and cut open connections, like a crashed server."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for connection in list(self._connections):
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    def tokens(self, body: dict[str, Any], reply: str | None = None) -> tuple[int, int]:
        prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        return prompt, len((self.reply if reply is None else reply).split())

    def next_reply(self, body: dict[str, Any] | None = None) -> str:
        """`answer(body)` when set, else the next scripted reply, else `reply`."""
        if self.answer is not None and body is not None:
            return self.answer(body)
        with self._lock:
            return self.script.pop(0) if self.script else self.reply

    def answer_for(self, body: dict[str, Any]) -> tuple[str, float | None]:
        """(reply, token logprob): from `answers` when the last user message contains a key."""
        return self.matched(body) or (self.next_reply(body), self.logprob)

    def matched(self, body: dict[str, Any]) -> tuple[str, float | None] | None:
        users = [str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "user"]
        last = users[-1] if users else ""
        return next((answer for key, answer in self.answers.items() if key in last), None)

    def pieces(self, text: str | None = None) -> list[str]:
        words = (self.reply if text is None else text).split(" ")
        return [word if i == 0 else " " + word for i, word in enumerate(words)]


def _token_logprobs(reply: str, logprob: float) -> list[dict[str, Any]]:
    """OpenAI's choices[0].logprobs.content for `reply`, one token per word, all at `logprob`."""
    tokens = []
    for index, word in enumerate(reply.split(" ")):
        token = word if index == 0 else " " + word
        alternatives = [{"token": token, "logprob": logprob}, {"token": " zzz", "logprob": logprob - 2.0}]
        tokens.append({"token": token, "logprob": logprob, "bytes": None, "top_logprobs": alternatives})
    return tokens


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: StandIn

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up mid-answer is expected (deadlines, kills)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # otherwise headers and body in two writes cost a 40 ms delayed ACK
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.standin._lock:
            self.server.standin._connections.add(self.connection)

    def finish(self) -> None:
        with self.server.standin._lock:
            self.server.standin._connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        standin = self.server.standin
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        with standin._lock:
            headers = {key.lower(): value for key, value in self.headers.items()}
            standin.requests.append({"path": self.path, "body": body, "headers": headers})
        if self.path != PATHS[standin.kind]:
            return self._json(404, {"error": f"no route {self.path}"})
        if standin.delay_s and standin.stopping.wait(standin.delay_s):
            return
        if standin.status is not None:
            message = f"stand-in error {standin.status}"
            if standin.echo_key:
                message += f" for key {headers.get('authorization', '')}"
            extra = {"Retry-After": f"{standin.retry_after_s:g}"} if standin.retry_after_s is not None else {}
            return self._json(standin.status, {"error": {"message": message, "type": "server_error"}}, extra)
        if standin.raw_body is not None:
            return self._raw(200, standin.raw_body)
        streaming = bool(body.get("stream"))
        if standin.kind == "ollama" and streaming:
            return self._ollama_stream(body)
        if standin.kind == "ollama":
            reply = standin.next_reply(body)
            return self._json(200, self._ollama_final(body, reply, self.server.standin.tokens(body, reply)))
        if not streaming and standin.unary_extra_s and standin.stopping.wait(standin.unary_extra_s):
            return
        return self._openai_stream(body) if streaming else self._json(200, self._openai_unary(body))

    # --- Ollama /api/chat ---
    def _ollama_final(
        self, body: dict[str, Any], content: str, tokens: tuple[int, int] | None = None
    ) -> dict[str, Any]:
        prompt_tokens, completion_tokens = tokens or self.server.standin.tokens(body)
        return {
            "model": body.get("model"),
            "created_at": "2026-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": content, **self._ollama_tool_calls()},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": prompt_tokens,
            "eval_count": completion_tokens,
        }

    def _ollama_tool_calls(self) -> dict[str, Any]:
        calls = self.server.standin.tool_calls
        if not calls:
            return {}
        return {"tool_calls": [{"function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls]}

    def _openai_tool_calls(self) -> list[dict[str, Any]]:
        return [
            {
                "id": f"call_{index}",
                "type": "function",
                "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])},
            }
            for index, call in enumerate(self.server.standin.tool_calls)
        ]

    def _ollama_stream(self, body: dict[str, Any]) -> None:
        self._start_chunked("application/x-ndjson")
        for piece in self.server.standin.pieces():
            message = {"role": "assistant", "content": piece}
            line = {
                "model": body.get("model"),
                "created_at": "2026-01-01T00:00:00Z",
                "message": message,
                "done": False,
            }
            self._send_chunk(json.dumps(line) + "\n")
        self._send_chunk(json.dumps(self._ollama_final(body, "")) + "\n")
        self._end_chunked()

    # --- OpenAI /v1/chat/completions ---
    def _openai_unary(self, body: dict[str, Any]) -> dict[str, Any]:
        standin = self.server.standin
        reply, logprob = standin.answer_for(body)
        prompt_tokens, completion_tokens = standin.tokens(body, reply)
        choice = self._openai_choice(reply)
        if body.get("logprobs") and logprob is not None and not standin.tool_calls:
            choice["logprobs"] = {"content": _token_logprobs(reply, logprob)}
        return {
            "id": "chatcmpl-standin",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [choice],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def _openai_choice(self, reply: str) -> dict[str, Any]:
        calls = self._openai_tool_calls()
        if not calls:
            return {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
        message = {"role": "assistant", "content": None, "tool_calls": calls}
        return {"index": 0, "message": message, "finish_reason": "tool_calls"}

    def _openai_stream(self, body: dict[str, Any]) -> None:
        standin = self.server.standin
        self._start_chunked("text/event-stream")
        base = {
            "id": "chatcmpl-standin",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model"),
        }
        calls = self._openai_tool_calls()
        answer = standin.matched(body)
        for piece in [] if calls else standin.pieces(answer[0] if answer else None):
            delta = {"role": "assistant", "content": piece}
            self._send_event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        for index, call in enumerate(calls):  # id and name first, then the arguments in two pieces
            arguments = call["function"]["arguments"]
            half = len(arguments) // 2
            head = {"name": call["function"]["name"], "arguments": ""}
            pieces = [
                {"index": index, "id": call["id"], "type": "function", "function": head},
                {"index": index, "function": {"arguments": arguments[:half]}},
                {"index": index, "function": {"arguments": arguments[half:]}},
            ]
            for piece in pieces:
                delta = {"role": "assistant", "tool_calls": [piece]}
                self._send_event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        finish = "tool_calls" if calls else "stop"
        self._send_event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            prompt_tokens, completion_tokens = standin.tokens(body)
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
            self._send_event({**base, "choices": [], "usage": usage})
        self._send_chunk("data: [DONE]\n\n")
        self._end_chunked()

    # --- HTTP plumbing ---
    def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._raw(status, json.dumps(payload), headers)

    def _raw(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_chunked(self, content_type: str) -> None:
        self.chunks_sent = 0
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _send_event(self, payload: dict[str, Any]) -> None:
        self._send_chunk(f"data: {json.dumps(payload)}\n\n")

    def _send_chunk(self, text: str) -> None:
        standin = self.server.standin
        if standin.chunk_delay_s and standin.stopping.wait(standin.chunk_delay_s):
            raise ConnectionAbortedError("stand-in killed mid-stream")
        self.chunks_sent += 1
        if standin.stall_after is not None and self.chunks_sent > standin.stall_after:
            standin.stopping.wait(standin.stall_s)
            raise ConnectionAbortedError("stand-in stalled mid-stream")
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
