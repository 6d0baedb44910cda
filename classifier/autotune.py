"""Choose the embedder file and its onnxruntime threads for this CPU, at load time, by measuring.

int8's advantage over fp32 depends on the CPU (with VNNI int8 dot products are native; on AVX2 alone they
go through 16-bit pairs, and an int8 graph may even drift from fp32 there), and so does the best thread
count (two spin-waiting threads on two busy cores run slower than one). So no fixed default: `tune()`
loads each candidate file, drops any whose embeddings miss the parity bars against fp32 on built-in probe
texts (the bars of tests/classifier/test_embedding.py: mean cosine >= 0.997, worst >= 0.99), times one
short prompt on each (file, threads) candidate, warm, in alternating blocks (the lowest block p50
counts), and keeps the fastest. About 0.2-0.5 s of session loads and 0.2 s of timing per candidate on a
2-vCPU VM; the choice is remembered for the process, so a promoted model with the same embedder loads
without tuning again. `prepare()` loads and checks, `Candidates.choose()` times: a server does the first
during LiteLLM's import and the second after it, since timed during it every file ran slower and in no
stable order.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from classifier.embedding import VARIANT_FILES, Embedder, LongText
from classifier.errors import GraphLoadError

PARITY_MEAN = 0.997
PARITY_WORST = 0.99
FP32_FILE = VARIANT_FILES["fp32"]
# CPU flags (Linux /proc/cpuinfo names) that decide how fast, and how exactly, int8 runs.
INT8_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")
# Not the quantiser's calibration texts. As in the parity test: prompts are embedded as one batch (mean and
# worst bars), short strings (the worst case for int8) one by one (worst bar).
PROBE_PROMPTS = [
    "What is the capital of France?",
    "Turn this sentence into JSON: 'John is 35'",
    "Write a Python function that merges k sorted lists and explain its complexity.",
    "Prove that the square root of two is irrational.",
    "Summarise the plot of Hamlet in two sentences, then list its three main themes.",
    "SELECT name, count(*) FROM orders GROUP BY name HAVING count(*) > 3;",
    "Translate 'good morning, how did you sleep?' into Spanish, French and German.",
    "Mi impresora no imprime en color desde la actualización, ¿qué puedo revisar?",
    "Design a globally distributed key-value store with strong consistency and explain the trade-offs.",
    "def area(r):\n    return 3.14159 * r ** 2  # why does this lose precision for large r?",
]
PROBE_SHORT = ["yes", "ok", "?", "thanks", "你好", "Why?"]
TIMED = "Explain the difference between TCP and UDP to a new engineer."  # about 15 tokens
WARM, RUNS, ROUNDS = 4, 8, 3  # per candidate: ROUNDS blocks of WARM untimed and RUNS timed embeds


@dataclass(frozen=True)
class Tuning:
    """What `tune()` chose and why; `summary()` is the start-up log line."""

    variant: str
    threads: int
    cpu_flags: tuple[str, ...]
    timings_ms: dict[str, float]  # "file/threads" -> p50 of one short prompt
    ineligible: dict[str, str]  # file -> why it was left out
    cached: bool = False

    def summary(self) -> str:
        flags = ", ".join(self.cpu_flags) or "none of " + "/".join(INT8_FLAGS)
        if self.cached:
            return f"embedder {self.variant} with {self.threads} thread(s) (chosen earlier in this process)"
        timed = ", ".join(f"{name} {ms:.2f} ms" for name, ms in self.timings_ms.items())
        left = "".join(f"; {name} not eligible: {why}" for name, why in self.ineligible.items())
        return (
            f"embedder {self.variant} with {self.threads} thread(s), measured on this CPU (int8 features: "
            f"{flags}; {usable_cpus()} usable CPUs): short prompt p50 {timed}{left}"
        )


_CHOSEN: dict[tuple[str, tuple[str, ...], tuple[int, ...]], tuple[str, int]] = {}


def cpu_flags() -> tuple[str, ...]:
    """The INT8_FLAGS this CPU reports (Linux; elsewhere numpy's view of the same features)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                present = set(line.split(":", 1)[1].split())
                return tuple(flag for flag in INT8_FLAGS if flag in present)
    except OSError:
        pass
    features = _numpy_cpu_features()
    return tuple(flag for flag in INT8_FLAGS if features.get(flag.upper().replace("_", ""), False))


def _numpy_cpu_features() -> dict[str, bool]:
    try:
        from numpy._core._multiarray_umath import __cpu_features__  # type: ignore[attr-defined]
    except ImportError:
        return {}
    return {name.replace("_", ""): bool(value) for name, value in __cpu_features__.items()}


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def thread_candidates() -> tuple[int, ...]:
    """1, 2, and on larger machines half the CPUs (the event loop and gRPC need a core too)."""
    cpus = usable_cpus()
    return tuple(sorted({1, min(2, cpus), max(1, cpus // 2)}))


def probe(embedder: Embedder) -> tuple[np.ndarray, np.ndarray]:
    """The probe prompts' embeddings (one batch) and the short strings' (one by one)."""
    return embedder.embed(PROBE_PROMPTS), np.vstack([embedder.embed([text]) for text in PROBE_SHORT])


def parity_failure(
    candidate: tuple[np.ndarray, np.ndarray], reference: tuple[np.ndarray, np.ndarray]
) -> str | None:
    """Why `candidate`'s probe embeddings miss the parity bars against `reference`'s; None: they meet them."""
    prompts = (candidate[0] * reference[0]).sum(axis=1)
    worst = min(float(prompts.min()), float((candidate[1] * reference[1]).sum(axis=1).min()))
    if prompts.mean() < PARITY_MEAN or worst < PARITY_WORST:
        bars = f"bars {PARITY_MEAN}, {PARITY_WORST}"
        return f"cosine to fp32 mean {prompts.mean():.4f}, worst {worst:.4f} ({bars})"
    return None


def tune(
    directory: Path,
    *,
    variants: tuple[str, ...],
    threads: tuple[int, ...],
    trained: str,
    long_text: LongText,
) -> tuple[Embedder, Tuning]:
    """The fastest eligible (file, threads) of `variants` x `threads` for the embedder in `directory`.

    `trained` (the file the head was trained on) wins ties within 5 %. `prepare()` then `choose()`, at once;
    a server times later, once nothing else competes for the cores (router.rpc.server)."""
    candidates = prepare(directory, variants=variants, threads=threads, trained=trained, long_text=long_text)
    return candidates.choose()


def prepare(
    directory: Path,
    *,
    variants: tuple[str, ...],
    threads: tuple[int, ...],
    trained: str,
    long_text: LongText,
) -> Candidates:
    """Load the candidate files and leave out those that cannot load or miss the parity bars; no timing."""
    key = (str(directory.resolve()), variants, threads)
    flags = cpu_flags()
    if key in _CHOSEN:
        variant, count = _CHOSEN[key]
        embedder = Embedder.from_path(directory, variant=variant, threads=count, long_text=long_text)
        return Candidates(key, {(variant, count): embedder}, {}, trained, flags, cached=True)
    loaded: dict[tuple[str, int], Embedder] = {}
    ineligible: dict[str, str] = {}
    for variant in variants:
        try:
            loaded[(variant, threads[-1])] = Embedder.from_path(
                directory, variant=variant, threads=threads[-1], long_text=long_text
            )
        except GraphLoadError as exc:
            # A file this onnxruntime cannot run (int8_full's MatMulNBits needs a recent one) is left out
            # of a choice among files; the file the head was trained on, or one named, must load.
            if len(variants) == 1 or variant in (trained, FP32_FILE):
                raise
            ineligible[variant] = f"onnxruntime cannot load it ({str(exc).splitlines()[0][-160:]})"
    if len(variants) > 1:  # a file chosen by name serves as it is; a choice among files is gated on parity
        fp32 = loaded.get((FP32_FILE, threads[-1]))
        reference = probe(fp32 or Embedder.from_path(directory, variant=FP32_FILE, long_text=long_text))
        for variant, _ in list(loaded):
            if variant != FP32_FILE and (
                why := parity_failure(probe(loaded[(variant, threads[-1])]), reference)
            ):
                ineligible[variant] = why
                del loaded[(variant, threads[-1])]
    for variant, _ in list(loaded):
        for count in threads[:-1]:  # the verified load above checked the files' sha256
            loaded[(variant, count)] = Embedder.from_path(
                directory, variant=variant, threads=count, long_text=long_text, verify=False
            )
    return Candidates(key, loaded, ineligible, trained, flags)


@dataclass
class Candidates:
    """The loaded, eligible (file, threads) candidates of one embedder, not yet timed (`prepare()`)."""

    key: tuple[str, tuple[str, ...], tuple[int, ...]]  # what the choice is remembered under
    loaded: dict[tuple[str, int], Embedder]
    ineligible: dict[str, str]  # file -> why it was left out
    trained: str
    flags: tuple[str, ...]
    cached: bool = False  # `loaded` holds the choice made earlier in this process
    result: tuple[Embedder, Tuning] | None = field(default=None, init=False, repr=False)

    @property
    def provisional(self) -> Embedder:
        """What to embed with before `choose()`: the trained file when eligible (most threads), else the
        first eligible candidate; the remembered choice when there is one."""
        trained = [key for key in self.loaded if key[0] == self.trained]
        return self.loaded[max(trained, key=lambda key: key[1]) if trained else next(iter(self.loaded))]

    def choose(self) -> tuple[Embedder, Tuning]:
        """Time the candidates (warm, in blocks), keep the fastest, and release the others. Once: a second
        call returns the first's result."""
        if self.result is not None:
            return self.result
        if self.cached:
            (((variant, count), embedder),) = self.loaded.items()
            return embedder, Tuning(variant, count, self.flags, {}, {}, cached=True)
        timings = _time(self.loaded)
        best = min(timings, key=timings.__getitem__)
        preferred = [c for c in timings if c[0] == self.trained and timings[c] <= timings[best] * 1.05]
        choice = min(preferred, key=timings.__getitem__) if preferred else best
        _CHOSEN[self.key] = choice
        named = {f"{variant}/{count}": ms for (variant, count), ms in timings.items()}
        embedder = self.loaded[choice]
        self.loaded = {choice: embedder}
        self.result = embedder, Tuning(choice[0], choice[1], self.flags, named, self.ineligible)
        return self.result


def _time(candidates: dict[tuple[str, int], Embedder]) -> dict[tuple[str, int], float]:
    """ms of one short prompt per candidate, each timed warm, as it serves: the lowest of its blocks' p50s.

    In blocks: WARM untimed calls, then RUNS timed ones, candidate after candidate, the order reversed
    each round so that a drift of the machine's speed falls on all alike, and a burst of load that hits
    one block is outvoted by the candidate's other blocks. Interleaving call by call (as before) timed
    every file cold: switching between graphs evicts the caches, and on a 2-vCPU VM all ran 2-4x slower
    than served and in no stable order (int8 ahead of int8_full in about one run in two)."""
    blocks: dict[tuple[str, int], list[float]] = {key: [] for key in candidates}
    order = list(candidates)
    for round_ in range(ROUNDS):
        for key in order if round_ % 2 == 0 else reversed(order):
            embedder = candidates[key]
            for _ in range(WARM):  # the first block also pays onnxruntime's one-time set-up
                embedder.embed([TIMED])
            samples = []
            for _ in range(RUNS):
                started = time.perf_counter()
                embedder.embed([TIMED])
                samples.append((time.perf_counter() - started) * 1000)
            blocks[key].append(statistics.median(samples))
    return {key: min(values) for key, values in blocks.items()}
