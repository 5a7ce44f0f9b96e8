"""VGG with BatchNorm for CIFAR (Simonyan & Zisserman 2015, adapted to 32x32 inputs).

``vgg16_bn``: the 13 convolutions of VGG-16 and a single linear classifier on the 512 pooled
features, the common CIFAR form. ``vgg11_bn_half``: VGG-11 at half width with the original VGG's
two hidden fully-connected layers, and a 2x2 spatial map kept before the head so that the
convolution-to-linear boundary is real (each channel feeds four flattened inputs).
``vgg11_bn_quarter``: the same at quarter width (hidden layers of 128), about 3x faster to train
on a CPU; the model the WSP benchmark trains and prunes here.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from secateurs.models.registry import register_model

Pool = str  # "M" in a layer list means a 2x2 max-pool

VGG16_LAYERS: list[int | Pool] = [
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
]  # fmt: skip
VGG11_HALF_LAYERS: list[int | Pool] = [32, "M", 64, "M", 128, 128, "M", 256, 256, "M", 256, 256]
VGG11_QUARTER_LAYERS: list[int | Pool] = [16, "M", 32, "M", 64, 64, "M", 128, 128, "M", 128, 128]


def _features(layers: Sequence[int | Pool], in_channels: int) -> nn.Sequential:
    modules: list[nn.Module] = []
    channels = in_channels
    for layer in layers:
        if layer == "M":
            modules.append(nn.MaxPool2d(2))
        else:
            assert isinstance(layer, int)
            modules += [
                nn.Conv2d(channels, layer, 3, padding=1, bias=False),
                nn.BatchNorm2d(layer),
                nn.ReLU(inplace=True),
            ]
            channels = layer
    return nn.Sequential(*modules)


class CifarVGG(nn.Module):
    """VGG features then a classifier of ``hidden`` fully-connected layers (possibly none)."""

    def __init__(
        self,
        layers: Sequence[int | Pool],
        num_classes: int = 10,
        in_channels: int = 3,
        hidden: Sequence[int] = (),
        spatial: int = 1,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.features = _features(layers, in_channels)
        self.pool = nn.AdaptiveAvgPool2d(spatial)
        width = [layer for layer in layers if layer != "M"][-1]
        assert isinstance(width, int)
        head: list[nn.Module] = []
        features = width * spatial * spatial
        for units in hidden:
            head += [nn.Linear(features, units), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            features = units
        head.append(nn.Linear(features, num_classes))
        self.classifier = nn.Sequential(*head)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


@register_model("vgg16_bn", "VGG-16 with BatchNorm for CIFAR, one linear classifier, 14.7M params")
def vgg16_bn(num_classes: int = 10, in_channels: int = 3) -> CifarVGG:
    return CifarVGG(VGG16_LAYERS, num_classes, in_channels)


@register_model(
    "vgg11_bn_half",
    "VGG-11-BN at half width with two hidden FC layers (256) on a 2x2 map, 2.6M params",
)
def vgg11_bn_half(num_classes: int = 10, in_channels: int = 3) -> CifarVGG:
    return CifarVGG(VGG11_HALF_LAYERS, num_classes, in_channels, hidden=(256, 256), spatial=2)


@register_model(
    "vgg11_bn_quarter",
    "VGG-11-BN at quarter width with two hidden FC layers (128) on a 2x2 map, 0.66M params",
)
def vgg11_bn_quarter(num_classes: int = 10, in_channels: int = 3) -> CifarVGG:
    return CifarVGG(VGG11_QUARTER_LAYERS, num_classes, in_channels, hidden=(128, 128), spatial=2)
