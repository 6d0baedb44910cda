"""Choose the embedder file and its onnxruntime threads for this CPU, at load time, by measuring.

int8's advantage over fp32 depends on the CPU (with VNNI int8 dot products are native; on AVX2 alone they
go through 16-bit pairs, and an int8 graph may even drift from fp32 there), and so does the best thread
count (two spin-waiting threads on two busy cores run slower than one). So no fixed default: `tune()`
loads each candidate file, drops any whose embeddings miss the parity bars against fp32 on built-in probe
texts (the bars of tests/classifier/test_embedding.py: mean cosine >= 0.997, worst >= 0.99), times each
(file, threads) candidate warm, in blocks of rotating order (the lowest block p50 counts), on two shapes: one
short prompt (a lone request) and a batch of eight prompts (what a busy server's micro-batches run), and
keeps the fastest over both (`pick()`). The shapes disagree by CPU: on an AVX2-only EPYC int8_full's
weight-only kernels tie int8 on one short prompt and run batches 1.2-1.5x slower, while with VNNI they win
both. About 0.2-0.5 s of session loads and 0.3-0.5 s of timing per candidate on a 2-vCPU VM; the choice
is remembered for the process, so a promoted model with the same embedder loads without tuning again.
`prepare()` loads and checks, `Candidates.choose()` times: a server does the first during LiteLLM's import
and the second after it, since timed during it every file ran slower and in no stable order.
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
BATCH = PROBE_PROMPTS[:8]  # 8 prompts of 8-25 tokens, padded to the longest: about 200 rows per matmul
WARM, RUNS, ROUNDS = 4, 8, 3  # per candidate: ROUNDS blocks of WARM untimed and RUNS timed embeds
BATCH_WARM, BATCH_RUNS, BATCH_ROUNDS = 1, 1, 2  # the batch's blocks, in the first rounds: one batch
# takes as long as 8-10 short prompts, and its time is steadier (a burst of load moves it less in ratio)
TIE = 1.05  # the trained file wins unless another is faster by more than this
Key = tuple[str, int]  # a candidate: (file, threads)


@dataclass(frozen=True)
class Tuning:
    """What `tune()` chose and why; `summary()` is the start-up log line."""

    variant: str
    threads: int
    cpu_flags: tuple[str, ...]
    timings_ms: dict[str, float]  # "file/threads" -> p50 of one short prompt
    ineligible: dict[str, str]  # file -> why it was left out
    cached: bool = False
    batch_ms: dict[str, float] = field(default_factory=dict)  # "file/threads" -> p50 of BATCH

    def summary(self) -> str:
        flags = ", ".join(self.cpu_flags) or "none of " + "/".join(INT8_FLAGS)
        if self.cached:
            return f"embedder {self.variant} with {self.threads} thread(s) (chosen earlier in this process)"
        timed = ", ".join(
            f"{name} {ms:.2f}" + (f" / {self.batch_ms[name]:.2f}" if name in self.batch_ms else "") + " ms"
            for name, ms in self.timings_ms.items()
        )
        shapes = "short prompt p50" + (f" / batch of {len(BATCH)} p50" if self.batch_ms else "")
        left = "".join(f"; {name} not eligible: {why}" for name, why in self.ineligible.items())
        return (
            f"embedder {self.variant} with {self.threads} thread(s), measured on this CPU (int8 features: "
            f"{flags}; {usable_cpus()} usable CPUs): {shapes} {timed}{left}"
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
        short, batch = _time(self.loaded)
        choice = pick(short, batch, self.trained)
        _CHOSEN[self.key] = choice
        named, batches = (
            {f"{variant}/{count}": ms for (variant, count), ms in t.items()} for t in (short, batch)
        )
        embedder = self.loaded[choice]
        self.loaded = {choice: embedder}
        self.result = (
            embedder,
            Tuning(choice[0], choice[1], self.flags, named, self.ineligible, batch_ms=batches),
        )
        return self.result


def pick(short: dict[Key, float], batch: dict[Key, float], trained: str) -> Key:
    """The candidate fastest over both shapes: the lowest geometric mean of its times relative to each
    shape's fastest, so a file ahead on one shape and behind on the other pays for both. The trained file
    wins when within TIE of the best (its embeddings are the head's own, not merely within the bars)."""
    fastest_short, fastest_batch = min(short.values()), min(batch.values())
    cost = {key: ((short[key] / fastest_short) * (batch[key] / fastest_batch)) ** 0.5 for key in short}
    best = min(cost, key=cost.__getitem__)
    preferred = [key for key in cost if key[0] == trained and cost[key] <= cost[best] * TIE]
    return min(preferred, key=cost.__getitem__) if preferred else best


def _time(candidates: dict[Key, Embedder]) -> tuple[dict[Key, float], dict[Key, float]]:
    """ms of one short prompt and of BATCH per candidate, each timed warm, as it serves: the lowest of its
    blocks' p50s.

    In blocks: WARM untimed calls, then RUNS timed ones (BATCH_WARM and BATCH_RUNS for the batch, in the
    first BATCH_ROUNDS rounds), candidate after candidate, the order rotated each round, so that every
    candidate takes every place and a drift of the machine's speed falls on all alike, and a burst of load
    that hits one block is outvoted by the candidate's other blocks. Not reversed: a reversed round starts
    with the candidate that ended the one before, whose block then finds its own graph in the caches (one
    block in three favoured the candidates at the ends: on an AVX2-only EPYC the file in the middle lost
    its short-prompt timing by 10-40 % that it does not lose served). Interleaving call by call (as
    before) timed every file cold: switching between graphs evicts the caches, and on a 2-vCPU VM all ran
    2-4x slower than served and in no stable order (int8 ahead of int8_full in about one run in two)."""
    shapes = (([TIMED], WARM, RUNS, ROUNDS), (list(BATCH), BATCH_WARM, BATCH_RUNS, BATCH_ROUNDS))
    blocks: list[dict[Key, list[float]]] = [{key: [] for key in candidates} for _ in shapes]
    order = list(candidates)
    for round_ in range(ROUNDS):
        shift = round_ % len(order)
        for key in order[shift:] + order[:shift]:
            embedder = candidates[key]
            for (texts, warm, runs, rounds), timed in zip(shapes, blocks, strict=True):
                if round_ >= rounds:
                    continue
                for _ in range(warm):  # the first block also pays onnxruntime's one-time set-up
                    embedder.embed(texts)
                samples = []
                for _ in range(runs):
                    started = time.perf_counter()
                    embedder.embed(texts)
                    samples.append((time.perf_counter() - started) * 1000)
                timed[key].append(statistics.median(samples))
    short, batch = ({key: min(values) for key, values in timed.items()} for timed in blocks)
    return short, batch
