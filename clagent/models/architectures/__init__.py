"""Model families: one small module per GGUF architecture behind one registry (the merge package's
pattern). ``get(name)`` answers the module for ``general.architecture``, or a one-line error that
names what is supported; ``build_model`` makes the transformers model that computes what llama.cpp
computes from the same weights."""

from clagent.models.architectures.base import Architecture, ModelSpec  # noqa: F401
from clagent.models.architectures.registry import ARCHITECTURES, get, register, supported  # noqa: F401
from clagent.models.architectures import llama, qwen2, qwen3, gemma3, phi3  # noqa: F401,E402  (registers them)


def lora_targets(spec: ModelSpec) -> list[str]:
    """The linear modules LoRA trains for this model's architecture."""
    return list(get(spec.arch).lora_targets)


def lora_groups(arch_name: str = "llama") -> dict[str, list[str]]:
    """The ``lora_targets`` setting's group names -> the architecture's own module names ("all",
    "attention", "mlp": Phi-3's fused qkv_proj is attention, its gate_up_proj the MLP)."""
    arch = get(arch_name)
    attention = [t for t in arch.lora_targets if t in arch.attention_targets]
    return {"all": list(arch.lora_targets), "attention": attention,
            "mlp": [t for t in arch.lora_targets if t not in attention]}


def parameter_count(spec: ModelSpec) -> int:
    """Weights of the model (a tied output head counted once)."""
    import math

    return sum(math.prod(shape) for _, shape in get(spec.arch).tensors(spec).values())


def build_model(spec: ModelSpec, tensors=None, device: str = "cpu", copy: bool = True):
    """The transformers model of ``spec`` (float32), loaded with ``tensors`` (transformers names ->
    arrays) when given; every tensor of the architecture must be there. ``copy=False`` lets a model
    on the CPU use the arrays' memory itself (read-only use: a 1.5B model is 6 GB a copy)."""
    import numpy as np
    import torch
    import transformers

    from clagent.errors import ClagentError

    arch = get(spec.arch)
    cls, config = getattr(transformers, arch.hf_class), arch.hf_config(spec)
    if tensors is None:
        model = cls(config)
    else:  # every weight is loaded next: skip the random initialisation (most of the build time)
        from transformers.initialization import no_init_weights

        with no_init_weights():
            model = cls(config)
    arch.prepare_model(model, spec)
    if tensors is not None:
        as_array = np.array if copy or device != "cpu" else np.asarray
        state = {k: torch.from_numpy(as_array(v, dtype=np.float32)) for k, v in tensors.items()}
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
        missing = set(missing) - ({"lm_head.weight"} if spec.tied_embeddings else set())
        if unexpected or missing:
            raise ClagentError(f"the {spec.arch} weights do not fit the model: missing {sorted(missing)[:3]}, "
                               f"unexpected {sorted(unexpected)[:3]}")
        if spec.tied_embeddings:
            model.tie_weights()
    return model.to(device)
