"""Every supported architecture takes the whole round trip on a tiny model the suite generates:
GGUF -> torch -> LoRA-trained and RECALL-merged -> GGUF -> llama.cpp, with llama.cpp and torch
agreeing on the logits and the greedy tokens; and each family's own transform is checked where it
is visible in the file.

Tolerance: llama.cpp and torch both compute in float32 from the same F16 weights, so their logits
differ by accumulation order only. Logits of these models span about +-3; they must agree within
0.02 at every position (measured: 0.002-0.005). A wrong transform is far outside that: without
Llama 3's frequency factors the difference is 0.6, without Phi-3's attention factor 0.33, with the
wrong Gemma 3 sliding-window pattern 1.1.
"""

import dataclasses

import gguf
import numpy as np
import pytest

from clagent import merge
from clagent.errors import ClagentError
from clagent.models import architectures, gguf_io
from clagent.models.architectures import ModelSpec
from clagent.models.quantize import quantize
from clagent.updater.dataset import Tokenized
from clagent.updater.representations import hidden_means
from clagent.updater.train import Anchor, TrainConfig, parse_targets, train_lora
from tests.conftest import smollm2_reader
from tests.tiny_models import SPECS, make_model, state

TOLERANCE = 0.02
# 26 tokens: longer than the tiny Gemma's sliding window (8), so local and global layers differ
TOKENS = [1, 504, 3458, 314, 260, 3575, 282, 4649, 47, 2780, 1230, 90, 17, 77, 4000, 504, 3458, 314, 260, 3575,
          282, 4649, 47, 2780, 1230, 90]


def f16(tensors):
    """The values an F16 master holds: matrices rounded to float16, 1-D tensors kept in float32."""
    return {k: v.astype(np.float16).astype(np.float32) if v.ndim > 1 else v for k, v in tensors.items()}


def llama_run(path, tokens, greedy=0):
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, logits_all=True, verbose=False)
    try:
        llm.eval(tokens)
        logits = np.array(llm.scores[: len(tokens)], dtype=np.float32)
        out = []
        if greedy:
            llm.reset()
            for tok in llm.generate(tokens, temp=0.0, top_k=1):
                out.append(tok)
                if len(out) == greedy:
                    break
        return logits, out
    finally:
        llm.close()


def torch_run(spec, tensors, tokens, greedy=0):
    import torch

    model = architectures.build_model(spec, tensors).eval()
    with torch.no_grad():
        logits = model(torch.tensor([tokens])).logits[0].numpy()
        seq = list(tokens)
        for _ in range(greedy):
            seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
    return logits, seq[len(tokens):]


def examples(n=6, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        ids = [1] + rng.integers(100, 5000, 23).tolist()
        out.append(Tokenized(input_ids=ids, labels=[-100] * 12 + ids[12:], source="memory", prompt="x"))
    return out


def mean_loss(spec, tensors):
    import torch

    from clagent.updater.train import answer_loss

    model = architectures.build_model(spec, tensors, copy=False).eval()
    with torch.no_grad():
        return float(np.mean([float(answer_loss(model, torch.tensor([t.input_ids]), torch.ones(1, len(t.input_ids),
                                                                                                dtype=torch.long),
                                                torch.tensor([t.labels]))) for t in examples()]))


def test_registry_and_unsupported_architecture():
    assert set(architectures.ARCHITECTURES) == {"llama", "qwen2", "qwen3", "gemma3", "phi3"}
    with pytest.raises(ClagentError) as e:
        architectures.get("mamba")
    assert "'mamba' is not supported" in str(e.value)
    assert all(name in str(e.value) for name in ("llama", "qwen2", "qwen3", "gemma3", "phi3"))


@pytest.mark.parametrize("arch", sorted(SPECS))
def test_round_trip_through_lora_merge_and_llama_cpp(arch, tmp_path):
    spec, model = make_model(arch, seed=1)
    source = gguf_io.write_gguf(tmp_path / "source.gguf", spec, state(model), template=smollm2_reader(),
                                name="clagent-tiny")  # llama.cpp special-cases names with "phi3"

    # GGUF -> torch: the spec and the weights come back (F16-rounded) in transformers' layout
    read_spec, base = gguf_io.read_gguf(source)
    assert read_spec == spec
    assert base.keys() == set(architectures.get(arch).tensors(spec))
    for k, v in f16(state(model)).items():
        if k in base:  # Gemma's norms pass through 1 + w in float32: equal within its rounding
            assert np.array_equal(base[k], v) if arch != "gemma3" else np.allclose(base[k], v, rtol=0, atol=1e-7), k
    ref, _ = torch_run(spec, base, TOKENS)
    got, _ = llama_run(source, TOKENS)
    assert np.abs(got - ref).max() < TOLERANCE

    # LoRA on the architecture's own modules, merged into the weights, then RECALL
    trained = train_lora(spec, base, examples(), TrainConfig(max_steps=3, learning_rate=2e-2, rank=4, alpha=8,
                                                             batch_size=2, device="cpu"))
    targets = architectures.lora_targets(spec)
    changed = {k for k in base if not np.array_equal(base[k], trained.tensors[k])}
    assert changed == {k for k in base if any(f".{t}.weight" in k for t in targets)}
    assert np.array_equal(base["model.embed_tokens.weight"], f16(state(model))["model.embed_tokens.weight"])
    assert mean_loss(spec, trained.tensors) < mean_loss(spec, base) - 0.1  # the update is what was learned
    samples = examples(3, seed=5)
    reps = {name: hidden_means(spec, s, samples) for name, s in (("base", base), ("tuned", trained.tensors))}
    merged = merge.merge("recall", {"base": base, "tuned": trained.tensors}, representations=reps).tensors

    # torch -> GGUF -> llama.cpp: same logits within the tolerance, same greedy tokens
    out = gguf_io.write_gguf(tmp_path / "merged.gguf", spec, merged, template=source)
    assert gguf_io.read_gguf(out)[0] == spec
    ref, ref_tokens = torch_run(spec, f16(merged), TOKENS, greedy=12)
    got, got_tokens = llama_run(out, TOKENS, greedy=12)
    assert np.abs(got - ref).max() < TOLERANCE, np.abs(got - ref).max()
    assert (got.argmax(-1) == ref.argmax(-1)).all()
    assert got_tokens == ref_tokens
    # the merge changed what the model computes, so agreeing is not agreeing on the base again
    assert np.abs(ref - torch_run(spec, f16(base), TOKENS)[0]).max() > 10 * TOLERANCE

    # and it quantizes and serves
    q8 = quantize(out, tmp_path / "merged.q8_0.gguf", "Q8_0")
    q8_logits, _ = llama_run(q8, TOKENS)
    assert np.corrcoef(q8_logits.ravel(), got.ravel())[0, 1] > 0.99
    assert gguf_io.describe(q8).spec == spec and gguf_io.describe(q8).quantization == "Q8_0"


def test_llama_q_and_k_are_permuted_into_llama_cpp_layout(tmp_path):
    spec, model = make_model("llama")
    path = gguf_io.write_gguf(tmp_path / "m.gguf", spec, state(model), template=smollm2_reader())
    raw = {t.name: t for t in gguf.GGUFReader(path).tensors}
    q = state(model)["model.layers.0.self_attn.q_proj.weight"]
    stored = np.array(raw["blk.0.attn_q.weight"].data, dtype=np.float32).reshape(q.shape)
    # one head's rows: transformers [x0..x7 | y0..y7], llama.cpp pairs (x0 y0) (x1 y1) ...
    head = q[: spec.head_dim].astype(np.float16).astype(np.float32)
    assert np.array_equal(stored[0], head[0]) and np.array_equal(stored[1], head[spec.head_dim // 2])
    assert np.array_equal(raw["rope_freqs.weight"].data, np.array(spec.rope_freq_factors, np.float32))


def test_gemma3_norms_are_stored_with_their_offset(tmp_path):
    spec, model = make_model("gemma3")
    path = gguf_io.write_gguf(tmp_path / "m.gguf", spec, state(model), template=smollm2_reader())
    raw = {t.name: np.array(t.data) for t in gguf.GGUFReader(path).tensors}
    st = state(model)
    for hf, gg in [("model.layers.0.input_layernorm.weight", "blk.0.attn_norm.weight"),
                   ("model.layers.0.pre_feedforward_layernorm.weight", "blk.0.ffn_norm.weight"),
                   ("model.layers.0.post_feedforward_layernorm.weight", "blk.0.post_ffw_norm.weight"),
                   ("model.layers.1.self_attn.q_norm.weight", "blk.1.attn_q_norm.weight"),
                   ("model.norm.weight", "output_norm.weight")]:
        assert np.allclose(raw[gg], st[hf] + 1.0, atol=1e-7), gg
    reader = gguf.GGUFReader(path)
    assert reader.fields["gemma3.attention.sliding_window"].contents() == 8
    assert reader.fields["gemma3.attention.sliding_window_pattern"].contents() == 3
    assert "output.weight" not in raw  # tied to the embeddings


def test_qwen2_biases_and_phi3_fused_tensors_in_the_file(tmp_path):
    spec, model = make_model("qwen2")
    path = gguf_io.write_gguf(tmp_path / "q.gguf", spec, state(model), template=smollm2_reader())
    names = {t.name for t in gguf.GGUFReader(path).tensors}
    assert {"blk.0.attn_q.bias", "blk.0.attn_k.bias", "blk.0.attn_v.bias", "output.weight"} <= names

    spec, model = make_model("phi3")
    path = gguf_io.write_gguf(tmp_path / "p.gguf", spec, state(model), template=smollm2_reader())
    shapes = {t.name: tuple(int(d) for d in reversed(t.shape)) for t in gguf.GGUFReader(path).tensors}
    q, kv = spec.n_head * spec.head_dim, spec.n_head_kv * spec.head_dim
    assert shapes["blk.0.attn_qkv.weight"] == (q + 2 * kv, spec.n_embd)
    assert shapes["blk.0.ffn_up.weight"] == (2 * spec.n_ff, spec.n_embd) and "blk.0.ffn_gate.weight" not in shapes
    assert shapes["rope_factors_short.weight"] == (spec.n_rot // 2,)


def test_phi3_file_with_separate_q_k_v_is_fused_on_import(tmp_path):
    """Some converters write Phi-3's q, k and v apart; llama.cpp accepts both, so does the reader."""
    spec, model = make_model("phi3")
    st = state(model)
    fused = gguf_io.write_gguf(tmp_path / "fused.gguf", spec, st, template=smollm2_reader())
    split = tmp_path / "split.gguf"
    reader = gguf.GGUFReader(fused)
    writer = gguf.GGUFWriter(split, "phi3")
    for key, field in reader.fields.items():
        if not key.startswith(("GGUF.", "general.architecture")):
            vtype = field.types[0]
            writer.add_key_value(key, field.contents(), vtype, field.types[-1] if vtype == gguf.GGUFValueType.ARRAY
                                 else None)
    q, kv = spec.n_head * spec.head_dim, spec.n_head_kv * spec.head_dim
    for t in reader.tensors:
        data = np.array(t.data)
        if t.name.endswith("attn_qkv.weight"):
            block = t.name[: -len("attn_qkv.weight")]
            for part, rows in (("q", slice(0, q)), ("k", slice(q, q + kv)), ("v", slice(q + kv, q + 2 * kv))):
                writer.add_tensor(f"{block}attn_{part}.weight", np.ascontiguousarray(data[rows]))
        else:
            writer.add_tensor(t.name, data)
    writer.write_header_to_file(), writer.write_kv_data_to_file(), writer.write_tensors_to_file(), writer.close()
    a, b = gguf_io.read_gguf(fused)[1], gguf_io.read_gguf(split)[1]
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert np.abs(llama_run(split, TOKENS)[0] - llama_run(fused, TOKENS)[0]).max() < 1e-4


def test_spec_of_a_llama_model_reads_as_before():
    """Versions recorded before other families existed keep comparing equal (RECALL's extra experts)."""
    old = dict(n_vocab=49152, n_embd=576, n_ff=1536, n_layer=30, n_head=9, n_head_kv=3, n_ctx_train=8192,
               rope_theta=100000.0, rms_eps=1e-05, tied_embeddings=True)
    spec = ModelSpec.from_dict(old)
    assert spec.arch == "llama" and spec.head_dim == 64 and spec.to_dict() == old
    assert dataclasses.replace(spec, arch="qwen2").to_dict() == {**old, "arch": "qwen2"}
    assert ModelSpec.from_dict(SPECS["phi3"].to_dict()) == SPECS["phi3"]
    assert architectures.parameter_count(spec) == 134_515_008  # SmolLM2-135M, tied head counted once


@pytest.mark.parametrize("arch", sorted(SPECS))
def test_answer_only_loss_is_the_models_own_loss(arch):
    """Training applies the output head only at labelled positions; the loss is the model's own."""
    import torch

    from clagent.updater.train import answer_loss

    _, model = make_model(arch)
    ids = torch.tensor([[1, 5, 9, 200, 300, 400, 17, 0], [1, 50, 90, 20, 30, 40, 170, 80]])
    mask = torch.tensor([[1] * 7 + [0], [1] * 8])
    labels = ids.clone()
    labels[:, :4] = -100
    labels[0, 7] = -100
    with torch.no_grad():
        expected = float(model(input_ids=ids, attention_mask=mask, labels=labels).loss)
        assert float(answer_loss(model, ids, mask, labels)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("arch", sorted(SPECS))
def test_lora_target_setting_names_each_architectures_own_modules(arch):
    spec, _ = make_model(arch)
    block = architectures.get(arch).block_tensors(spec)
    attention, mlp = parse_targets("attention", spec), parse_targets("mlp", spec)
    assert attention and all(f"self_attn.{n}.weight" in block for n in attention)
    assert mlp and all(f"mlp.{n}.weight" in block for n in mlp)
    assert parse_targets("all", spec) == architectures.lora_targets(spec) == attention + mlp
    if arch == "phi3":  # the fused modules are what "attention" and "mlp" mean there
        assert attention == ["qkv_proj", "o_proj"] and mlp == ["gate_up_proj", "down_proj"]
        with pytest.raises(ValueError, match="unknown LoRA target 'q_proj' for phi3 models: use all, attention, "
                                             "mlp or qkv_proj, o_proj, gate_up_proj, down_proj"):
            parse_targets("attention, q_proj", spec)
        with pytest.raises(ValueError, match="the phi3 model has no LoRA target 'gate_proj'"):
            train_lora(spec, state(make_model(arch)[1]), examples(), TrainConfig(max_steps=1, targets=["gate_proj"]))
    else:
        assert parse_targets("q_proj, mlp", spec) == ["q_proj"] + mlp


@pytest.mark.parametrize("arch", sorted(SPECS))
def test_anchored_training_on_chosen_modules(arch):
    """The KL anchor and the lora_targets setting on every family: the reference taken with the
    head on the answer positions only is the model's own (Gemma's soft-capping included), and only
    the chosen modules change."""
    import torch

    spec, model = make_model(arch, seed=2)
    base = state(model)
    rng = np.random.default_rng(3)
    general = [[1] + rng.integers(100, 5000, 19).tolist() for _ in range(3)]
    cfg = TrainConfig(max_steps=4, learning_rate=2e-2, rank=4, alpha=8, batch_size=2, device="cpu",
                      targets=parse_targets("mlp", spec), anchor_weight=1.0, anchor_batch=2)
    trained = train_lora(spec, base, examples(), cfg, anchors=[Anchor(g, 8) for g in general])
    assert len(trained.anchor_kl) == 4 and all(np.isfinite(trained.anchor_kl))
    reference = architectures.build_model(spec, base).eval()
    with torch.no_grad():
        for a in trained.anchors:
            logp = torch.log_softmax(reference(torch.tensor([a.input_ids])).logits[0, a.start:-1].float(), -1)
            top = logp.topk(32, dim=-1)
            assert np.allclose(a.logp, top.values.numpy(), atol=1e-4)
    changed = {k for k in base if not np.array_equal(base[k], trained.tensors[k])}
    assert changed == {k for k in base if any(f"mlp.{t}.weight" in k for t in parse_targets("mlp", spec))}
