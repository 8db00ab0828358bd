"""Masked convolution: ``conv2d(mask * feats)`` that keeps no (N, C, S, S) product
for backward unless the weight gradient needs it.

The mask critic's first layer (thesis section 3.2.2) sees a 28x28 mask times the
256-channel RoI features of its box. In the generator's step the critic is frozen and
only the mask needs a gradient, for which ``feats`` and ``mask`` suffice; autograd's
``conv2d(mask * feats)`` would keep the product too.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _MaskedConv2d(torch.autograd.Function):
    """``conv2d(mask * feats, weight, bias)`` that keeps the (N, C, S, S) product
    for backward only when the weight gradient needs it (the critic's own step),
    not when only the mask's does (the generator's step, critic frozen): there
    ``feats`` and ``mask`` suffice. ``feats`` gets no gradient."""

    @staticmethod
    def forward(ctx, feats: Tensor, mask: Tensor, weight: Tensor,
                bias: Optional[Tensor], stride, padding, dilation, groups) -> Tensor:
        ctx.conv_args = (stride, padding, dilation, groups)
        ctx.has_bias = bias is not None
        product = mask * feats
        ctx.save_for_backward(feats, mask, weight,
                              product if ctx.needs_input_grad[2] else None)
        return F.conv2d(product, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        feats, mask, weight, product = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv_args
        need_mask, need_weight = ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        need_bias = ctx.has_bias and ctx.needs_input_grad[3]
        # the input's value matters for the weight gradient only; else its shape.
        # Under autocast the forward ran in grad_out's dtype: compute in it.
        dtype = grad_out.dtype
        conv_input = (product if need_weight else feats).to(dtype)
        grad_in, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
            grad_out, conv_input, weight.to(dtype),
            [weight.shape[0]] if ctx.has_bias else None, stride, padding, dilation,
            False, [0, 0], groups, [need_mask, need_weight, need_bias])
        grad_mask = ((grad_in * feats.to(dtype)).sum(1, keepdim=True).to(mask.dtype)
                     if need_mask else None)
        if need_weight:
            grad_weight = grad_weight.to(weight.dtype)
        if need_bias:
            grad_bias = grad_bias.to(weight.dtype)
        return (None, grad_mask, grad_weight, grad_bias if need_bias else None,
                None, None, None, None)


def masked_conv(conv: nn.Conv2d, feats: Tensor, mask: Tensor) -> Tensor:
    """``conv(mask * feats)`` without keeping the product for backward.

    Args:
        conv (nn.Conv2d): The convolution (its weight and bias are used).
        feats (Tensor): (N, C, H, W) features; not differentiated.
        mask (Tensor): (N, 1, H, W) mask, broadcast over the channels.

    Returns:
        Tensor: ``conv(mask * feats)``, differentiable in ``mask`` and the
        conv's parameters.
    """
    if feats.requires_grad:
        raise ValueError('masked_conv does not differentiate feats: detach them')
    if isinstance(conv.padding, str):
        raise ValueError(f'masked_conv needs numeric padding, got {conv.padding!r}')
    return _MaskedConv2d.apply(feats, mask, conv.weight, conv.bias, conv.stride,
                               conv.padding, conv.dilation, conv.groups)
