"""`rightsize teach`: the large tier answers a task's inputs; valid answers become approved exemplars."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from router.cli import CliError, read_schema_file
from router.cli.log_commands import load_server_config, translate_log_errors

if TYPE_CHECKING:
    from router.learning.teach import TeachRun

BAR_WIDTH = 30


def register(subparsers: Any) -> None:
    """Add `teach` to the `rightsize` parser."""
    command = subparsers.add_parser(
        "teach",
        help="make validated exemplars for a task with the large tier",
        description=teach_command.__doc__,
    )
    command.add_argument(
        "--config", type=Path, required=True, metavar="FILE", help="the server's config file"
    )
    command.add_argument(
        "--inputs", type=Path, required=True, metavar="FILE",
        help='JSONL of task inputs: one JSON string, or {"input": "..."}, per line',
    )  # fmt: skip
    command.add_argument("--task", required=True, help="the task's name (requests send metadata task=NAME)")
    command.add_argument("--tenant", help="the tenant the exemplars belong to (metadata tenant=T)")
    command.add_argument("--schema", type=Path, metavar="FILE", help="a JSON Schema every answer must fit")
    command.add_argument("--schema-name", help="the name requests give the schema (default: FILE's stem)")
    command.add_argument("--system", default="", help="a system message sent before each input")
    command.add_argument("--budget-usd", type=float, metavar="X", help="start no call once X USD are spent")
    command.add_argument("--concurrency", type=int, default=4, metavar="N", help="calls at once (default: 4)")
    command.set_defaults(handler=teach_command)


def teach_command(args: argparse.Namespace) -> int:
    """Send each input to the large tier (with the schema when given), validate each answer, and store the
    valid (input, answer) pairs in the request log as approved exemplars of the task and tenant: few-shot
    (source logs) and export-finetune use them, and a running server loads them at its next refresh.
    Inputs taught by an earlier run are skipped."""
    import asyncio

    from router.learning.teach import TeachTask, read_inputs

    if args.concurrency < 1:
        raise CliError("--concurrency must be at least 1")
    if args.budget_usd is not None and args.budget_usd < 0:
        raise CliError("--budget-usd must be >= 0")
    config = load_server_config(args.config)
    try:
        inputs = read_inputs(args.inputs.read_text(encoding="utf-8").splitlines())
    except OSError as exc:
        raise CliError(f"--inputs {args.inputs}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise CliError(f"--inputs {args.inputs}: {exc}") from exc
    task = TeachTask(args.task, args.tenant, *_schema(args), system=args.system)
    task.spec()  # a bad schema fails here, before LiteLLM loads
    print(f"{len(inputs)} inputs for task {args.task!r} -> {config.tiers.large.model}", file=sys.stderr)
    run = translate_log_errors(lambda: asyncio.run(_teach(config, task, inputs, args)))
    print(file=sys.stderr)
    print(summary(run))
    return 0


async def _teach(config: Any, task: Any, inputs: list[str], args: argparse.Namespace) -> TeachRun:
    from router.cli.learning_commands import running_tier_stack
    from router.learning.teach import Teach
    from router.requestlog import open_store

    store = open_store(config.log.url, timeout_ms=config.log.timeout_ms)  # created when new: teach writes
    try:
        async with running_tier_stack(config) as backend:
            teach = Teach(
                config, store, backend, task, budget_usd=args.budget_usd, concurrency=args.concurrency,
                on_progress=lambda run: print(progress_line(run, args.budget_usd), end="", file=sys.stderr),
            )  # fmt: skip
            return await teach.run(inputs)
    finally:
        store.close()


def progress_line(run: TeachRun, budget_usd: float | None) -> str:
    """One carriage-returned progress bar: done/inputs, counts, spend."""
    filled = BAR_WIDTH * run.done // max(run.inputs, 1)
    budget = f" of ${budget_usd:.4f}" if budget_usd is not None else ""
    return (
        f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {run.done}/{run.inputs}  taught {run.taught}"
        f"  invalid {run.invalid}  failed {run.failed}  ${run.cost_usd:.4f}{budget}"
    )


def summary(run: TeachRun) -> str:
    stop = " (stopped at the budget)" if run.stopped_at_budget else ""
    lines = [
        f"taught {run.taught}, already taught {run.skipped}, invalid {run.invalid}, failed {run.failed}; "
        f"cost ${run.cost_usd:.6f}{stop}"
    ]
    lines += [f"  {error}" for error in run.errors]
    return "\n".join(lines)


def _schema(args: argparse.Namespace) -> tuple[str, str]:
    if args.schema is None:
        if args.schema_name:
            raise CliError("--schema-name needs --schema")
        return "", ""
    return read_schema_file("--schema", args.schema, args.schema_name)
