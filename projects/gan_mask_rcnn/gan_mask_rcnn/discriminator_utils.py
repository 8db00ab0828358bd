"""Pieces shared by the box and the mask discriminator: the conv stack, the input
check, and the rest of a conv block whose convolution the caller ran itself.

Both discriminators of GAN Mask R-CNN (thesis section 3.2) are five 3x3 conv layers,
each followed by a norm layer (BatchNorm by default) and LeakyReLU, applied to 28x28
RoI features.
"""
from typing import Sequence

from mmcv.cnn import ConvModule
from torch import Tensor, nn

from mmdet.utils import ConfigType


def conv_output_size(size: int, stride: int) -> int:
    """Side of the output of a 3x3 conv with padding 1 and ``stride``."""
    return (size - 1) // stride + 1


def build_conv_stack(in_channels: int, roi_size: int, channels: Sequence[int],
                     strides: Sequence[int], norm_cfg: ConfigType,
                     act_cfg: ConfigType) -> nn.ModuleList:
    """Build the 3x3 conv + norm + activation layers of a discriminator.

    Args:
        in_channels (int): Channels of the input features.
        roi_size (int): Side of the square input, in pixels of the pooled grid.
        channels (Sequence[int]): Output channels of each layer.
        strides (Sequence[int]): Stride of each layer (same length as ``channels``).
        norm_cfg (dict): Norm layer config, e.g. ``dict(type='BN')``.
        act_cfg (dict): Activation config, e.g. ``dict(type='LeakyReLU')``.

    Returns:
        nn.ModuleList: One ``ConvModule`` per layer.
    """
    if len(channels) != len(strides) or not channels:
        raise ValueError('channels and strides must be non-empty and of equal length, '
                         f'got channels={tuple(channels)}, strides={tuple(strides)}')
    if any(s < 1 for s in strides) or any(c < 1 for c in channels):
        raise ValueError(f'channels and strides must be positive, got channels='
                         f'{tuple(channels)}, strides={tuple(strides)}')
    if roi_size < 1:
        raise ValueError(f'roi_size must be >= 1, got {roi_size}')
    layers = nn.ModuleList()
    for out_channels, stride in zip(channels, strides):
        layers.append(ConvModule(in_channels, out_channels, 3, stride=stride, padding=1,
                                 norm_cfg=norm_cfg, act_cfg=act_cfg))
        in_channels = out_channels
    return layers


def check_roi_features(x: Tensor, in_channels: int, roi_size: int, name: str) -> None:
    """Raise a ``ValueError`` unless ``x`` is ``(N, in_channels, roi_size, roi_size)``."""
    expected = (in_channels, roi_size, roi_size)
    if x.dim() != 4 or tuple(x.shape[1:]) != expected:
        raise ValueError(f'{name} input must be (N, {in_channels}, {roi_size}, '
                         f'{roi_size}), got {tuple(x.shape)}')


def finish_conv_module(block: ConvModule, conv_out: Tensor, caller: str) -> Tensor:
    """Apply the norm and the activation of ``block`` to its conv's output.

    For callers that run a ``ConvModule``'s convolution their own way (on distinct
    rows, on a masked input) and need the rest of the block unchanged.

    Args:
        block (ConvModule): A block ordered ``('conv', 'norm', 'act')``.
        conv_out (Tensor): Output of ``block.conv`` (or an equal), (N, C, H, W).
        caller (str): Named in the error, e.g. ``'BoxDiscriminator(x, index)'``.

    Returns:
        Tensor: ``block``'s output, (N, C, H, W).
    """
    if block.order != ('conv', 'norm', 'act'):
        raise ValueError(f"{caller} needs conv layers ordered ('conv', 'norm', 'act'), "
                         f'got {block.order}')
    if block.with_norm:
        conv_out = block.norm(conv_out)
    if block.with_activation:
        conv_out = block.activate(conv_out)
    return conv_out
