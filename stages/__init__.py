"""Pipeline stages: each module reads its params and inputs, calls ``digitflow``, writes its outputs."""
