"""GGUF export/import: permutations, GGUF -> torch -> GGUF, and parity with llama.cpp."""

import numpy as np
import pytest

from clagent.errors import ClagentError
from clagent.models import embedded, gguf_io
from clagent.models.quantize import quantize
from tests.conftest import TINY, make_tiny_model

PROMPT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"


def test_permutation_is_inverted_exactly():
    rng = np.random.default_rng(0)
    for n_head, rows, cols in [(4, 64, 64), (2, 32, 64), (9, 576, 576), (3, 192, 576)]:
        w = rng.standard_normal((rows, cols)).astype(np.float32)
        p = gguf_io.permute_to_gguf(w, n_head)
        assert not np.array_equal(p, w)
        assert np.array_equal(gguf_io.permute_from_gguf(p, n_head), w)


def test_permutation_interleaves_rotary_halves():
    # one head of dim 4: transformers keeps halves [x0 x1 | y0 y1], llama.cpp pairs [x0 y0 x1 y1]
    w = np.arange(4, dtype=np.float32).reshape(4, 1)
    assert gguf_io.permute_to_gguf(w, 1).ravel().tolist() == [0, 2, 1, 3]


def llama_logits(path, tokens):
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, logits_all=True, verbose=False)
    try:
        llm.eval(tokens)
        return np.array(llm.scores[: len(tokens)], dtype=np.float32), llm
    except Exception:
        llm.close()
        raise


def torch_logits(spec, tensors, tokens):
    import torch
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM(spec.hf_config()).eval()
    state = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in tensors.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}
    model.tie_weights()
    with torch.no_grad():
        return model(torch.tensor([tokens])).logits[0].numpy(), model


def greedy_torch(model, tokens, n):
    import torch

    out = list(tokens)
    with torch.no_grad():
        for _ in range(n):
            out.append(int(model(torch.tensor([out])).logits[0, -1].argmax()))
    return out[len(tokens):]


def greedy_llama(llm, tokens, n):
    llm.reset()
    out = []
    for tok in llm.generate(tokens, temp=0.0, top_k=1):
        out.append(tok)
        if len(out) == n:
            break
    return out


def test_tiny_roundtrip_gguf_torch_gguf(tmp_path, tiny_gguf):
    """GGUF -> torch -> GGUF keeps every tensor bit for bit, and llama.cpp agrees with torch."""
    spec, tensors = gguf_io.read_gguf(tiny_gguf)
    assert spec == gguf_io.LlamaSpec(**TINY)
    again = gguf_io.write_gguf(tmp_path / "again.gguf", spec, tensors, template=tiny_gguf)
    spec2, tensors2 = gguf_io.read_gguf(again)
    assert spec2 == spec and tensors2.keys() == tensors.keys()
    for k in tensors:
        assert np.array_equal(tensors[k], tensors2[k]), k

    import llama_cpp

    vocab_llm = llama_cpp.Llama(model_path=str(again), n_ctx=64, verbose=False, vocab_only=True)
    tokens = vocab_llm.tokenize(PROMPT.encode(), add_bos=False, special=True)
    vocab_llm.close()
    ref, model = torch_logits(spec, tensors, tokens)
    got, llm = llama_logits(again, tokens)
    try:
        # F16 tensors loaded as float32 on both sides: differences are accumulation order only
        assert np.abs(got - ref).max() < 0.02, np.abs(got - ref).max()
        assert (got.argmax(-1) == ref.argmax(-1)).all()
        assert greedy_llama(llm, tokens, 12) == greedy_torch(model, tokens, 12)
    finally:
        llm.close()


def test_export_matches_torch_model_of_origin(tmp_path):
    """torch -> GGUF: the exported file computes what the torch model it came from computes."""
    import torch

    spec, model = make_tiny_model(seed=3)
    path = gguf_io.write_gguf(tmp_path / "m.gguf", spec, model.state_dict(), template=embedded.default_model_path())
    tokens = [1, 504, 3458, 314, 260, 3575, 282, 4649, 47]
    with torch.no_grad():
        # compare against the F16-rounded weights the file holds
        model.half().float()
        ref = model(torch.tensor([tokens])).logits[0].numpy()
    got, llm = llama_logits(path, tokens)
    llm.close()
    assert np.abs(got - ref).max() < 0.02


def test_quantized_q8_0_stays_close(tmp_path, tiny_gguf):
    q8 = quantize(tiny_gguf, tmp_path / "q8.gguf", "Q8_0")
    assert q8.stat().st_size < tiny_gguf.stat().st_size * 0.75
    tokens = [1, 504, 3458, 314, 260, 3575]
    ref, a = llama_logits(tiny_gguf, tokens)
    got, b = llama_logits(q8, tokens)
    a.close(), b.close()
    corr = np.corrcoef(ref.ravel(), got.ravel())[0, 1]
    assert corr > 0.99, corr


def test_corrupt_and_foreign_files_get_clear_errors(tmp_path, tiny_gguf):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + b"\x00\xff" * 100)
    with pytest.raises(ClagentError, match="not a valid GGUF"):
        gguf_io.read_gguf(junk)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(tiny_gguf.read_bytes()[:100_000])
    with pytest.raises(ClagentError, match="not a valid GGUF"):
        gguf_io.read_gguf(truncated)
    with pytest.raises(ClagentError, match="not found"):
        gguf_io.read_gguf(tmp_path / "missing.gguf")


@pytest.mark.smollm2
def test_smollm2_roundtrip_keeps_greedy_answer(tmp_path):
    """The embedded Q4_1 model -> float torch -> F16 GGUF -> llama.cpp: the same greedy tokens
    as the torch model, last-position logits within 0.1."""
    source = embedded.default_model_path()
    spec, tensors = gguf_io.read_gguf(source)
    assert (spec.n_layer, spec.n_embd, spec.n_head, spec.n_head_kv) == (30, 576, 9, 3)
    master = gguf_io.write_gguf(tmp_path / "master.gguf", spec, tensors, template=source)

    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(master), n_ctx=256, logits_all=True, verbose=False)
    try:
        tokens = llm.tokenize(PROMPT.encode(), add_bos=False, special=True)
        llm.eval(tokens)
        got = np.array(llm.scores[len(tokens) - 1], dtype=np.float32)
        ref_all, model = torch_logits(spec, tensors, tokens)
        assert np.abs(got - ref_all[-1]).max() < 0.1
        ours = greedy_llama(llm, tokens, 8)
        assert ours == greedy_torch(model, tokens, 8)
        assert "Paris" in llm.detokenize(ours).decode()
    finally:
        llm.close()
