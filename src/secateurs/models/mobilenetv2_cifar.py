"""MobileNetV2 for CIFAR (Sandler et al. 2018), with the first strides set to 1 for 32x32 inputs.

Inverted residual blocks: 1x1 expansion, 3x3 depthwise, 1x1 linear projection; a residual
addition where the stride is 1 and the width is unchanged.
"""

from __future__ import annotations

from torch import Tensor, nn

from secateurs.errors import SecateursError
from secateurs.models.registry import register_model

# (expansion, output channels, blocks, first stride); the first two stages keep stride 1 for CIFAR.
CIFAR_SETTINGS = [
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def _conv_bn_relu(in_channels: int, out_channels: int, kernel: int, stride: int, groups: int = 1):
    return nn.Sequential(
        nn.Conv2d(
            in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False
        ),
        nn.BatchNorm2d(out_channels),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(_conv_bn_relu(in_channels, hidden, 1, 1))
        layers += [
            _conv_bn_relu(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        return x + out if self.use_residual else out


class CifarMobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__()
        narrowest = min(out for _, out, _, _ in CIFAR_SETTINGS)
        if isinstance(width, bool) or not isinstance(width, int | float) or narrowest * width < 1:
            raise SecateursError(
                f"width must be a number of at least 1/{narrowest} (every layer keeps a channel), "
                f"not {width!r}"
            )
        channels = int(32 * width)
        layers: list[nn.Module] = [_conv_bn_relu(in_channels, channels, 3, 1)]
        for expansion, out, blocks, stride in CIFAR_SETTINGS:
            out = int(out * width)
            for index in range(blocks):
                layers.append(
                    InvertedResidual(channels, out, stride if index == 0 else 1, expansion)
                )
                channels = out
        last = int(1280 * max(1.0, width))
        layers.append(_conv_bn_relu(channels, last, 1, 1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


@register_model("mobilenetv2", "MobileNetV2 for CIFAR (strides adapted to 32x32), 2.2M params")
def mobilenetv2(num_classes: int = 10, in_channels: int = 3, width: float = 1.0):
    return CifarMobileNetV2(num_classes, in_channels, width)
