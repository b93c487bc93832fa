"""``replace``: take the fine-tuned model as it is (sequential fine-tuning; the LoRA adapter merged
at full strength)."""

from clagent.merge.base import MergeResult, register


@register("replace")
def replace(models, **_):
    return MergeResult({k: v.copy() for k, v in models["tuned"].items()}, "replace", {})
