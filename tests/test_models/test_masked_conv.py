"""masked_conv: ``conv2d(mask * feats)`` against autograd's own, gradients against
finite differences, what it keeps for backward, and autocast."""
import pytest
import torch
from torch import nn

from gan_mask_rcnn.masked_conv import _MaskedConv2d, masked_conv


def test_masked_conv_matches_conv_of_the_product_kept_only_for_the_weight():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 3, 3, stride=2, padding=1, bias=True).double()
    feats = torch.randn(2, 4, 9, 9, dtype=torch.float64)
    mask = torch.rand(2, 1, 9, 9, dtype=torch.float64, requires_grad=True)
    # gradcheck against finite differences: mask, weight and bias
    assert torch.autograd.gradcheck(
        lambda m, w, b: _MaskedConv2d.apply(feats, m, w, b, (2, 2), (1, 1), (1, 1), 1),
        (mask, conv.weight, conv.bias))
    grads = []
    for fn in (lambda: conv(mask * feats), lambda: masked_conv(conv, feats, mask)):
        conv.zero_grad()
        mask.grad = None
        out = fn()
        (out * torch.linspace(-1, 1, out.numel(), dtype=torch.float64).view_as(out)).sum() \
            .backward()
        grads.append([out.detach(), mask.grad, conv.weight.grad, conv.bias.grad])
    for ours, ref in zip(grads[1], grads[0]):
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)

    def kept_products():  # saved (N, C, S, S) tensors other than feats
        saved = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t,
                                                      lambda t: t):
            masked_conv(conv, feats, mask)
        return [t for t in saved if t.shape == feats.shape
                and t.data_ptr() != feats.data_ptr()]

    assert len(kept_products()) == 1  # the weight gradient needs the product
    conv.requires_grad_(False)  # the generator's step: only the mask's gradient
    assert not kept_products()
    conv.requires_grad_(True)
    with pytest.raises(ValueError, match='does not differentiate feats'):
        masked_conv(conv, feats.clone().requires_grad_(), mask)


def test_masked_conv_under_cpu_autocast():
    conv = nn.Conv2d(4, 3, 3, padding=1, bias=False)
    feats, mask = torch.randn(2, 4, 8, 8), torch.rand(2, 1, 8, 8, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = masked_conv(conv, feats, mask)
        ref = conv(mask * feats)
    out.float().sum().backward()
    assert out.dtype == ref.dtype and mask.grad.dtype == torch.float32
    assert conv.weight.grad.dtype == torch.float32
    torch.testing.assert_close(out.float(), ref.float())
