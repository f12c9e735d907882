"""What this machine's CPU multiplies fast, decided in one place for every part that chooses bfloat16 products by
itself: the neighbour graph (`precision="auto"`) and the linear probe's anchored (bfloat16) evaluations. (The
extraction's `dtype: bf16` is the user's choice and does not consult it.)

The answer comes from the CPU's own flags, not from a timing: it costs nothing per process (a timed probe cost
0.37 s in every `hidden-geometry knn` process) and does not change with the machine's load.
"""

from __future__ import annotations

import functools
from pathlib import Path

# CPU flags (Linux /proc/cpuinfo) of hardware bfloat16 dot products: Intel AMX tiles, AVX-512 BF16.
BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


@functools.lru_cache(maxsize=1)
def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    """The flags of the first CPU listed in `path` (empty where it cannot be read: not Linux, or no such file)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


@functools.lru_cache(maxsize=1)
def bf16_products_are_native() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (CPU flags amx_bf16 or avx512_bf16) and torch's
    oneDNN kernels can use them. Elsewhere bfloat16 products are emulated and slower than float32 ones (or, where
    the flags cannot be read, of unknown speed): False, and every caller keeps float32.

    Measured here (AMX): bfloat16 products at about 2.5x the float32 rate at the neighbour graph's tile shape.
    """
    if not cpu_flags() & BF16_FLAGS:
        return False
    import torch

    supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return supported is not None and bool(supported())
