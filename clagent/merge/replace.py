"""``replace``: take the fine-tuned model as it is (sequential fine-tuning; the LoRA adapter merged
at full strength)."""

from clagent.merge.base import Lazy, MergeResult, register


@register("replace")
def replace(models, **_):
    tuned = models["tuned"]
    return MergeResult(Lazy(tuned, lambda k: tuned[k].copy()), "replace", {})
