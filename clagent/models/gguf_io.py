"""Read a GGUF of any supported architecture into float tensors with transformers' names, and write
them back as an F16 GGUF that llama.cpp serves.

Tensors cross this boundary as float32 numpy arrays keyed by transformers' names
(``model.layers.3.self_attn.q_proj.weight``), so the trainer and the merge code never see GGUF.
What differs per family (names, shapes, layouts, hyper-parameter keys) lives in
``clagent.models.architectures``; this module checks files, dequantizes and writes.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import gguf
import numpy as np

from clagent.errors import ClagentError
from clagent.models import architectures
from clagent.models.architectures.base import Metadata, ModelSpec, permute_from_gguf, permute_to_gguf  # noqa: F401

LlamaSpec = ModelSpec  # the name from before other families were supported
FILE_TYPE_F16 = 1  # LLAMA_FTYPE_MOSTLY_F16
GGUF_MAGIC = b"GGUF"
CHAT_TEMPLATE_KEY = "tokenizer.chat_template"

Progress = Callable[[int, int, str], None]

# Architectures of image/audio encoders and multimodal models: not text models clagent can train.
_VISION_ARCHS = {"clip", "mllama", "qwen2vl", "qwen25vl", "qwen3vl", "qwen3vlmoe", "gemma3n", "llava", "minicpmv",
                 "idefics3", "pixtral", "siglip"}
_VISION_TENSOR = re.compile(r"^(v|mm|vision_tower|vision_model|multi_modal_projector|a|audio)\.")
_SPLIT_NAME = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")


@dataclass(frozen=True)
class ModelInfo:
    """What ``clagent models`` shows of a GGUF, and what an import checks before it starts."""

    spec: ModelSpec
    parameters: int
    quantization: str  # F16, Q8_0, Q4_K_M ... (the file type; "mixed" when it does not say)
    name: str | None
    has_chat_template: bool

    @property
    def arch(self) -> str:
        return self.spec.arch


def check_gguf_file(path: str | os.PathLike) -> Path:
    """A cheap check (exists, GGUF magic) before handing a file to llama.cpp."""
    path = Path(path)
    if not path.is_file():
        raise ClagentError(f"model file not found: {path}")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ClagentError(f"cannot read {path}: {e.strerror}") from None
    if magic != GGUF_MAGIC:
        raise ClagentError(f"{path} is not a valid GGUF file (bad magic number)")
    return path


_last_opened: dict = {}  # (path, size, mtime) -> reader: checking a model and importing it parse it once


def open_gguf(path: str | os.PathLike) -> gguf.GGUFReader:
    """Open a GGUF file, turning any parse failure, a truncated file or a split one into a one-line
    error. Parsing a large vocabulary takes seconds (20 s for Gemma's 262k tokens), so the last file
    opened is kept parsed."""
    path = check_gguf_file(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _last_opened:
        return _last_opened[key]
    try:
        reader = _Reader(path)
    except _Truncated as e:
        raise ClagentError(f"{path} is truncated: tensor {e.args[0]} ends at byte {e.args[1]} but the file has "
                           f"{e.args[2]} (an interrupted download or copy?)") from None
    except Exception as e:  # gguf raises ValueError, struct.error, IndexError ... on junk
        raise ClagentError(f"{path} is not a valid GGUF file ({type(e).__name__}: {e})") from None
    _check_split(reader, path)
    _last_opened.clear()
    _last_opened[key] = reader
    return reader


class _Truncated(Exception):
    pass


class _Reader(gguf.GGUFReader):
    """gguf's reader, with a check that every tensor's data lies inside the file before it is
    mapped (it would otherwise fail with a reshape error that does not say the file is cut short)."""

    def _build_tensors(self, start_offs, fields):
        size = len(self.data)
        for field in fields:
            try:
                _, name, _, dims, raw_dtype, offset = field.parts
                block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(int(raw_dtype[0]))]
                end = int(start_offs + offset[0]) + int(np.prod(dims)) * type_size // block
                label = bytes(name).decode(errors="replace")
            except Exception:  # noqa: BLE001 - another layout: leave the checks to gguf
                break
            if end > size:
                raise _Truncated(label, end, size)
        super()._build_tensors(start_offs, fields)


def _check_split(reader: gguf.GGUFReader, path: Path) -> None:
    count = _raw(reader, "split.count")
    named = _SPLIT_NAME.search(path.name)
    if (count is not None and int(count) > 1) or named:
        n = int(count) if count is not None else int(named.group(2))
        raise ClagentError(f"{path} is one part of a split GGUF ({n} parts); clagent reads single-file GGUF: "
                           f"join the parts first (llama-gguf-split --merge FIRST-PART OUT.gguf)")


def _raw(reader: gguf.GGUFReader, key: str):
    f = reader.fields.get(key)
    return None if f is None else f.contents()


def as_reader(source: "str | os.PathLike | gguf.GGUFReader") -> gguf.GGUFReader:
    """Parsing a GGUF's tokenizer metadata takes seconds: pass an open reader where you have one."""
    return source if isinstance(source, gguf.GGUFReader) else open_gguf(source)


def _where(source) -> str:
    if isinstance(source, gguf.GGUFReader):
        return str(getattr(getattr(source, "data", None), "filename", None) or "the GGUF")
    return str(source)


def architecture(reader: gguf.GGUFReader) -> str:
    return str(_raw(reader, "general.architecture") or "unknown")


def _check_text_model(reader: gguf.GGUFReader, where: str) -> None:
    arch = architecture(reader)
    vision = next((t.name for t in reader.tensors if _VISION_TENSOR.match(t.name)), None)
    if arch in _VISION_ARCHS or vision or any(k.startswith(("clip.", f"{arch}.vision.")) for k in reader.fields):
        what = f"tensor {vision}" if vision else f"architecture {arch!r}" if arch in _VISION_ARCHS else "vision metadata"
        raise ClagentError(f"{where} is a vision (multimodal) model ({what}); clagent trains and serves text models: "
                           f"{architectures.supported()}")


def read_spec(reader: gguf.GGUFReader, where: str | None = None) -> ModelSpec:
    """The model's spec, after checking it is a supported text model whose tensors are the ones its
    metadata describes (names and shapes), so that a bad file fails before any long work."""
    where = where or _where(reader)
    _check_text_model(reader, where)
    arch = architectures.get(architecture(reader))
    shapes = {t.name: tuple(int(d) for d in reversed(t.shape)) for t in reader.tensors}
    spec = arch.read_spec(Metadata(reader, arch.name, where), shapes)
    _check_tensors(arch, spec, shapes, where)
    return spec


def _check_tensors(arch, spec: ModelSpec, shapes: Mapping[str, tuple], where: str) -> None:
    expected = arch.tensors(spec)
    known = {gg: (hf, shape) for hf, (gg, shape) in {**expected, **arch.alternative_names(spec)}.items()}
    ignored = arch.ignored_gguf_tensors()
    for name, shape in shapes.items():
        if name in ignored:
            continue
        if name not in known:
            raise ClagentError(f"{where}: metadata and tensors disagree: tensor {name} is not part of a "
                               f"{arch.name} model as its metadata describes it")
        if shape != known[name][1]:
            raise ClagentError(
                f"{where}: metadata and tensors disagree: {name} has shape {list(shape)} but the metadata "
                f"({arch.name}, width {spec.n_embd}, {spec.n_head}/{spec.n_head_kv} heads of {spec.head_dim}, "
                f"feed-forward {spec.n_ff}) implies {list(known[name][1])}")
    present = {known[n][0] for n in shapes if n in known}
    missing = [gg for hf, (gg, _) in expected.items()
               if hf not in present and not (arch.parts_of(hf) and set(arch.parts_of(hf)) <= present)]
    if missing:
        raise ClagentError(f"{where}: missing tensors ({len(missing)} of the {len(expected)} of a {arch.name} "
                           f"model as its metadata describes it), e.g. {missing[0]}")


def file_quantization(reader: gguf.GGUFReader) -> str:
    """The file type a GGUF declares (Q4_K_M, Q8_0, F16 ...), else its matrices' commonest type."""
    ft = _raw(reader, "general.file_type")
    if ft is not None:
        try:
            return gguf.LlamaFileType(int(ft)).name.replace("MOSTLY_", "").replace("ALL_", "")
        except ValueError:
            pass
    kinds = [t.tensor_type.name for t in reader.tensors if len(t.shape) > 1]
    return max(set(kinds), key=kinds.count) if kinds else "unknown"


def describe(source: "str | os.PathLike | gguf.GGUFReader") -> ModelInfo:
    """Check a GGUF (supported architecture, a text model, its tensors those of its metadata) and
    describe it, without reading its weights."""
    reader = as_reader(source)
    spec = read_spec(reader, _where(source))
    return ModelInfo(spec=spec, parameters=architectures.parameter_count(spec),
                     quantization=file_quantization(reader), name=_raw(reader, "general.name"),
                     has_chat_template=bool(_raw(reader, CHAT_TEMPLATE_KEY)))


def read_gguf(source: "str | os.PathLike | gguf.GGUFReader",
              progress: Progress | None = None) -> tuple[ModelSpec, dict[str, np.ndarray]]:
    """Dequantize every tensor of a GGUF into float32, keyed by transformers names, in
    transformers' layout."""
    reader = as_reader(source)
    where = _where(source)
    spec = read_spec(reader, where)
    arch = architectures.get(spec.arch)
    to_hf = {gg: hf for hf, (gg, _) in {**arch.tensors(spec), **arch.alternative_names(spec)}.items()}
    ignored = arch.ignored_gguf_tensors()
    tensors: dict[str, np.ndarray] = {}
    total = len(reader.tensors)
    for n, t in enumerate(reader.tensors, 1):
        if t.name in ignored:
            continue
        tensors[to_hf[t.name]] = _dequantized(t, to_hf[t.name], arch, spec, where)
        if progress:
            progress(n, total, "reading tensors")
    return spec, arch.combine(tensors, spec)


def _dequantized(t, hf: str, arch, spec: ModelSpec, where: str) -> np.ndarray:
    try:
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
    except (NotImplementedError, ValueError) as e:
        raise ClagentError(f"{where}: cannot read tensor {t.name} of type {t.tensor_type.name}: {e}") from None
    w = w.reshape(tuple(int(d) for d in reversed(t.shape)))
    w = np.ascontiguousarray(arch.from_gguf(hf, w, spec), dtype=np.float32)
    return w if w.flags.writeable else w.copy()  # an F32 tensor may be a view of the mapped file


class LazyTensors(Mapping):
    """A GGUF's tensors as ``read_gguf`` gives them, each dequantized only when it is read: an
    import streams a model into its F16 master one tensor at a time (reading a 1.5B model whole
    takes 7 GB)."""

    def __init__(self, source: "str | os.PathLike | gguf.GGUFReader"):
        self.reader = as_reader(source)
        self.where = _where(source)
        self.spec = read_spec(self.reader, self.where)
        self.arch = architectures.get(self.spec.arch)
        to_hf = {gg: hf for hf, (gg, _) in {**self.arch.tensors(self.spec),
                                             **self.arch.alternative_names(self.spec)}.items()}
        self._file = {to_hf[t.name]: t for t in self.reader.tensors if t.name in to_hf}
        self._keys = [hf for hf in self.arch.tensors(self.spec)
                      if hf in self._file or self.arch.parts_of(hf)]

    def __getitem__(self, hf: str) -> np.ndarray:
        if hf in self._file:
            return _dequantized(self._file[hf], hf, self.arch, self.spec, self.where)
        parts = self.arch.parts_of(hf)
        if parts and all(p in self._file for p in parts):
            got = {p: _dequantized(self._file[p], p, self.arch, self.spec, self.where) for p in parts}
            return self.arch.combine(got, self.spec)[hf]
        raise KeyError(hf)

    def __iter__(self):
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def write_gguf(
    path: str | os.PathLike,
    spec: ModelSpec,
    tensors: Mapping[str, "np.ndarray"],
    template: "str | os.PathLike | gguf.GGUFReader",
    name: str | None = None,
    progress: Progress | None = None,
    chat_template: str | None = None,
) -> Path:
    """Write an F16 GGUF (the float master): matrices as F16, norms, biases and RoPE factors as F32.

    Tokenizer, chat template and descriptive metadata are copied from ``template`` (a GGUF of the
    same tokenizer; ``chat_template`` replaces its template); the hyper-parameters come from
    ``spec``. Written to a temporary file and renamed into place, so ``path`` is either absent or
    complete.
    """
    path = Path(path)
    source = as_reader(template)
    arch = architectures.get(spec.arch)
    names = arch.tensors(spec)
    missing = sorted(set(names) - set(tensors))
    if missing:
        raise ClagentError(f"cannot export: missing tensor {missing[0]}")
    meta = arch.metadata(spec)
    source_arch = architecture(source)
    own = {f"{spec.arch}.{k}" for k in (*meta, *arch.replaced_keys)}

    def copied(key: str) -> bool:
        if key.startswith(("GGUF.", "split.")) or key in ("general.architecture", "general.file_type"):
            return False
        if (name and key == "general.name") or (chat_template and key == CHAT_TEMPLATE_KEY):
            return False
        if key.startswith(f"{source_arch}.") and (source_arch != spec.arch or key in own):
            return False  # another family's hyper-parameters, or ours written from the spec
        return True

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    writer = gguf.GGUFWriter(tmp, spec.arch)
    try:
        for key, field in source.fields.items():
            if not copied(key):
                continue
            vtype = field.types[0]
            sub_type = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(key, field.contents(), vtype, sub_type)
        if name:
            writer.add_key_value("general.name", name, gguf.GGUFValueType.STRING)
        if chat_template:
            writer.add_key_value(CHAT_TEMPLATE_KEY, chat_template, gguf.GGUFValueType.STRING)
        writer.add_uint32("general.file_type", FILE_TYPE_F16)
        for key, value in meta.items():
            _add_value(writer, f"{spec.arch}.{key}", value)

        # Streamed: the tensor table first, then each tensor converted, written and dropped, so
        # that no whole F16 copy of the model is ever held (``tensors`` may compute them lazily).
        extra = arch.extra_gguf_tensors(spec)
        total = len(names) + len(extra)
        for hf, (gg, shape) in names.items():
            dtype = np.dtype(np.float32 if len(shape) == 1 else np.float16)
            writer.add_tensor_info(gg, tuple(shape), dtype, math.prod(shape) * dtype.itemsize)
        for gg, w in extra.items():
            writer.add_tensor_info(gg, w.shape, np.dtype(np.float32), w.size * 4)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for n, (hf, (gg, shape)) in enumerate(names.items(), 1):
            w = arch.to_gguf(hf, _as_numpy(tensors[hf]), spec)
            if tuple(w.shape) != tuple(shape):
                raise ClagentError(f"cannot export: {hf} has shape {list(w.shape)}, the spec implies {list(shape)}")
            writer.write_tensor_data(np.ascontiguousarray(w, dtype=np.float32 if len(shape) == 1 else np.float16))
            del w
            if progress:
                progress(n, total, "writing tensors")
        for gg, w in extra.items():
            writer.write_tensor_data(np.ascontiguousarray(w, dtype=np.float32))
        writer.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return path


def _add_value(writer: gguf.GGUFWriter, key: str, value) -> None:
    if isinstance(value, bool):
        writer.add_bool(key, value)
    elif isinstance(value, int):
        writer.add_uint32(key, value)
    elif isinstance(value, float):
        writer.add_float32(key, value)
    else:
        writer.add_string(key, str(value))


def _as_numpy(t) -> np.ndarray:
    if isinstance(t, np.ndarray):
        return t.astype(np.float32, copy=False)
    return t.detach().to("cpu").float().numpy()  # a torch tensor


def human_parameters(n: int) -> str:
    """1234567 -> '1.2M'."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}" if n < 1000 * size else f"{math.floor(n / size)}{unit}"
    return str(n)
