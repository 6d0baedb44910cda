"""The OpenAI-compatible HTTP door: POST /v1/chat/completions (and SSE), /v1/models, /v1/feedback, probes.

It serves the gRPC server's pipeline on the same event loop, on `server.http.address`, translating OpenAI
JSON into the gRPC contract's messages and back (see _openai), so both doors mean the same by construction.
"""

from __future__ import annotations

from router.rpc.http._door import REQUEST_ID_HEADER, DoorParts, HttpDoor, bind

__all__ = ["REQUEST_ID_HEADER", "DoorParts", "HttpDoor", "bind"]
