"""The registry of supported architectures, keyed by GGUF's ``general.architecture``."""

from __future__ import annotations

from clagent.errors import ClagentError

ARCHITECTURES: dict = {}


def register(cls):
    """Class decorator: one instance per architecture module."""
    ARCHITECTURES[cls.name] = cls()
    return cls


def supported() -> str:
    """'llama (Llama 2/3, Mistral, SmolLM2), qwen2 (...), ...': for error messages."""
    return ", ".join(f"{name} ({arch.families})" for name, arch in ARCHITECTURES.items())


def get(name: str):
    arch = ARCHITECTURES.get(name)
    if arch is None:
        raise ClagentError(f"model architecture {name!r} is not supported; clagent supports {supported()}")
    return arch
