"""MaskDiscriminator: losses against thesis eq. 3.4 with its own weights, L_G's
two logged parts, gradients against the formula's autograd, joint normalisation.

The references build what the fast path avoids: the (N, M) vectors
``[w_0 x, w_1 conv_1(x), ...]`` of the products ``x = mask * feats``, run through
the plain conv blocks (torchvision's ``expected_fn`` pattern)."""
from typing import List

import pytest
import torch
from torch import Tensor

from gan_mask_rcnn.mask_discriminator import MaskDiscriminator

SMALL = dict(in_channels=4, roi_size=12, channels=(3, 3, 4, 4, 4))


def expected_layer_outputs(d: MaskDiscriminator, x: Tensor) -> List[Tensor]:
    """The input and each conv block's output, through the plain blocks."""
    outputs = [x]
    for conv in d.convs:
        outputs.append(conv(outputs[-1]))
    return outputs


def expected_vector(d: MaskDiscriminator, x: Tensor) -> Tensor:
    """SegAN's hierarchical vector: weighted, flattened, concatenated, (N, M)."""
    return torch.cat([w * f.flatten(1) for w, f in
                      zip(d.layer_weights, expected_layer_outputs(d, x))], dim=1)


def expected_distance(d, feats, real_mask, fake_mask):
    """Eq. 3.4 divided by the vector length: mean |v(real) - v(fake)|, and its
    input part (the first C*S*S entries of each vector)."""
    vr, vf = expected_vector(d, real_mask * feats), expected_vector(d, fake_mask * feats)
    diff = (vr - vf).abs()
    return diff.mean(), diff[:, :feats[0].numel()].sum() / diff.numel()


def expected_joint_distance(d, feats, real_mask, fake_mask):
    """mean |v(real) - v(fake)| with both halves through the blocks in one batch."""
    n = len(feats)
    v = expected_vector(d, torch.cat([real_mask * feats, fake_mask * feats]))
    return (v[:n] - v[n:]).abs().mean()


def mask_inputs(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(n, 4, 12, 12, dtype=torch.float64, generator=g)
    real_mask = (torch.rand(n, 1, 12, 12, generator=g) > 0.5).double()
    fake_mask = torch.rand(n, 1, 12, 12, dtype=torch.float64, generator=g)
    return feats, real_mask, fake_mask


def test_mask_discriminator_layers_shrink():
    """forward gives each conv block's output of ``mask * feats``, as the plain
    blocks do, at shrinking resolution."""
    torch.manual_seed(0)
    d = MaskDiscriminator(**SMALL, strides=(2, 2, 2, 1, 1)).double()
    feats, _, mask = mask_inputs(2)
    outputs = d(feats, mask)
    expected = expected_layer_outputs(d, mask * feats)[1:]
    assert [o.shape[-1] for o in outputs] == [6, 3, 2, 2, 2]
    for ours, ref in zip(outputs, expected):
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)


def test_mask_losses_match_eq_3_4_with_their_weights():
    """L_G and L_D = -L_G against the built vectors, each with its own weight, and
    L_G's two logged parts: the parameter-free input term and the layers' term."""
    torch.manual_seed(0)
    d = MaskDiscriminator(**SMALL, loss_weight=0.3, d_loss_weight=0.7).double()
    feats, real_mask, fake_mask = mask_inputs()
    with torch.no_grad():
        distance, input_part = expected_distance(d, feats, real_mask, fake_mask)
    gen = d.loss_generator(feats, real_mask, fake_mask)
    assert set(gen) == {'loss', 'l1_input', 'l1_layers'}
    assert gen['loss'].item() == pytest.approx(0.3 * distance.item(), rel=1e-10)
    assert gen['l1_input'].item() == pytest.approx(input_part.item(), rel=1e-10)
    assert gen['l1_layers'].item() == pytest.approx((distance - input_part).item(),
                                                    rel=1e-10)
    assert 0 < gen['l1_input'] and 0 < gen['l1_layers']
    disc = d.loss_discriminator(feats, real_mask, fake_mask)
    assert disc['loss'].item() == pytest.approx(-0.7 * distance.item(), rel=1e-10)
    assert disc['dist'].item() == pytest.approx(distance.item(), rel=1e-10)
    default = MaskDiscriminator()
    assert (default.loss_weight, default.d_loss_weight) == (0.5, 1.0)


def test_mask_loss_gradients_match_the_formula():
    """The critic's parameter gradients (its step) and the fake mask's gradient
    (the generator's step, critic frozen) equal autograd through the vectors."""
    torch.manual_seed(0)
    d = MaskDiscriminator(**SMALL, d_loss_weight=0.7).double()
    feats, real_mask, fake_mask = mask_inputs()
    d.zero_grad()
    d.loss_discriminator(feats, real_mask, fake_mask)['loss'].backward()
    ours = [p.grad.clone() for p in d.parameters()]
    d.zero_grad()
    (-0.7 * expected_distance(d, feats, real_mask, fake_mask)[0]).backward()
    for a, b in zip(ours, [p.grad for p in d.parameters()]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    d.requires_grad_(False)
    grads = []
    for fn in (lambda m: d.loss_generator(feats, real_mask, m)['loss'],
               lambda m: d.loss_weight * expected_distance(d, feats, real_mask, m)[0]):
        m = fake_mask.clone().requires_grad_()
        fn(m).backward()
        grads.append(m.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match='masks must be \\(N, 1, S, S\\)'):
        d.loss_generator(feats, real_mask[:, 0], fake_mask[:, 0])


def test_mask_input_term_alone_is_plain_l1():
    """With weight 0 on every layer, L_G is the mean |real - fake| of the inputs
    scaled by (input size) / (vector length), all of it the input term."""
    d = MaskDiscriminator(**SMALL, layer_weights=(1, 0, 0, 0, 0, 0), loss_weight=1)
    feats, real_mask, fake_mask = (t.float() for t in mask_inputs(2))
    m = expected_vector(d, feats).shape[1]
    expected = (real_mask * feats - fake_mask * feats).abs().sum().item() / (2 * m)
    out = d.loss_generator(feats, real_mask, fake_mask)
    assert out['loss'].item() == pytest.approx(expected, rel=1e-5)
    assert out['l1_input'].item() == pytest.approx(expected, rel=1e-5)
    assert out['l1_layers'].item() == pytest.approx(0, abs=1e-7)


def test_joint_norm_mask_critic_runs_one_batch():
    torch.manual_seed(0)
    d = MaskDiscriminator(**SMALL, joint_norm=True, loss_weight=0.3).double()
    feats, real_mask, fake_mask = mask_inputs()
    with torch.no_grad():
        expected = expected_joint_distance(d, feats, real_mask, fake_mask)
        apart = expected_distance(d, feats, real_mask, fake_mask)[0]
    assert expected.item() != pytest.approx(apart.item(), rel=1e-3)
    out = d.loss_discriminator(feats, real_mask, fake_mask)
    assert out['loss'].item() == pytest.approx(-expected.item(), rel=1e-10)
    d.requires_grad_(False)
    m = fake_mask.clone().requires_grad_()
    gen = d.loss_generator(feats, real_mask, m)
    assert gen['loss'].item() == pytest.approx(0.3 * expected.item(), rel=1e-10)
    gen['loss'].backward()
    ref = fake_mask.clone().requires_grad_()
    (0.3 * expected_joint_distance(d, feats, real_mask, ref)).backward()
    torch.testing.assert_close(m.grad, ref.grad, rtol=1e-10, atol=1e-12)


def test_mask_layer_weights_length_is_checked():
    with pytest.raises(ValueError, match=r'len\(channels\) \+ 1 = 6.*\(1, 2\)'):
        MaskDiscriminator(layer_weights=(1, 2))
