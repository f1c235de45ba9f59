"""The compiled CSR kernels behind the `prunekit_csr` path (imported only when numba is installed).

The weight is CSR: `indptr` (uint32, one entry per output row + 1), `indices` (uint16 when the layer has at most
65,536 inputs, else uint32: unsigned, so numba emits no negative-index wraparound) and `values` (float32/float64).
Bytes per kept weight: 6 (uint16) or 8, against 4 per weight, kept or not, for the dense matrix.

- `rows`: one sparse dot product per output and input row, y[n, i] = sum_j values[j] * x[n, indices[j]]: the input
  row is small enough to stay in L1 while the weight streams through once per input row. Best for few rows.
- `columns`: the input transposed to (in, n), so each kept weight scales a contiguous input row of length n into
  the output row: a vectorised loop over the batch. Best for many rows (and for convolutions, whose unfolded input
  already has this layout).
fastmath lets LLVM reorder the sums (results equal the dense product up to float rounding, tested to 1e-5 relative).
"""

import numba
import numpy as np


@numba.njit(fastmath=True, nogil=True, cache=True)
def rows(indptr, indices, values, x, bias, y):  # numba infers the types: no annotations
    """y[n, i] = bias[i] + sum_j values[j] * x[n, indices[j]] (bias: zeros for a layer without one)."""
    for n in range(x.shape[0]):
        for i in range(indptr.size - 1):
            acc = bias[i]
            for j in range(indptr[i], indptr[i + 1]):
                acc += values[j] * x[n, indices[j]]
            y[n, i] = acc


@numba.njit(fastmath=True, nogil=True, cache=True)
def columns(indptr, indices, values, xt, bias, out):
    """out[i, :] = bias[i] + sum_j values[j] * xt[indices[j], :], with xt (in, n) and out (rows, n) C-contiguous."""
    n = xt.shape[1]
    for i in range(indptr.size - 1):
        for b in range(n):
            out[i, b] = bias[i]
        for j in range(indptr[i], indptr[i + 1]):
            v = values[j]
            c = indices[j]
            for b in range(n):
                out[i, b] += v * xt[c, b]


@numba.njit(fastmath=True, nogil=True, parallel=True, cache=True)
def rows_parallel(indptr, indices, values, x, bias, y):
    for n in range(x.shape[0]):
        for i in numba.prange(indptr.size - 1):
            acc = bias[i]
            for j in range(indptr[i], indptr[i + 1]):
                acc += values[j] * x[n, indices[j]]
            y[n, i] = acc


@numba.njit(fastmath=True, nogil=True, parallel=True, cache=True)
def columns_parallel(indptr, indices, values, xt, bias, out):
    n = xt.shape[1]
    for i in numba.prange(indptr.size - 1):
        for b in range(n):
            out[i, b] = bias[i]
        for j in range(indptr[i], indptr[i + 1]):
            v = values[j]
            c = indices[j]
            for b in range(n):
                out[i, b] += v * xt[c, b]


def available_threads() -> int:
    return numba.config.NUMBA_NUM_THREADS


def set_threads(threads: int) -> None:
    if numba.get_num_threads() != threads:
        numba.set_num_threads(threads)


UNSIGNED = {np.dtype(np.int16): np.uint16, np.dtype(np.int32): np.uint32}
