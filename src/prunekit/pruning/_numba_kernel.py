"""The compiled loop behind `mask_kernel` (imported only when numba is installed: `pip install 'prunekit[fast]'`)."""

import numba


@numba.njit(nogil=True, cache=True)
def mask_multiply(weights, keep):  # numba infers the types: no annotations
    """weights[i] *= keep[i] over two flat arrays (float32/float64 weights, uint8 mask); LLVM vectorises the loop.

    The product is exact (keep is 0 or 1), so the bits are those of PyTorch's multiply: -0.0 for a pruned negative
    weight, NaN for a pruned infinity.
    """
    for i in range(weights.size):
        weights[i] = weights[i] * keep[i]
