"""Pipeline stages: each module reads its params and inputs, calls ``digitflow``, writes its outputs."""

from digitflow.core.determinism import pin_cpu_kernels
from digitflow.core.warm.client import run_warm_or_return

# Before any stage module imports NumPy or PyTorch: their libraries read these variables when loaded.
pin_cpu_kernels()
# `python -m stages.<name>` runs in a warm server's child if there is one (and exits here with its
# status); otherwise, or inside that child, the stage runs in this process (digitflow/core/warm).
run_warm_or_return()
