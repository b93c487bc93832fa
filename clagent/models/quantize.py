"""Quantize a float GGUF with llama.cpp's own quantizer."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from clagent.errors import ClagentError

# Name accepted in settings -> llama.cpp ftype constant name.
QUANT_TYPES = {
    "F32": "LLAMA_FTYPE_ALL_F32",
    "F16": "LLAMA_FTYPE_MOSTLY_F16",
    "BF16": "LLAMA_FTYPE_MOSTLY_BF16",
    "Q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "Q6_K": "LLAMA_FTYPE_MOSTLY_Q6_K",
    "Q5_K_M": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "Q4_K_M": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "Q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
    "Q4_1": "LLAMA_FTYPE_MOSTLY_Q4_1",
}


def check_quant(name: str) -> str:
    if name not in QUANT_TYPES:
        raise ClagentError(f"unknown quantization {name!r}; choose one of {', '.join(QUANT_TYPES)}")
    return name


def quantize(src: str | os.PathLike, dst: str | os.PathLike, quant: str, n_threads: int = 0) -> Path:
    """Write ``dst`` as a ``quant`` quantization of ``src`` (temporary file, then rename)."""
    import logging

    import llama_cpp

    # llama.cpp logs every tensor it converts; keep its errors only.
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    check_quant(quant)
    src, dst = Path(src), Path(dst)
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANT_TYPES[quant])
    params.nthread = n_threads
    try:
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
        if rc != 0 or not tmp.exists():
            raise ClagentError(f"llama.cpp could not quantize {src} to {quant} (code {rc})")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst
