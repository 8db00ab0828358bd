"""BoxDiscriminator: shapes, losses against thesis eq. 3.2 and 3.3 with its own
weights, scoring through an index against the repeated rows, joint normalisation
against one plain forward on the concatenation, and that it learns."""
import math
from contextlib import contextmanager
from typing import Iterator

import pytest
import torch
from torch import nn

from gan_mask_rcnn.box_discriminator import BoxDiscriminator

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
