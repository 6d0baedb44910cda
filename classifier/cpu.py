"""The CPU features onnxruntime's int8 kernels dispatch on, as the CPU itself reports them (cpuid)."""

from __future__ import annotations

import platform

# numpy's runtime-dispatch names -> ours. AVX-512 VNNI adds a u8 x s8 dot product that accumulates in 32
# bits; without VNNI, onnxruntime's x86 kernels sum byte pairs into a saturating int16 (vpmaddubsw).
_FEATURES = {"AVX2": "avx2", "AVX512F": "avx512f", "AVX512VNNI": "avx512_vnni"}


def cpu_features() -> dict[str, bool]:
    """{"avx2", "avx512f", "avx512_vnni"} -> present, for the x86 CPU this process runs on (empty elsewhere).

    numpy asks the CPU (cpuid), so an emulated CPU (`qemu-x86_64 -cpu Haswell`) reports its own features,
    where /proc/cpuinfo would name the host's.
    """
    if platform.machine().lower() not in {"x86_64", "amd64"}:
        return {}
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as detected
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as detected  # type: ignore[no-redef]
    return {ours: bool(detected.get(name, False)) for name, ours in _FEATURES.items()}


def describe_cpu(features: dict[str, bool] | None = None) -> str:
    """One line for the start-up log, e.g. `x86_64 with avx2, without avx512f, avx512_vnni`."""
    features = cpu_features() if features is None else features
    if not features:
        return f"{platform.machine()} (no x86 int8 kernels)"
    present = [name for name, found in features.items() if found]
    absent = [name for name, found in features.items() if not found]
    return f"{platform.machine()} with {', '.join(present) or 'none of ' + ', '.join(features)}" + (
        f", without {', '.join(absent)}" if absent and present else ""
    )
