"""LeNets: DLG's sigmoid LeNet (``lenet``) and the classic LeNet-5 (``lenet5``).

``lenet``: Zhu, Liu & Han, "Deep Leakage from Gradients", NeurIPS 2019. Three 5x5
convolutions with sigmoid activations and a linear classifier; every weight and bias is drawn
from uniform(-0.5, 0.5) as in the DLG code, which keeps gradients informative. Untrained, it
is already confident (one class takes most of the softmax mass for every input).

``lenet5``: LeCun et al.'s LeNet-5 as used by the iLRG paper (Ma et al., ICLR 2023, "LeNet-5"
on CIFAR-100; "LeNet-S" is its SiLU variant): two 5x5 convolutions (6, 16 channels) each
followed by the activation and 2x2 max-pooling, then fully connected layers of 120 and 84
units and the classifier. Convolutions use Kaiming-normal weights (fan-out, ReLU gain), the
linear layers PyTorch's default initialisation, so untrained outputs are close to uniform.
"""

from __future__ import annotations

from torch import Tensor, nn

from gradleak.errors import ConfigError
from gradleak.models.registry import flat_features, register_model


class LeNet(nn.Module):
    """DLG's sigmoid LeNet for (C, H, W) inputs (768 features for 32x32)."""

    def __init__(self, num_classes: int = 10, in_shape: tuple[int, int, int] = (3, 32, 32)):
        super().__init__()
        c = in_shape[0]
        self.body = nn.Sequential(
            nn.Conv2d(c, 12, kernel_size=5, padding=2, stride=2),
            nn.Sigmoid(),
            nn.Conv2d(12, 12, kernel_size=5, padding=2, stride=2),
            nn.Sigmoid(),
            nn.Conv2d(12, 12, kernel_size=5, padding=2, stride=1),
            nn.Sigmoid(),
        )
        self.fc = nn.Linear(flat_features(self.body, in_shape), num_classes)
        for p in self.parameters():
            nn.init.uniform_(p, -0.5, 0.5)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.body(x).flatten(1))


@register_model("lenet")
def lenet(**kwargs: object) -> nn.Module:
    """DLG's LeNet with uniform(-0.5, 0.5) initialisation."""
    return LeNet(**kwargs)  # type: ignore[arg-type]


_LENET5_ACTIVATIONS = ("relu", "silu", "leaky_relu")


def _activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "silu":
        return nn.SiLU()
    return nn.LeakyReLU(negative_slope=0.01)


class LeNet5(nn.Module):
    """The classic LeNet-5 (iLRG's "LeNet-5"; ``activation="silu"`` is its "LeNet-S").

    Args:
        num_classes: outputs of the classifier.
        in_shape: (C, H, W) of the input (400 features before the 120-unit layer for 32x32).
        activation: ``relu`` (default), ``silu`` or ``leaky_relu`` (slope 0.01).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_shape: tuple[int, int, int] = (3, 32, 32),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if activation not in _LENET5_ACTIVATIONS:
            raise ConfigError(
                f"unknown activation {activation!r}; use one of {list(_LENET5_ACTIVATIONS)}"
            )
        c = in_shape[0]
        self.body = nn.Sequential(
            nn.Conv2d(c, 6, kernel_size=5),
            _activation(activation),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            _activation(activation),
            nn.MaxPool2d(2),
        )
        self.hidden = nn.Sequential(
            nn.Linear(flat_features(self.body, in_shape), 120),
            _activation(activation),
            nn.Linear(120, 84),
            _activation(activation),
        )
        self.fc = nn.Linear(84, num_classes)
        for m in self.body:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.hidden(self.body(x).flatten(1)))


@register_model("lenet5")
def lenet5(**kwargs: object) -> nn.Module:
    """The classic LeNet-5 of the iLRG paper (ReLU, max-pooling, 120-84 hidden units)."""
    return LeNet5(**kwargs)  # type: ignore[arg-type]
