"""Costs derived by hand from the architecture, not from secateurs' counter, for the tests that
check the counter (test_measure) and what ``secateurs measure`` prints (test_cli).

ResNet-20 for CIFAR (secateurs.models.resnet_cifar): a 3x3 stem, three stages of three basic blocks
(two 3x3 convolutions each) with 16, 32 and 64 channels at 32x32, 16x16 and 8x8, a 1x1 strided
convolution with BatchNorm on the shortcut where a stage starts (stages 2 and 3), global average
pooling and a 64 -> 10 linear layer. Torch-Pruning's counter, as test_count_cost_of_a_small_net
shows on one of each layer, counts a convolution's k*k*cin*cout*H*W multiply-adds, 2 per element
for BatchNorm, 1 per element for ReLU and for pooling's input, and weights plus bias for a linear
layer; the residual addition is not a layer and is not counted.
"""

from __future__ import annotations


def conv(k: int, cin: int, cout: int, size: int) -> int:
    """Multiply-adds of a k x k convolution producing ``cout`` maps of size x size."""
    return k * k * cin * cout * size * size


RESNET20_CONV_MACS = (
    conv(3, 3, 16, 32)  # stem: 442,368
    # stage 1, 32x32: three blocks of two 16 -> 16 convolutions
    + 6 * conv(3, 16, 16, 32)  # 6 x 2,359,296
    # stage 2, 16x16: the first block halves the size and widens 16 -> 32, with a 1x1 shortcut
    + conv(3, 16, 32, 16)  # 1,179,648
    + conv(3, 32, 32, 16)  # 2,359,296
    + conv(1, 16, 32, 16)  # shortcut: 131,072
    + 4 * conv(3, 32, 32, 16)  # blocks 2 and 3
    # stage 3, 8x8: the same, 32 -> 64
    + conv(3, 32, 64, 8)  # 1,179,648
    + conv(3, 64, 64, 8)  # 2,359,296
    + conv(1, 32, 64, 8)  # shortcut: 131,072
    + 4 * conv(3, 64, 64, 8)
)

# every BatchNorm output element: the stem's, 6 in stage 1, 6 + the shortcut's in stages 2 and 3
_BN_ELEMENTS = 16 * 32 * 32 * (1 + 6) + 32 * 16 * 16 * (6 + 1) + 64 * 8 * 8 * (6 + 1)
# a ReLU after the stem and two per block (after bn1, and after the residual addition)
_RELU_ELEMENTS = 16 * 32 * 32 * (1 + 6) + 32 * 16 * 16 * 6 + 64 * 8 * 8 * 6
_POOL = 64 * 8 * 8  # average pooling: one per input element
_LINEAR = 64 * 10 + 10
RESNET20_MACS = RESNET20_CONV_MACS + 2 * _BN_ELEMENTS + _RELU_ELEMENTS + _POOL + _LINEAR

# parameters: convolution weights (no biases), BatchNorm weight and bias, the linear layer
_CONV_PARAMS = (
    3 * 3 * 3 * 16
    + 6 * (9 * 16 * 16)
    + (9 * 16 * 32 + 9 * 32 * 32 + 16 * 32 + 4 * 9 * 32 * 32)
    + (9 * 32 * 64 + 9 * 64 * 64 + 32 * 64 + 4 * 9 * 64 * 64)
)
_BN_PARAMS = 2 * (16 * 7 + 32 * 7 + 64 * 7)
RESNET20_PARAMS = _CONV_PARAMS + _BN_PARAMS + _LINEAR
