"""Read a llama-architecture GGUF into float tensors with Hugging Face names, and write them back.

Tensors cross this boundary as float32 numpy arrays keyed by transformers' names
(``model.layers.3.self_attn.q_proj.weight``), so the trainer and the merge code never see GGUF.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping

import gguf
import numpy as np

from clagent.errors import ClagentError

ARCH = "llama"
FILE_TYPE_F16 = 1  # LLAMA_FTYPE_MOSTLY_F16

Progress = Callable[[int, int, str], None]

# transformers name (without ".weight") -> GGUF name, for one block; "{i}" is the block index.
_BLOCK_NAMES = {
    "model.layers.{i}.input_layernorm": "blk.{i}.attn_norm",
    "model.layers.{i}.self_attn.q_proj": "blk.{i}.attn_q",
    "model.layers.{i}.self_attn.k_proj": "blk.{i}.attn_k",
    "model.layers.{i}.self_attn.v_proj": "blk.{i}.attn_v",
    "model.layers.{i}.self_attn.o_proj": "blk.{i}.attn_output",
    "model.layers.{i}.post_attention_layernorm": "blk.{i}.ffn_norm",
    "model.layers.{i}.mlp.gate_proj": "blk.{i}.ffn_gate",
    "model.layers.{i}.mlp.up_proj": "blk.{i}.ffn_up",
    "model.layers.{i}.mlp.down_proj": "blk.{i}.ffn_down",
}
_GLOBAL_NAMES = {
    "model.embed_tokens": "token_embd",
    "model.norm": "output_norm",
    "lm_head": "output",
}

# Hyper-parameter keys we write from the spec; every other key is copied from the source file.
_SPEC_KEYS = {
    "context_length", "embedding_length", "block_count", "feed_forward_length",
    "attention.head_count", "attention.head_count_kv", "attention.layer_norm_rms_epsilon",
    "rope.freq_base", "rope.dimension_count", "vocab_size",
}


@dataclass(frozen=True)
class LlamaSpec:
    """The hyper-parameters that define a llama-architecture model's shapes."""

    n_vocab: int
    n_embd: int
    n_ff: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ctx_train: int
    rope_theta: float
    rms_eps: float
    tied_embeddings: bool

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def to_dict(self) -> dict:
        return asdict(self)

    def hf_config(self):
        from transformers import LlamaConfig

        return LlamaConfig(
            vocab_size=self.n_vocab, hidden_size=self.n_embd, intermediate_size=self.n_ff,
            num_hidden_layers=self.n_layer, num_attention_heads=self.n_head,
            num_key_value_heads=self.n_head_kv, max_position_embeddings=self.n_ctx_train,
            rope_theta=self.rope_theta, rms_norm_eps=self.rms_eps,
            tie_word_embeddings=self.tied_embeddings, hidden_act="silu",
            attention_bias=False, mlp_bias=False,
        )

    @classmethod
    def from_hf_config(cls, cfg) -> "LlamaSpec":
        rope_theta = getattr(cfg, "rope_theta", None)
        if rope_theta is None:  # transformers >= 5 keeps it in rope_parameters
            rope_theta = (getattr(cfg, "rope_parameters", None) or {}).get("rope_theta", 10000.0)
        return cls(
            n_vocab=cfg.vocab_size, n_embd=cfg.hidden_size, n_ff=cfg.intermediate_size,
            n_layer=cfg.num_hidden_layers, n_head=cfg.num_attention_heads,
            n_head_kv=cfg.num_key_value_heads, n_ctx_train=cfg.max_position_embeddings,
            rope_theta=float(rope_theta), rms_eps=float(cfg.rms_norm_eps),
            tied_embeddings=bool(cfg.tie_word_embeddings),
        )


def tensor_name_map(n_layer: int) -> dict[str, str]:
    """transformers weight name -> GGUF tensor name, for every tensor of the model."""
    out = {f"{hf}.weight": f"{gg}.weight" for hf, gg in _GLOBAL_NAMES.items()}
    for i in range(n_layer):
        for hf, gg in _BLOCK_NAMES.items():
            out[f"{hf.format(i=i)}.weight"] = f"{gg.format(i=i)}.weight"
    return out


def permute_to_gguf(w: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder q/k rows from transformers' rotary layout to llama.cpp's (interleaved halves)."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def permute_from_gguf(w: np.ndarray, n_head: int) -> np.ndarray:
    """The inverse of :func:`permute_to_gguf`."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


GGUF_MAGIC = b"GGUF"


def check_gguf_file(path: str | os.PathLike) -> Path:
    """A cheap check (exists, GGUF magic) before handing a file to llama.cpp."""
    path = Path(path)
    if not path.is_file():
        raise ClagentError(f"model file not found: {path}")
    with open(path, "rb") as f:
        if f.read(4) != GGUF_MAGIC:
            raise ClagentError(f"{path} is not a valid GGUF file (bad magic number)")
    return path


def open_gguf(path: str | os.PathLike) -> gguf.GGUFReader:
    """Open a GGUF file, turning any parse failure into a one-line error."""
    path = check_gguf_file(path)
    try:
        return gguf.GGUFReader(path)
    except Exception as e:  # gguf raises ValueError, struct.error, IndexError ... on junk
        raise ClagentError(f"{path} is not a valid GGUF file ({type(e).__name__}: {e})") from None


def _field(reader: gguf.GGUFReader, key: str, default=None):
    f = reader.fields.get(key)
    if f is None:
        if default is None:
            raise ClagentError(f"GGUF is missing metadata key {key!r}")
        return default
    return f.contents()


def architecture(reader: gguf.GGUFReader) -> str:
    return str(_field(reader, "general.architecture", "unknown"))


def read_spec(reader: gguf.GGUFReader) -> LlamaSpec:
    arch = architecture(reader)
    if arch != ARCH:
        raise ClagentError(
            f"model architecture {arch!r} is not supported: clagent trains and exports "
            f"{ARCH!r}-architecture GGUF models"
        )
    names = {t.name for t in reader.tensors}
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    n_vocab = _field(reader, f"{ARCH}.vocab_size", len(tokens.data) if tokens else 0)
    n_embd = int(_field(reader, f"{ARCH}.embedding_length"))
    n_head = int(_field(reader, f"{ARCH}.attention.head_count"))
    return LlamaSpec(
        n_vocab=int(n_vocab),
        n_embd=n_embd,
        n_ff=int(_field(reader, f"{ARCH}.feed_forward_length")),
        n_layer=int(_field(reader, f"{ARCH}.block_count")),
        n_head=n_head,
        n_head_kv=int(_field(reader, f"{ARCH}.attention.head_count_kv", n_head)),
        n_ctx_train=int(_field(reader, f"{ARCH}.context_length", 2048)),
        rope_theta=_f32(_field(reader, f"{ARCH}.rope.freq_base", 10000.0)),
        rms_eps=_f32(_field(reader, f"{ARCH}.attention.layer_norm_rms_epsilon", 1e-5)),
        tied_embeddings="output.weight" not in names,
    )


def _f32(value) -> float:
    """GGUF stores these as float32: 1e-5 comes back as 9.99999974e-06. Undo that rounding."""
    return float(f"{float(value):.7g}")


def as_reader(source: "str | os.PathLike | gguf.GGUFReader") -> gguf.GGUFReader:
    """Parsing a GGUF's tokenizer metadata takes seconds: pass an open reader where you have one."""
    return source if isinstance(source, gguf.GGUFReader) else open_gguf(source)


def read_gguf(source: "str | os.PathLike | gguf.GGUFReader",
              progress: Progress | None = None) -> tuple[LlamaSpec, dict[str, np.ndarray]]:
    """Dequantize every tensor of a llama GGUF into float32, keyed by transformers names."""
    reader = as_reader(source)
    path = "the GGUF" if isinstance(source, gguf.GGUFReader) else str(source)  # for messages
    spec = read_spec(reader)
    to_hf = {gg: hf for hf, gg in tensor_name_map(spec.n_layer).items()}
    tensors: dict[str, np.ndarray] = {}
    total = len(reader.tensors)
    for n, t in enumerate(reader.tensors, 1):
        hf = to_hf.get(t.name)
        if hf is None:
            if t.name == "rope_freqs.weight":  # llama.cpp recomputes these from the metadata
                continue
            raise ClagentError(f"{path}: unexpected tensor {t.name!r} for a llama model")
        try:
            w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
        except (NotImplementedError, ValueError) as e:
            raise ClagentError(f"{path}: cannot read tensor {t.name} of type {t.tensor_type.name}: {e}") from None
        w = w.reshape(tuple(int(d) for d in reversed(t.shape)))
        if hf.endswith("q_proj.weight"):
            w = permute_from_gguf(w, spec.n_head)
        elif hf.endswith("k_proj.weight"):
            w = permute_from_gguf(w, spec.n_head_kv)
        tensors[hf] = w
        if progress:
            progress(n, total, "reading tensors")
    missing = sorted(set(tensor_name_map(spec.n_layer)) - set(tensors) - ({"lm_head.weight"} if spec.tied_embeddings else set()))
    if missing:
        raise ClagentError(f"{path}: missing tensors, e.g. {missing[0]}")
    return spec, tensors


def write_gguf(
    path: str | os.PathLike,
    spec: LlamaSpec,
    tensors: Mapping[str, "np.ndarray"],
    template: "str | os.PathLike | gguf.GGUFReader",
    name: str | None = None,
    progress: Progress | None = None,
) -> Path:
    """Write an F16 GGUF (the float master): matrices as F16, norms as F32.

    Tokenizer, chat template and descriptive metadata are copied from ``template`` (a GGUF of
    the same tokenizer); the hyper-parameters come from ``spec``. Written to a temporary file
    and renamed into place, so ``path`` is either absent or complete.
    """
    path = Path(path)
    source = as_reader(template)
    names = tensor_name_map(spec.n_layer)
    if spec.tied_embeddings:
        names.pop("lm_head.weight")
    missing = sorted(set(names) - set(tensors))
    if missing:
        raise ClagentError(f"cannot export: missing tensor {missing[0]}")

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    writer = gguf.GGUFWriter(tmp, ARCH)
    try:
        for key, field in source.fields.items():
            if key.startswith("GGUF.") or key in ("general.architecture", "general.file_type"):
                continue
            if name and key == "general.name":
                continue
            if key.startswith(f"{ARCH}.") and key[len(ARCH) + 1:] in _SPEC_KEYS:
                continue
            vtype = field.types[0]
            sub_type = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(key, field.contents(), vtype, sub_type)
        if name:
            writer.add_key_value("general.name", name, gguf.GGUFValueType.STRING)
        writer.add_uint32("general.file_type", FILE_TYPE_F16)
        writer.add_context_length(spec.n_ctx_train)
        writer.add_embedding_length(spec.n_embd)
        writer.add_block_count(spec.n_layer)
        writer.add_feed_forward_length(spec.n_ff)
        writer.add_head_count(spec.n_head)
        writer.add_head_count_kv(spec.n_head_kv)
        writer.add_layer_norm_rms_eps(spec.rms_eps)
        writer.add_rope_freq_base(spec.rope_theta)
        writer.add_rope_dimension_count(spec.head_dim)
        writer.add_vocab_size(spec.n_vocab)

        total = len(names)
        for n, (hf, gg) in enumerate(names.items(), 1):
            w = _as_numpy(tensors[hf])
            if hf.endswith("q_proj.weight"):
                w = permute_to_gguf(w, spec.n_head)
            elif hf.endswith("k_proj.weight"):
                w = permute_to_gguf(w, spec.n_head_kv)
            w = np.ascontiguousarray(w, dtype=np.float32 if w.ndim == 1 else np.float16)
            writer.add_tensor(gg, w)
            if progress:
                progress(n, total, "writing tensors")
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return path


def _as_numpy(t) -> np.ndarray:
    if isinstance(t, np.ndarray):
        return t
    return t.detach().to("cpu").float().numpy()  # a torch tensor
