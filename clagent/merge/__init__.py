"""Merge methods that combine a fine-tuned model with the served one.

Every method is a small module registering one pure function behind the same interface:
``merge(method, models, **params) -> MergeResult``; ``models`` maps a name to a state dict
(transformers names -> float32 arrays) and always holds ``"base"`` (the served version) and
``"tuned"`` (the newly trained model).
"""

from clagent.merge.base import METHODS, MergeResult, check_compatible, merge, register  # noqa: F401
from clagent.merge import linear, recall, replace, task_arithmetic, ties  # noqa: F401,E402  (registers the methods)
