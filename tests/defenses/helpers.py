"""Small models and batches shared by the defense tests."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class TinyCNN(nn.Module):
    """conv -> tanh -> flatten -> fc1 -> tanh -> fc2 on (1, 6, 6) inputs (no BatchNorm)."""

    def __init__(self, classes: int = 3, bn: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.norm = nn.BatchNorm2d(2) if bn else nn.Identity()
        self.fc1 = nn.Linear(2 * 4 * 4, 8)
        self.fc2 = nn.Linear(8, classes)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.tanh(self.norm(self.conv(x))).flatten(1)
        return self.fc2(torch.tanh(self.fc1(h)))


def batch(n: int, seed: int = 0, classes: int = 3) -> tuple[Tensor, Tensor]:
    """``n`` random (1, 6, 6) images in [0, 1] and labels."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 6, 6, generator=g), torch.randint(0, classes, (n,), generator=g)


def model(seed: int = 0, **kwargs: object) -> TinyCNN:
    """A seeded :class:`TinyCNN`."""
    torch.manual_seed(seed)
    return TinyCNN(**kwargs)  # type: ignore[arg-type]
