"""The model zoo (no torchvision): ``create(name, ...)`` and ``available()``.

Any ``torch.nn.Module`` mapping (N, C, H, W) images to logits works with gradleak too.
"""

from gradleak.models import cnn6, convnet, lenet, mlp, resnet  # noqa: F401  (registration)
from gradleak.models.registry import (
    MODELS,
    available,
    create,
    parameter_count,
    register_model,
)

__all__ = ["MODELS", "available", "create", "parameter_count", "register_model"]
