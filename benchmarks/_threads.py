"""Limiting NumPy's BLAS and PyTorch's OpenMP pools to a number of threads.

The libraries read these variables once, when they load: call ``limit_threads``
before the first ``import numpy`` or ``import torch`` of the process. One thread
makes timings steadier on a busy machine, where threads spin-wait on each other.

A helper module, not a benchmark: running it does nothing (``make bench`` skips it).
"""

import os

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def limit_threads(n):
    """Ask BLAS and OpenMP (NumPy, PyTorch) for ``n`` threads each."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(n)
