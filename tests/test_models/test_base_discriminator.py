"""What both discriminators share (BaseDiscriminator): checked weights and inputs,
generator gradients against finite differences, the norm choices, the parameter
drift ``||theta_D - theta_D(0)||`` against a snapshot of the parameters, and
checkpoints written before the drift buffer existed."""
import copy
import re

import pytest
import torch
from test_mask_discriminator import mask_inputs

from gan_mask_rcnn.box_discriminator import BoxDiscriminator
from gan_mask_rcnn.mask_discriminator import MaskDiscriminator

SMALL = dict(in_channels=4, roi_size=12, channels=(3, 3, 4, 4, 4))


def _losses(d, joint_norm):
    """The D loss of a copy of ``d`` with ``joint_norm`` on fixed inputs."""
    d = copy.deepcopy(d)
    d.joint_norm = joint_norm
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(5, 4, 12, 12, dtype=torch.float64, generator=g)
    if isinstance(d, BoxDiscriminator):
        index = torch.tensor([0, 1, 1, 4, 2, 0])
        fake = torch.randn(6, 4, 12, 12, dtype=torch.float64, generator=g) + 1
        return d.loss_discriminator(feats, fake, index)['loss'].item()
    real_mask = (torch.rand(5, 1, 12, 12, generator=g) > 0.5).double()
    fake_mask = torch.rand(5, 1, 12, 12, dtype=torch.float64, generator=g)
    return d.loss_discriminator(feats, real_mask, fake_mask)['loss'].item()


@pytest.mark.parametrize('cls', [BoxDiscriminator, MaskDiscriminator])
@pytest.mark.parametrize('norm_cfg', [dict(type='GN', num_groups=1), None],
                         ids=['group_norm', 'no_norm'])
def test_per_sample_norms_make_joint_norm_irrelevant(cls, norm_cfg):
    """GroupNorm or no norm: each sample is normalised alone, so one forward on
    real + fake gives the losses of two; with BatchNorm it does not."""
    torch.manual_seed(0)
    d = cls(**SMALL, norm_cfg=norm_cfg).double()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
    assert _losses(d, True) == pytest.approx(_losses(d, False), rel=1e-10)
    bn = cls(**SMALL).double()
    assert _losses(bn, True) != pytest.approx(_losses(bn, False), rel=1e-3)


def _snapshot(d):
    return [p.detach().clone() for p in d.parameters()]


def _distance(params, before):
    return sum(((p.detach() - q) ** 2).sum() for p, q in zip(params, before)).sqrt().item()


@pytest.mark.parametrize('cls', [BoxDiscriminator, MaskDiscriminator])
def test_param_drift_is_the_distance_from_the_initial_parameters(cls):
    torch.manual_seed(0)
    d = cls(**SMALL)
    assert d.param_drift().item() == 0
    d.init_weights()  # the initialised parameters are theta_D(0)
    assert d.param_drift().item() == 0
    initial = _snapshot(d)
    opt = torch.optim.SGD(d.parameters(), lr=0.5)
    for seed in range(2):
        g = torch.Generator().manual_seed(seed)
        for p in d.parameters():  # a step in a known random direction
            p.grad = torch.randn(p.shape, generator=g)
        opt.step()
    expected = _distance(d.parameters(), initial)
    assert expected > 0
    assert d.param_drift().item() == pytest.approx(expected, rel=1e-5)
    # a checkpoint keeps theta_D(0): a fresh module with other weights resumes it
    torch.manual_seed(1)
    resumed = cls(**SMALL)
    resumed.load_state_dict(d.state_dict(), strict=True)
    assert resumed.param_drift().item() == pytest.approx(expected, rel=1e-5)


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
