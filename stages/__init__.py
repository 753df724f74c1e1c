"""Pipeline stages: each module reads its params and inputs, calls ``digitflow``, writes its outputs."""

from digitflow.core.determinism import pin_cpu_kernels

# Before any stage module imports NumPy or PyTorch: their libraries read these variables when loaded.
pin_cpu_kernels()
