"""Memory TensorFlow can use in place: arrays allocated 64-byte aligned (no TensorFlow here)."""

from __future__ import annotations

import numpy as np

ALIGNMENT = 64  # bytes: what TensorFlow's (Eigen's) kernels require of a tensor's memory


def aligned_empty(shape, dtype) -> np.ndarray:
    """An uninitialised array whose memory TensorFlow can use in place (64-byte aligned)."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(size + ALIGNMENT, dtype=np.uint8)
    offset = -raw.ctypes.data % ALIGNMENT
    return raw[offset : offset + size].view(dtype).reshape(shape)
