"""What this machine's CPU multiplies fast, decided in one place for every part that chooses bfloat16 products by
itself: the neighbour graph (`precision="auto"`) and the linear probe's anchored (bfloat16) evaluations. (The
extraction's `dtype: bf16` is the user's choice and does not consult it.) The answer comes from the CPU's own flags,
not from a timing: it costs nothing per process (a timed probe cost 0.37 s in every `hidden-geometry knn` process)
and does not change with the machine's load.

Also the torch settings that a result must not inherit from its caller:
- `ieee_float32`: float32 products as IEEE float32 wherever a result depends on it (the neighbour graph's bound, the
  linear probe's float32 evaluations and stopping rule; the float32 extraction through `ieee_float32_where_changed`,
  only where the caller changed the settings). A caller's `torch.set_float32_matmul_precision("medium")` (or "high")
  makes torch run float32 products in bfloat16 on this CPU (oneDNN) and in TF32 on CUDA, for every later product of
  the process; inside the guard they are float32 again.
- `torch_threads`: a thread count for a block (the linear probe's fit runs on one, so that its result does not
  depend on the caller's count).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# CPU flags (Linux /proc/cpuinfo) of hardware bfloat16 dot products: Intel AMX tiles, AVX-512 BF16.
BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


def cpu_field(names: tuple[str, ...], path: str = "/proc/cpuinfo") -> str:
    """The value of the first line of `path` whose key is one of `names` (the first CPU listed: its block comes
    first); "" where there is none or the file cannot be read (not Linux, or no such file)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in names:
            return value.strip()
    return ""


@functools.lru_cache(maxsize=1)
def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    """The flags of the first CPU listed in `path` (x86 "flags", ARM "Features"; empty where it cannot be read)."""
    return frozenset(cpu_field(("flags", "Features"), path).split())


@functools.lru_cache(maxsize=1)
def cpu_vendor(path: str = "/proc/cpuinfo") -> str:
    """The vendor of the first CPU listed in `path` ("AuthenticAMD", "GenuineIntel"; "" where it cannot be read)."""
    return cpu_field(("vendor_id",), path)


# Where the neighbour graph's float32 tile products run: "openblas" (numpy's OpenBLAS) or "torch" (torch's MKL).
FLOAT32_PRODUCTS_LIBRARIES = ("openblas", "torch")


def float32_products_library(override: str | None = None) -> str:
    """The library for the neighbour graph's float32 tile products on this CPU: numpy's OpenBLAS on AMD CPUs,
    torch's (MKL) elsewhere. Both give IEEE float32 products, so the graph is the same; only the speed differs.

    Measured on an AMD EPYC (family 25, AVX2) at the tile shape (4,096 x 1,296 by 1,296 x 4,096, one thread):
    OpenBLAS 72 GFLOP/s, torch's MKL 57; in the graph (N = 30,000, D = 1,280) the products took 18.8 s of CPU
    against 20.9 to 24.9 s. `override` (or the environment variable HIDDEN_GEOMETRY_FLOAT32_PRODUCTS), one of
    FLOAT32_PRODUCTS_LIBRARIES, chooses instead (benchmarks compare the two).
    """
    import os

    choice = override or os.environ.get("HIDDEN_GEOMETRY_FLOAT32_PRODUCTS") or None
    if choice is None:
        return "openblas" if cpu_vendor() == "AuthenticAMD" else "torch"
    if choice not in FLOAT32_PRODUCTS_LIBRARIES:
        raise ValueError(f"HIDDEN_GEOMETRY_FLOAT32_PRODUCTS: {choice!r} is not one of {FLOAT32_PRODUCTS_LIBRARIES}")
    return choice


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


def _set_fp32_precision(value: str | None) -> dict:
    """Set every backend's float32 matmul precision ("ieee") or, given the saved dict, restore it. Uses the
    legacy API where the caller did (torch refuses to mix the two), else the per-backend one."""
    import torch

    backends = {"mkldnn": torch.backends.mkldnn.matmul, "cuda": torch.backends.cuda.matmul}
    saved = {name: backend.fp32_precision for name, backend in backends.items()}
    for backend in backends.values():
        backend.fp32_precision = value
    return saved


def _legacy_precision() -> str | None:
    """torch's legacy float32 matmul precision ("highest", "high", "medium"), or None where the caller set a
    backend's `fp32_precision` (the legacy getter then refuses to answer)."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return torch.get_float32_matmul_precision()
        except RuntimeError:
            return None


@contextlib.contextmanager
def ieee_float32(device: Any) -> Iterator[None]:
    """Run the block with IEEE float32 matrix products on `device` (a torch.device or its name): no TF32, no
    bfloat16 inside float32 products, no autocast; the caller's settings are restored after. Checks on the device
    that a product keeps float32's 24-bit mantissa and raises RuntimeError where it does not. Also a decorator."""
    import torch

    device = torch.device(device)
    legacy = _legacy_precision()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if legacy is not None:
            torch.set_float32_matmul_precision("highest")
            saved = None
        else:  # the caller used the per-backend API (torch refuses to mix the two): that one
            saved = _set_fp32_precision("ieee")
    try:
        with torch.autocast(device_type=device.type, enabled=False):
            check_ieee_products(device)
            yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if legacy is not None:
                torch.set_float32_matmul_precision(legacy)
            else:
                for name, value in saved.items():
                    getattr(torch.backends, name).matmul.fp32_precision = value


def ieee_float32_where_changed(device: Any) -> contextlib.AbstractContextManager:
    """`ieee_float32(device)` where the caller has changed torch's float32 product settings (the legacy
    precision, a backend's `fp32_precision`) or turned autocast on for the device; otherwise nothing, since torch's
    defaults are IEEE float32 already. For the extraction's fp32 forward, entered once per batch: with the defaults
    it then runs exactly as without a guard."""
    import torch

    device = torch.device(device)
    changed = _legacy_precision() != "highest"  # None: the caller used the per-backend API
    backends = (torch.backends.mkldnn.matmul, torch.backends.cuda.matmul)
    changed = changed or any(backend.fp32_precision not in ("none", "ieee") for backend in backends)
    changed = changed or torch.is_autocast_enabled(device.type)
    return ieee_float32(device) if changed else contextlib.nullcontext()


def check_ieee_products(device: Any) -> None:
    """Raise RuntimeError unless a float32 product on `device` keeps 24 significant bits: 64 terms of
    (1 + 2^-12) x 1 sum to 64 + 2^-6 exactly in float32, but to 64 in TF32 or bfloat16."""
    import torch

    x = torch.full((64, 64), 1.0 + 2.0**-12, dtype=torch.float32, device=device)
    got = float(torch.mm(x, torch.ones((64, 64), dtype=torch.float32, device=device))[0, 0])
    if got != 64.0 + 2.0**-6:
        raise RuntimeError(
            f"float32 matrix products on {device} are not IEEE float32 (64 + 2^-6 came out as {got!r}: TF32, "
            "bfloat16 or autocast is active and could not be turned off); this result needs them"
        )


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch CPU ops with `n` threads inside the block (restores the caller's setting).

    The neighbour graph: only the large matrix products gain from several threads; the many small selections and
    gathers around them lose more to thread wake-ups than they gain, badly so when other processes share the cores.
    The linear probe: its fit runs on one thread, so that its result does not depend on the caller's thread count
    (with 2 threads the products sum in another order, the L-BFGS paths differ, and each fold stops at another point
    that meets the stopping rule: layer 3 of the benchmark gave 0.7716 against 0.7719).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
