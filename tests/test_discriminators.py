"""BoxDiscriminator and MaskDiscriminator: shapes, losses against their formulas
(thesis eq. 3.2-3.4) with their own loss weights, gradients against the formulas'
autograd and finite differences, and bad input.

The mask critic's references build what the fast path avoids: the (N, M) vectors
``[w_0 x, w_1 conv_1(x), ...]`` of the products ``x = mask * feats``, run through
the plain conv blocks (torchvision's ``expected_fn`` pattern)."""
import math
import re
from contextlib import contextmanager
from typing import Iterator, List

import pytest
import torch
from torch import Tensor, nn

from gan_mask_rcnn.box_discriminator import BoxDiscriminator
from gan_mask_rcnn.mask_discriminator import MaskDiscriminator

SMALL = dict(in_channels=4, roi_size=12, channels=(3, 3, 4, 4, 4))


def _log_sigmoid(z):
    """log(1 / (1 + e^-z)) from math, element by element."""
    return torch.tensor([-math.log1p(math.exp(-v)) if v > -30 else v
                         for v in z.tolist()], dtype=torch.float64)


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


def mask_inputs(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(n, 4, 12, 12, dtype=torch.float64, generator=g)
    real_mask = (torch.rand(n, 1, 12, 12, generator=g) > 0.5).double()
    fake_mask = torch.rand(n, 1, 12, 12, dtype=torch.float64, generator=g)
    return feats, real_mask, fake_mask


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


def test_box_losses_match_eq_3_2_and_3_3_with_their_weights():
    """``loss_generator`` is ``loss_weight * L_G``, ``loss_discriminator``
    ``d_loss_weight * L_D``: each discriminator applies its own weights."""
    torch.manual_seed(0)
    d = BoxDiscriminator(**SMALL, loss_weight=0.3, d_loss_weight=0.7).double()
    real, fake = torch.randn(5, 4, 12, 12).double(), torch.randn(6, 4, 12, 12).double()
    zr, zf = d(real).detach(), d(fake).detach()  # train-mode BN: batch statistics
    p_fake = torch.sigmoid(zf)
    loss_g = d.loss_generator(fake)
    assert set(loss_g) == {'loss'}
    assert loss_g['loss'].item() == pytest.approx(0.3 * (-_log_sigmoid(zf)).mean().item(),
                                                  rel=1e-10)
    out = d.loss_discriminator(real, fake)
    expected_d = (-_log_sigmoid(zr)).mean() - torch.log1p(-p_fake).mean()
    assert out['loss'].item() == pytest.approx(0.7 * expected_d.item(), rel=1e-10)
    assert out['acc_real'].item() == pytest.approx((zr > 0).double().mean().item())
    assert out['acc_fake'].item() == pytest.approx((zf < 0).double().mean().item())
    # the defaults: the author's generator weight, an unweighted L_D
    default = BoxDiscriminator()
    assert (default.loss_weight, default.d_loss_weight) == (0.025, 1.0)


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
    with pytest.raises(ValueError, match=r"BoxDiscriminator\(x, index\) needs conv layers "
                                         r"ordered \('conv', 'norm', 'act'\)"):
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


@pytest.mark.parametrize('kind', ['box', 'mask'])
def test_generator_gradient_matches_finite_differences(kind):
    """d L_G / d fake against central differences (float64, eval-mode BN)."""
    torch.manual_seed(0)
    cls = BoxDiscriminator if kind == 'box' else MaskDiscriminator
    d = cls(**SMALL).double().eval()
    d.requires_grad_(False)
    feats, real_mask, _ = mask_inputs(2)
    shape = (2, 4, 12, 12) if kind == 'box' else (2, 1, 12, 12)
    fake = torch.rand(shape, dtype=torch.float64, requires_grad=True)

    def loss(f):
        out = d.loss_generator(f) if kind == 'box' else d.loss_generator(
            feats, real_mask, f)
        return out['loss']

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
    bad = torch.randn(2, 3, 12, 12)
    with pytest.raises(ValueError, match=r'\(N, 4, 12, 12\), got \(2, 3, 12, 12\)'):
        d(bad) if cls is BoxDiscriminator else d(bad, torch.rand(2, 1, 12, 12))
    with pytest.raises(ValueError, match='channels=.*strides='):
        cls(channels=(8, 8), strides=(2,))


@pytest.mark.parametrize('cls', [BoxDiscriminator, MaskDiscriminator])
@pytest.mark.parametrize('key', ['loss_weight', 'd_loss_weight'])
@pytest.mark.parametrize('value', [float('nan'), -1, float('inf'), '0.5', True])
def test_bad_loss_weight_stops_at_build(cls, key, value):
    """A NaN, negative, infinite or non-numeric weight stops at build, naming the
    class, the key and the value."""
    message = f'{cls.__name__} {key} must be a finite number >= 0, got {value!r}'
    with pytest.raises(ValueError, match=re.escape(message)):
        cls(**{key: value})


def test_joint_norm_must_be_a_bool():
    with pytest.raises(ValueError, match="joint_norm must be True or False, got 'yes'"):
        MaskDiscriminator(joint_norm='yes')


def test_mask_layer_weights_length_is_checked():
    with pytest.raises(ValueError, match=r'len\(channels\) \+ 1 = 6.*\(1, 2\)'):
        MaskDiscriminator(layer_weights=(1, 2))


def expected_joint_distance(d, feats, real_mask, fake_mask):
    """mean |v(real) - v(fake)| with both halves through the blocks in one batch."""
    n = len(feats)
    v = expected_vector(d, torch.cat([real_mask * feats, fake_mask * feats]))
    return (v[:n] - v[n:]).abs().mean()


def test_joint_norm_box_scores_real_and_fake_in_one_batch():
    """joint_norm=True: the logits are those of one forward on the concatenation
    (BatchNorm statistics over real and fake together), in both steps."""
    torch.manual_seed(0)
    d = BoxDiscriminator(**SMALL, joint_norm=True, loss_weight=0.3).double()
    real = torch.randn(3, 4, 12, 12, dtype=torch.float64)
    fake = torch.randn(7, 4, 12, 12, dtype=torch.float64) + 0.5
    index = torch.tensor([0, 0, 2, 1, 2, 2, 0])
    with torch.no_grad():
        z = d(torch.cat([real[index], fake]))
    zr, zf = z[:7], z[7:]
    expected_d = (-_log_sigmoid(zr)).mean() - _log_sigmoid(-zf).mean()
    out = d.loss_discriminator(real, fake, index)
    assert out['loss'].item() == pytest.approx(expected_d.item(), rel=1e-10)
    assert out['acc_real'].item() == pytest.approx((zr > 0).double().mean().item())
    gen = d.loss_generator(fake, real, index)['loss']
    assert gen.item() == pytest.approx(0.3 * (-_log_sigmoid(zf)).mean().item(), rel=1e-10)
    apart = BoxDiscriminator(**SMALL).double()
    apart.load_state_dict(d.state_dict())
    assert apart.loss_discriminator(real, fake, index)['loss'].item() != pytest.approx(
        out['loss'].item(), rel=1e-3)  # BatchNorm: the option changes the losses
    with pytest.raises(ValueError, match='joint_norm=True.*pass real'):
        d.loss_generator(fake)


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
