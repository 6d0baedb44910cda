"""A stand-in for `python -m llama_cpp.server`: same flags, /v1/models and a unary /v1/chat/completions.

Run as `python -m tests.router.fake_llama_server --model F --model_alias A --host H --port P ...`.
An alias starting with "crash" makes it print an error and exit with status 3 instead, like a model
that fails to load.
"""

from __future__ import annotations

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

REPLY = "fake llama answer"


def main() -> int:
    parser = argparse.ArgumentParser()
    for flag in ("--model", "--model_alias", "--host", "--port"):
        parser.add_argument(flag, required=True)
    args, _ = parser.parse_known_args()
    if args.model_alias.startswith("crash"):
        print(f"ValueError: Failed to load model from file: {args.model}", file=sys.stderr, flush=True)
        return 3
    alias = args.model_alias

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *log_args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.path != "/v1/models":
                self._json(404, {"detail": "Not Found"})
                return
            self._json(200, {"object": "list", "data": [{"id": alias, "object": "model"}]})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
            self._json(
                200,
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": 0,
                    "model": alias,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": REPLY},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": 3,
                        "total_tokens": prompt_tokens + 3,
                    },
                },
            )

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer((args.host, int(args.port)), Handler)
    print(f"INFO:     Uvicorn running on http://{args.host}:{args.port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
