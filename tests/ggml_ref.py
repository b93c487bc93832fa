"""llama.cpp's own dequantization, called through ctypes in the ggml library that llama-cpp-python
ships (``ggml_get_type_traits(type)->to_float``): the reference clagent's reader is checked against."""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

_TO_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(ctypes.c_float), ctypes.c_int64)


class _Traits(ctypes.Structure):  # struct ggml_type_traits (ggml.h)
    _fields_ = [("type_name", ctypes.c_char_p), ("blck_size", ctypes.c_int64),
                ("blck_size_interleave", ctypes.c_int64), ("type_size", ctypes.c_size_t),
                ("is_quantized", ctypes.c_bool), ("to_float", ctypes.c_void_p),
                ("from_float_ref", ctypes.c_void_p)]


def _library() -> ctypes.CDLL:
    import llama_cpp

    lib_dir = Path(llama_cpp.__file__).parent / "lib"
    candidates = sorted(lib_dir.glob("libggml-base.*")) + sorted(lib_dir.glob("libggml.*"))
    for path in candidates:
        try:
            lib = ctypes.CDLL(str(path))
            lib.ggml_get_type_traits  # noqa: B018 - present?
            lib.ggml_get_type_traits.restype = ctypes.POINTER(_Traits)
            lib.ggml_get_type_traits.argtypes = [ctypes.c_int]
            return lib
        except (OSError, AttributeError):
            continue
    raise RuntimeError(f"no ggml library with ggml_get_type_traits under {lib_dir}")


def dequantize(tensor) -> np.ndarray:
    """A GGUF tensor (from gguf.GGUFReader) dequantized by ggml, in numpy's (rows, cols) order."""
    traits = _library().ggml_get_type_traits(int(tensor.tensor_type)).contents
    n = int(np.prod([int(d) for d in tensor.shape]))
    raw = np.ascontiguousarray(tensor.data).reshape(-1).view(np.uint8)
    out = np.empty(n, dtype=np.float32)
    if traits.to_float:
        _TO_FLOAT(traits.to_float)(raw.ctypes.data, out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), n)
    elif traits.type_name == b"f32":
        out[:] = raw.reshape(-1).view(np.float32)
    else:
        raise RuntimeError(f"ggml has no to_float for {traits.type_name!r}")
    return out.reshape(tuple(int(d) for d in reversed(tensor.shape)))
