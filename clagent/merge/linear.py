"""``linear``: a weighted average of the models, the same weight for every tensor."""

import numpy as np

from clagent.errors import ClagentError
from clagent.merge.base import Lazy, MergeResult, register


@register("linear")
def linear(models, weight: float = 0.5, **_):
    """``weight`` is the fine-tuned model's share: base * (1 - weight) + tuned * weight."""
    if not 0.0 <= weight <= 1.0:
        raise ClagentError(f"linear merge weight must be between 0 and 1, got {weight}")
    base, tuned = models["base"], models["tuned"]
    out = Lazy(base, lambda k: (np.float32(1 - weight) * base[k] + np.float32(weight) * tuned[k]).astype(np.float32))
    return MergeResult(out, "linear", {"weight": weight})
