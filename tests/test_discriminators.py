"""BoxDiscriminator and MaskDiscriminator: shapes, losses against their formulas
(thesis eq. 3.2-3.4), gradients against finite differences, and bad input."""
import math
from contextlib import contextmanager
from typing import Iterator

import pytest
import torch
from torch import nn

from gan_mask_rcnn.box_discriminator import BoxDiscriminator
from gan_mask_rcnn.mask_discriminator import MaskDiscriminator

SMALL = dict(in_channels=4, roi_size=12, channels=(3, 3, 4, 4, 4))


def _log_sigmoid(z):
    """log(1 / (1 + e^-z)) from math, element by element."""
    return torch.tensor([-math.log1p(math.exp(-v)) if v > -30 else v
                         for v in z.tolist()], dtype=torch.float64)


def test_box_discriminator_architecture_and_shapes():
    d = BoxDiscriminator()
    convs = list(d.convs)
    assert len(convs) == 5
    for conv in convs:  # each conv is followed by BatchNorm and LeakyReLU
        assert isinstance(conv.bn, nn.BatchNorm2d)
        assert isinstance(conv.activate, nn.LeakyReLU)
    out = d(torch.randn(3, 256, 28, 28))
    assert out.shape == (3,)
    # A single box still trains (BatchNorm sees a 4x4 map per channel).
    assert d(torch.randn(1, 256, 28, 28)).shape == (1,)


def test_box_losses_match_eq_3_2_and_3_3():
    torch.manual_seed(0)
    d = BoxDiscriminator(**SMALL).double()
    real, fake = torch.randn(5, 4, 12, 12).double(), torch.randn(6, 4, 12, 12).double()
    zr, zf = d(real).detach(), d(fake).detach()  # train-mode BN: batch statistics
    p_fake = torch.sigmoid(zf)
    loss_g = d.loss_generator(fake)
    assert loss_g.item() == pytest.approx((-_log_sigmoid(zf)).mean().item(), rel=1e-10)
    out = d.loss_discriminator(real, fake)
    expected_d = (-_log_sigmoid(zr)).mean() - torch.log1p(-p_fake).mean()
    assert out['loss'].item() == pytest.approx(expected_d.item(), rel=1e-10)
    assert out['acc_real'].item() == pytest.approx((zr > 0).double().mean().item())
    assert out['acc_fake'].item() == pytest.approx((zf < 0).double().mean().item())


def test_box_discriminator_index_equals_scoring_the_repeated_rows():
    """Scoring x[index] through ``index`` (first conv on the distinct rows, gathered
    before BatchNorm) equals scoring the repeated rows: logits, the loss and every
    parameter gradient, with train-mode batch statistics."""
    torch.manual_seed(0)
    d = BoxDiscriminator(**SMALL).double()
    real = torch.randn(3, 4, 12, 12, dtype=torch.float64)
    fake = torch.randn(7, 4, 12, 12, dtype=torch.float64)
    index = torch.tensor([0, 0, 2, 1, 2, 2, 0])
    results = []
    for args in ((real[index], fake), (real, fake, index)):
        d.zero_grad()
        out = d.loss_discriminator(*args)
        out['loss'].backward()
        results.append([out['loss'], out['acc_real']] +
                       [p.grad.clone() for p in d.parameters()])
    for ours, ref in zip(results[1], results[0]):
        torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    d.convs[0].order = ('norm', 'conv', 'act')
    with pytest.raises(ValueError, match='index needs conv layers ordered'):
        d(real, index)


def test_box_discriminator_index_gradients_are_deterministic():
    """Bit-for-bit the same gradients on every run (exact resume depends on it).
    The backward of ``x[index]`` adds repeated rows with parallel atomics on CPU
    once the tensor is large and several threads run; whether the order changes
    depends on thread timing, so ``test_resume_equals_straight_run`` (a training
    process) caught that more often than this test does."""
    torch.manual_seed(0)
    d = BoxDiscriminator(in_channels=4, roi_size=28)
    real, fake = torch.randn(3, 4, 28, 28), torch.randn(40, 4, 28, 28)
    index = torch.randint(0, 3, (40,))
    grads = []
    with _threads(2):
        for _ in range(5):
            d.zero_grad()
            d.loss_discriminator(real, fake, index)['loss'].backward()
            grads.append(d.convs[0].conv.weight.grad.clone())
    assert all(torch.equal(g, grads[0]) for g in grads)


@contextmanager
def _threads(num: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(num)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def test_box_discriminator_learns_a_separable_problem():
    torch.manual_seed(0)
    d = BoxDiscriminator(**SMALL)
    opt = torch.optim.Adam(d.parameters(), lr=1e-2)
    # Real: a bright block at the centre (a well-placed box); fake: shifted. The
    # difference is spatial, as for boxes (BatchNorm removes per-batch channel means).
    real_mask, fake_mask = torch.zeros(12, 12), torch.zeros(12, 12)
    real_mask[3:9, 3:9] = 2
    fake_mask[5:11, 0:6] = 2
    for _ in range(40):
        real = torch.randn(8, 4, 12, 12) * 0.5 + real_mask
        fake = torch.randn(8, 4, 12, 12) * 0.5 + fake_mask
        out = d.loss_discriminator(real, fake)
        opt.zero_grad()
        out['loss'].backward()
        opt.step()
    assert out['acc_real'].item() == 1.0 and out['acc_fake'].item() == 1.0
    assert out['loss'].item() < 0.2


def test_mask_discriminator_output_is_weighted_concatenation():
    torch.manual_seed(0)
    weights = (1, 1, 2, 2, 2, 4)
    d = MaskDiscriminator(**SMALL, strides=(2, 2, 2, 1, 1), layer_weights=weights)
    x = torch.randn(2, 4, 12, 12)
    out = d(x)
    # sizes: input 4*12*12, then 3*6*6, 3*3*3, 4*2*2, 4*2*2, 4*2*2
    sizes = [4 * 144, 3 * 36, 3 * 9, 4 * 4, 4 * 4, 4 * 4]
    assert out.shape == (2, sum(sizes))
    assert torch.equal(out[:, :sizes[0]], x.flatten(1))
    # the last block is 4 x the last layer's output
    last = x
    for conv in d.convs:
        last = conv(last)
    assert torch.allclose(out[:, -sizes[-1]:], 4 * last.flatten(1))
    resolutions = [12]
    for conv in d.convs:
        resolutions.append((resolutions[-1] - 1) // conv.conv.stride[0] + 1)
    assert resolutions == [12, 6, 3, 2, 2, 2]  # shrinking resolution


def test_mask_losses_match_eq_3_4():
    torch.manual_seed(0)
    d = MaskDiscriminator(**SMALL).double()
    real, fake = torch.randn(3, 4, 12, 12).double(), torch.randn(3, 4, 12, 12).double()
    vr, vf = d(real).detach(), d(fake).detach()
    expected = sum(abs(a - b) for a, b in zip(vr.flatten().tolist(),
                                              vf.flatten().tolist())) / vr.numel()
    assert d.loss_generator(real, fake).item() == pytest.approx(expected, rel=1e-10)
    assert d.loss_discriminator(real, fake).item() == pytest.approx(-expected, rel=1e-10)


def test_masked_distance_equals_distance_of_the_products():
    """masked_distance(F, m_r, m_f) factors the input term; value and gradients
    (fake mask, critic parameters) must equal distance(m_r * F, m_f * F), with the
    eq. 3.4 mean over the concatenated vectors as the reference value."""
    torch.manual_seed(0)
    d = MaskDiscriminator(**SMALL).double()
    feats = torch.randn(3, 4, 12, 12, dtype=torch.float64)
    real_mask = (torch.rand(3, 1, 12, 12) > 0.5).double()
    fake_mask = torch.rand(3, 1, 12, 12, dtype=torch.float64)
    vr, vf = d(real_mask * feats).detach(), d(fake_mask * feats).detach()
    expected = (vr - vf).abs().mean().item()
    results = []
    for fn in (lambda m: d.distance(real_mask * feats, m * feats),
               lambda m: d.masked_distance(feats, real_mask, m)):
        d.zero_grad()
        m = fake_mask.clone().requires_grad_()
        out = fn(m)
        out.backward()
        results.append([out, m.grad] + [p.grad.clone() for p in d.parameters()])
    assert results[1][0].item() == pytest.approx(expected, rel=1e-10)
    for ours, ref in zip(results[1], results[0]):
        torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    with torch.no_grad():  # the generator's form: the real branch is not differentiated
        gen = d.masked_distance(feats, real_mask, fake_mask, real_grad=False)
    assert gen.item() == pytest.approx(expected, rel=1e-10)
    with pytest.raises(ValueError, match='masks must be \\(N, 1, S, S\\)'):
        d.masked_distance(feats, real_mask[:, 0], fake_mask[:, 0])


def test_mask_input_term_alone_is_plain_l1():
    """With weight 0 on every layer, L_G is the mean |real - fake| of the inputs
    scaled by (input size) / (vector length)."""
    d = MaskDiscriminator(**SMALL, layer_weights=(1, 0, 0, 0, 0, 0))
    real, fake = torch.rand(2, 4, 12, 12), torch.rand(2, 4, 12, 12)
    m = d(real).shape[1]
    expected = (real - fake).abs().sum().item() / (2 * m)
    assert d.loss_generator(real, fake).item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize('kind', ['box', 'mask'])
def test_generator_gradient_matches_finite_differences(kind):
    """d L_G / d fake against central differences (float64, eval-mode BN)."""
    torch.manual_seed(0)
    cls = BoxDiscriminator if kind == 'box' else MaskDiscriminator
    d = cls(**SMALL).double().eval()
    d.requires_grad_(False)
    real = torch.randn(2, 4, 12, 12, dtype=torch.float64)
    fake = torch.randn(2, 4, 12, 12, dtype=torch.float64, requires_grad=True)

    def loss(f):
        return d.loss_generator(f) if kind == 'box' else d.loss_generator(real, f)

    loss(fake).backward()
    direction = torch.randn_like(fake)
    h = 1e-6
    numeric = (loss(fake.detach() + h * direction) - loss(fake.detach() - h * direction)) / (2 * h)
    assert (fake.grad * direction).sum().item() == pytest.approx(numeric.item(), rel=1e-5,
                                                                  abs=1e-9)
    assert all(p.grad is None for p in d.parameters())


@pytest.mark.parametrize('cls', [BoxDiscriminator, MaskDiscriminator])
def test_bad_input_names_the_shape(cls):
    d = cls(**SMALL)
    with pytest.raises(ValueError, match=r'\(N, 4, 12, 12\), got \(2, 3, 12, 12\)'):
        d(torch.randn(2, 3, 12, 12))
    with pytest.raises(ValueError, match='channels=.*strides='):
        cls(channels=(8, 8), strides=(2,))
    with pytest.raises(ValueError, match='loss_weight must be >= 0, got -1'):
        cls(loss_weight=-1)


def test_mask_layer_weights_length_is_checked():
    with pytest.raises(ValueError, match=r'len\(channels\) \+ 1 = 6.*\(1, 2\)'):
        MaskDiscriminator(layer_weights=(1, 2))


def test_masked_conv_matches_conv_of_the_product_kept_only_for_the_weight():
    from gan_mask_rcnn.discriminator_utils import _MaskedConv2d, masked_conv
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
    from gan_mask_rcnn.discriminator_utils import masked_conv
    conv = nn.Conv2d(4, 3, 3, padding=1, bias=False)
    feats, mask = torch.randn(2, 4, 8, 8), torch.rand(2, 1, 8, 8, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = masked_conv(conv, feats, mask)
        ref = conv(mask * feats)
    out.float().sum().backward()
    assert out.dtype == ref.dtype and mask.grad.dtype == torch.float32
    assert conv.weight.grad.dtype == torch.float32
    torch.testing.assert_close(out.float(), ref.float())
