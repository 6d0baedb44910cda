"""`rightsize local-model serve`: the embedded llama.cpp model on its own, in the foreground."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from router.cli import CliError


def register(subparsers: Any) -> None:
    """Add the local-model command group to the `rightsize` parser."""
    group = subparsers.add_parser(
        "local-model", help="run the embedded llama.cpp model on its own", description=__doc__
    )
    commands = group.add_subparsers(dest="local_command", metavar="COMMAND")
    commands.required = True
    serve = commands.add_parser(
        "serve", help="serve the model on loopback until Ctrl-C or SIGTERM", description=serve_command.__doc__
    )
    serve.add_argument(
        "--model",
        default="smollm2-135m",
        help="smollm2-135m (the [local] extra's SmolLM2) or a path to a .gguf file (default: %(default)s)",
    )
    serve.add_argument("--port", type=int, default=0, help="loopback port (default: 0, any free port)")
    serve.add_argument("--n-ctx", type=int, default=2048, help="context in tokens (default: %(default)s)")
    serve.add_argument("--threads", type=int, help="CPU threads (default: half the CPUs)")
    serve.add_argument(
        "--log-level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="DEBUG also shows the llama.cpp server's own output",
    )
    serve.set_defaults(handler=serve_command)


def serve_command(args: argparse.Namespace) -> int:
    """Run the llama.cpp child (router/backends/llama_server.py: llama_cpp.server, patched) on 127.0.0.1
    as the router would (restarted if it dies); exit 0 on a signal once the child is gone."""
    import logging
    import signal
    import threading

    from pydantic import ValidationError

    from router.backends.llama_child import EmbeddedProcess, EmbeddedSpec
    from router.config.embedded import CATALOG, EmbeddedOptions, missing_requirement

    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    model = args.model if args.model in CATALOG else str(Path(args.model).expanduser().resolve())
    missing = missing_requirement(model)
    if missing is not None:
        raise CliError(missing)
    try:
        options = EmbeddedOptions(n_ctx=args.n_ctx, threads=args.threads, port=args.port)
    except ValidationError as exc:
        raise CliError(f"invalid option: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from exc
    spec = EmbeddedSpec.from_embedded(model, options)
    process = EmbeddedProcess(spec, name="local-model")
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    process.start()
    try:
        # The first start must succeed (a bad file or a busy port is the user's to fix); later deaths are
        # restarted with backoff, as in the router.
        while not process.wait_ready(0.2) and not stopping.is_set():
            if process.state.phase == "backoff":
                raise CliError(f"{spec.alias} did not start: {process.state.detail.split('; restart')[0]}")
        if process.state.up:
            print(
                f"serving {spec.gguf.name} as {spec.alias} on {spec.api_base} (pid {process.state.pid}); "
                f"LiteLLM model: {spec.litellm_model}, api_base: {spec.api_base}",
                flush=True,
            )
        while not stopping.wait(0.5):
            pass
    finally:
        process.stop()
    return 0
