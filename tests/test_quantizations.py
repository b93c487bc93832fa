"""Source files in every common quantization are read exactly as llama.cpp reads them.

A tiny llama model (width 256, so that the k-quants apply to every matrix) is written in F16 and
quantized by llama.cpp's own quantizer to each type; clagent's reader must return, for every
tensor, what ggml's own ``to_float`` for that type returns (bit for bit), in transformers' layout.
"""

import gguf
import numpy as np
import pytest

from clagent.models import architectures, gguf_io
from clagent.models.architectures import ModelSpec
from clagent.models.quantize import quantize
from tests.conftest import smollm2_reader
from tests.ggml_ref import dequantize as ggml_dequantize
from tests.tiny_models import BASE, make_model, state

# file type -> the tensor types llama.cpp writes for it (k-quant mixes keep some tensors at Q6_K)
TYPES = {
    "F32": {"F32"}, "F16": {"F16"}, "BF16": {"BF16"}, "Q8_0": {"Q8_0"}, "Q6_K": {"Q6_K"},
    "Q5_K_M": {"Q5_K", "Q6_K"}, "Q4_K_M": {"Q4_K", "Q6_K"}, "Q4_0": {"Q4_0"}, "Q4_1": {"Q4_1"},
}


@pytest.fixture(scope="module")
def f16_source(tmp_path_factory):
    spec = ModelSpec(**{**BASE, "n_embd": 256, "n_ff": 512})
    spec, model = make_model("llama", seed=2, spec=spec)
    path = gguf_io.write_gguf(tmp_path_factory.mktemp("quant") / "src.f16.gguf", spec, state(model),
                              template=smollm2_reader(), name="clagent-tiny-256")
    return path, gguf_io.read_gguf(path)[1]


@pytest.mark.parametrize("quant", list(TYPES))
def test_dequantization_matches_llama_cpp(quant, f16_source, tmp_path):
    source, src = f16_source
    path = quantize(source, tmp_path / f"m.{quant}.gguf", quant)
    reader = gguf_io.open_gguf(path)
    info = gguf_io.describe(reader)
    assert info.quantization == quant and info.arch == "llama"
    matrix_types = {t.tensor_type.name for t in reader.tensors if len(t.shape) > 1}
    assert TYPES[quant] <= matrix_types <= TYPES[quant] | {"Q6_K", "Q8_0", "F16", "F32"}  # some fallbacks allowed

    spec, tensors = gguf_io.read_gguf(reader)
    arch = architectures.get(spec.arch)
    by_gguf = {gg: hf for hf, (gg, _) in arch.tensors(spec).items()}
    for t in reader.tensors:
        if t.name in arch.ignored_gguf_tensors():
            continue
        hf = by_gguf[t.name]
        assert np.array_equal(tensors[hf], arch.from_gguf(hf, ggml_dequantize(t), spec)), (quant, t.name)
    # and the numbers are the model's: close to the F16 source, closer the more bits
    w = "model.layers.0.mlp.down_proj.weight"
    rel = np.abs(tensors[w] - src[w]).mean() / np.abs(src[w]).mean()
    assert rel < {"Q4_0": 0.15, "Q4_1": 0.15, "Q4_K_M": 0.15, "Q5_K_M": 0.08, "Q6_K": 0.04}.get(quant, 0.01), rel


def test_reference_is_llama_cpp_and_not_the_reader():
    """The reference above comes from ggml's C code, not from gguf-py's (which the reader uses)."""
    from tests import ggml_ref

    lib = ggml_ref._library()
    traits = lib.ggml_get_type_traits(int(gguf.GGMLQuantizationType.Q4_K)).contents
    assert traits.type_name == b"q4_K" and traits.blck_size == 256 and traits.to_float
