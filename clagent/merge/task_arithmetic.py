"""``task_arithmetic``: add the fine-tuning's task vector (tuned - base), scaled, to the base."""

import numpy as np

from clagent.merge.base import Lazy, MergeResult, register


@register("task_arithmetic")
def task_arithmetic(models, scale: float = 0.5, **_):
    base, tuned = models["base"], models["tuned"]
    out = Lazy(base, lambda k: (base[k] + np.float32(scale) * (tuned[k] - base[k])).astype(np.float32))
    return MergeResult(out, "task_arithmetic", {"scale": scale})
