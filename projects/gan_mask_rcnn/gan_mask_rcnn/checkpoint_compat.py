"""Let ``torch.load`` (``weights_only=True`` by default since torch 2.6) read MMEngine
checkpoints.

MMEngine 0.10.7 calls ``torch.load`` without ``weights_only`` and its checkpoints
carry the message hub (``HistoryBuffer`` objects holding numpy arrays), so `mim test`,
`--resume`, ``init_detector`` and ``DetInferencer`` fail on torch >= 2.6 with
"Weights only load failed". Instead of turning the safe loader off, this allowlists
exactly the types such a checkpoint contains. The message hub also pickles
``HistoryBuffer.min`` etc. as ``getattr(HistoryBuffer, 'min')``; a plain ``getattr``
on the allowlist would open the loader to arbitrary code, so a ``getattr`` that only
resolves HistoryBuffer's statistics methods is registered under that name instead.
"""
import numpy as np
import torch
from mmengine.logging import HistoryBuffer


def _history_buffer_getattr(obj, name):
    """``getattr`` restricted to the HistoryBuffer statistics that MMEngine pickles."""
    if obj is HistoryBuffer and name in ('min', 'max', 'current', 'mean'):
        return getattr(HistoryBuffer, name)
    raise RuntimeError(f'refusing getattr({obj!r}, {name!r}) while loading a checkpoint')


def allow_mmengine_checkpoint_types() -> None:
    """Add HistoryBuffer and the numpy array/scalar rebuild types to torch's allowlist."""
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:
        from numpy.core import multiarray
    dtype_classes = {type(np.dtype(code)) for code in np.typecodes['All']}
    torch.serialization.add_safe_globals(
        [HistoryBuffer, multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype,
         *sorted(dtype_classes, key=lambda c: c.__name__),
         (_history_buffer_getattr, 'builtins.getattr')])
