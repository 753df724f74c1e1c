"""Same params and seed, same bytes: pin the CPU code paths the numeric libraries choose at run time.

PyTorch (ATen), MKL and OpenBLAS each pick vectorised kernels for the CPU they find: AVX-512 on one
machine, AVX2 on another. Those kernels add numbers in different orders, so the same training on two
machines differed in the last bits and, after 50 epochs, in the sixth decimal of a committed loss
(``metrics/train_torch_history.csv``, epoch 44: AVX2 gave 0.124742, AVX-512 0.124741). Pinning every
library to its AVX2 path, which every x86-64 CPU made since 2015 has, makes the results the same on all
of them but for rare last bits: the same machine gives the same bytes, and another one the same numbers
within 1e-6 (seen: epoch 25's val_loss 0.121782 with AVX-512, 0.121783 with AVX2 alone, where a last bit
crossed a rounding boundary; tests/support/numbers.py compares files within it). OpenBLAS's AVX2 kernels
also give other bits on 2 threads than on 1 (scikit-learn's coefficients), so OpenBLAS runs on one
thread. MKL's matrix products, in its default reproducible mode, still sum in thread-sized blocks: on
MNIST, one and two PyTorch threads differed in the eighth digit of the loss. MKL's *strict* mode
(``MKL_CBWR=AVX2,STRICT``) sums in the same order whatever the thread count (1, 2 and 4 threads gave the
same bytes on digits and MNIST), for about a quarter more CPU time in MNIST's training, so the thread
count (``train_torch.threads``) is a speed setting only.

The variables must be set before NumPy or PyTorch loads its libraries, so ``stages/__init__.py`` calls
``pin_cpu_kernels`` before any stage module is imported. A value the user has set is kept.
"""

from __future__ import annotations

import os
import platform
from collections.abc import MutableMapping
from pathlib import Path

# PyTorch's own kernels, MKL's (PyTorch's BLAS) in its strict conditional-numerical-reproducibility mode, and
# OpenBLAS's (NumPy, SciPy and so scikit-learn).
AVX2_PINS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT", "OPENBLAS_CORETYPE": "Haswell"}
# Whatever the CPU: OpenBLAS sums in thread-sized blocks (OPENBLAS_NUM_THREADS wins over OMP_NUM_THREADS).
THREAD_PINS = {"OPENBLAS_NUM_THREADS": "1"}


def cpu_has_avx2(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    if platform.machine().lower() not in {"x86_64", "amd64"}:
        return False
    try:
        return any(line.startswith("flags") and " avx2" in line for line in cpuinfo.read_text().splitlines())
    except OSError:
        return False


def pin_cpu_kernels(environ: MutableMapping[str, str] | None = None, avx2: bool | None = None) -> dict[str, str]:
    """Set the AVX2 pins the user has not set; return those set. Without AVX2 (ARM, old x86) set none:
    results there may differ from an x86-64 machine's in the last bits, as documented in the README."""
    environ = os.environ if environ is None else environ
    wanted = {**THREAD_PINS, **(AVX2_PINS if (cpu_has_avx2() if avx2 is None else avx2) else {})}
    pinned = {name: value for name, value in wanted.items() if not environ.get(name)}
    environ.update(pinned)
    return pinned


def set_torch_threads(threads: int) -> None:
    """Use ``threads`` intra-op threads. The default, 1, is also the fastest for this small model: more
    threads only add synchronisation (ten times slower on a busy two-core machine)."""
    import torch

    torch.set_num_threads(threads)
