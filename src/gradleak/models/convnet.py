"""The ConvNet of Inverting Gradients (Geiping et al., NeurIPS 2020): 8 conv-BN-ReLU blocks.

Widths 1w, 2w, 2w, 4w, 4w, 4w, then max-pool(3), two more 4w blocks, max-pool(3) and a linear
classifier (36w features at 32x32). ``width=64`` is the paper's; small widths give the
"small BN ConvNet" used in tests and benchmarks.

``convnet_small`` is a shallow relative (not from a paper): three conv-BN-ReLU blocks of widths
w, 2w, 2w (strides 1, 2, 2) and a linear classifier. Optimisation attacks recover batches of
8 images from it within a CPU budget, which IG's 8-block ConvNet does not allow.
"""

from __future__ import annotations

from torch import Tensor, nn

from gradleak.models.registry import flat_features, register_model


def _block(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]


class ConvNet(nn.Module):
    """IG's ConvNet with batch normalisation."""

    def __init__(
        self,
        num_classes: int = 10,
        in_shape: tuple[int, int, int] = (3, 32, 32),
        width: int = 64,
    ) -> None:
        super().__init__()
        w = width
        chans = [in_shape[0], w, 2 * w, 2 * w, 4 * w, 4 * w, 4 * w]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:], strict=True):
            layers += _block(cin, cout)
        layers.append(nn.MaxPool2d(3))
        layers += _block(4 * w, 4 * w) + _block(4 * w, 4 * w)
        layers.append(nn.MaxPool2d(3))
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(flat_features(self.body, in_shape), num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.body(x).flatten(1))


@register_model("convnet")
def convnet(**kwargs: object) -> nn.Module:
    """IG's BN ConvNet (``width`` 64 by default)."""
    return ConvNet(**kwargs)  # type: ignore[arg-type]


class ConvNetSmall(nn.Module):
    """A shallow BN ConvNet: 3 conv-BN-ReLU blocks (w, 2w, 2w; strides 1, 2, 2), linear head."""

    def __init__(
        self,
        num_classes: int = 10,
        in_shape: tuple[int, int, int] = (3, 32, 32),
        width: int = 16,
    ) -> None:
        super().__init__()
        w = width
        layers: list[nn.Module] = []
        for cin, cout, stride in ((in_shape[0], w, 1), (w, 2 * w, 2), (2 * w, 2 * w, 2)):
            layers += _block(cin, cout, stride)
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(flat_features(self.body, in_shape), num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.body(x).flatten(1))


@register_model("convnet_small")
def convnet_small(**kwargs: object) -> nn.Module:
    """A shallow BN ConvNet (``width`` 16 by default)."""
    return ConvNetSmall(**kwargs)  # type: ignore[arg-type]
