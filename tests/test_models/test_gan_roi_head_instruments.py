"""GANRoIHead's adversarial terms and training instruments against independent
references: ``loss_g_* = loss_weight * adv_weight_scale * L_G`` and
``loss_d_* = d_loss_weight * L_D`` recomputed from the kept inputs by the thesis'
formulas; the mask critic's L_G split against its built vectors; the gradient ratios
against ``autograd.grad`` of each loss alone; the drift against a parameter
snapshot; and every instrument in the log of a short training run."""
import glob
import json
import os.path as osp

import pytest
import torch
from conftest import CONFIGS, tiny_cfg
from mmengine.logging import MessageHub
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from test_box_discriminator import _log_sigmoid
from test_mask_discriminator import expected_distance
from test_gan_roi_head import C, head_cfg, make_batch, run_gan_loss

from mmdet.registry import MODELS

INSTRUMENTS = ('l1_g_mask_input', 'l1_g_mask_layers', 'drift_d_box', 'drift_d_mask',
               'grad_ratio_g_box', 'grad_ratio_g_mask')
WEIGHTS = dict(
    box_discriminator=dict(type='BoxDiscriminator', in_channels=C, channels=(8,) * 5,
                           loss_weight=0.3, d_loss_weight=0.7),
    mask_discriminator=dict(type='MaskDiscriminator', in_channels=C, channels=(8,) * 5,
                            loss_weight=0.2, d_loss_weight=0.9))


@pytest.fixture
def gan():
    """A float64 head with its own weights on both losses of both discriminators."""
    torch.manual_seed(0)
    head = MODELS.build(head_cfg(**WEIGHTS)).double()
    head.train()
    return head


def double_batch(seed=0):
    x, proposals, samples = make_batch(seed)
    for p in proposals:
        p.bboxes = p.bboxes.double()
    for s in samples:
        s.gt_instances.bboxes = s.gt_instances.bboxes.double()
    return tuple(f.double() for f in x), proposals, samples


def test_instruments_are_log_values_not_losses():
    """MMEngine sums every log variable whose name contains ``loss``."""
    assert not any('loss' in name for name in INSTRUMENTS)


@pytest.mark.parametrize('scale', [0.5, 1.0])
def test_terms_are_their_weights_times_the_formulas(gan, scale):
    """Generator terms: loss_weight x the schedule's scale x L_G (eq. 3.2, 3.4);
    discriminator terms: d_loss_weight x L_D (eq. 3.3, -L_G), unscaled."""
    for d in gan.discriminators():
        d.requires_grad_(False)
    losses, inputs = run_gan_loss(gan, double_batch(), scale=scale)
    real, fake, real_index = inputs[('box', 0)]
    box, mask = gan.box_discriminator, gan.mask_discriminator
    with torch.no_grad():  # train-mode BatchNorm: the statistics of the same batches
        z_fake, z_real = box(fake), box(real[real_index])
        lg_mask, input_part = expected_distance(mask, *inputs[('mask', 0)])
    lg_box = (-_log_sigmoid(z_fake)).mean().item()
    assert losses['loss_g_box'].item() == pytest.approx(0.3 * scale * lg_box, rel=1e-9)
    assert losses['loss_g_mask'].item() == pytest.approx(0.2 * scale * lg_mask.item(),
                                                         rel=1e-9)
    # L_G's parts are logged unweighted; the input term dominates at 28x28
    assert losses['l1_g_mask_input'].item() == pytest.approx(input_part.item(), rel=1e-9)
    assert losses['l1_g_mask_layers'].item() == pytest.approx(
        (lg_mask - input_part).item(), rel=1e-9)
    out = gan.discriminator_loss(inputs)
    ld_box = (-_log_sigmoid(z_real)).mean() - _log_sigmoid(-z_fake).mean()
    assert out['loss_d_box'].item() == pytest.approx(0.7 * ld_box.item(), rel=1e-9)
    assert out['loss_d_mask'].item() == pytest.approx(-0.9 * lg_mask.item(), rel=1e-9)
    assert out['dist_d_mask'].item() == pytest.approx(lg_mask.item(), rel=1e-9)


def test_gradient_ratios_match_each_loss_alone(gan):
    """grad_ratio_g_box = ||d loss_g_box / d bbox_pred|| / ||d loss_bbox / d bbox_pred||
    (and the mask's on the mask logits), from autograd.grad of each loss alone,
    written to the MessageHub by the one backward of the summed loss."""
    hub = MessageHub.get_instance('test_gradient_ratios')
    preds = {}
    gan.bbox_head.register_forward_hook(lambda m, a, out: preds.update(box=out[1]))
    gan.mask_head.register_forward_hook(lambda m, a, out: preds.update(mask=out))
    for d in gan.discriminators():
        d.requires_grad_(False)
    losses, _ = run_gan_loss(gan, double_batch())
    expected = {}
    for kind, supervised in (('box', 'loss_bbox'), ('mask', 'loss_mask')):
        adv, = torch.autograd.grad(losses[f'loss_g_{kind}'], preds[kind], retain_graph=True)
        sup, = torch.autograd.grad(losses[supervised], preds[kind], retain_graph=True)
        expected[kind] = (adv.norm() / sup.norm()).item()
        assert expected[kind] > 0
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    for kind in ('box', 'mask'):
        logged = hub.get_scalar(f'train/grad_ratio_g_{kind}').current()
        assert logged == pytest.approx(expected[kind], rel=1e-6), kind


def test_drift_is_the_distance_from_the_initial_parameters(gan):
    initial = {id(p): p.detach().clone() for d in gan.discriminators()
               for p in d.parameters()}
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for d in gan.discriminators():
            for p in d.parameters():
                p.add_(0.01 * torch.randn(p.shape, dtype=p.dtype, generator=g))
    out = gan.discriminator_loss(run_gan_loss(gan, double_batch())[1])
    for kind, d in (('box', gan.box_discriminator), ('mask', gan.mask_discriminator)):
        expected = sum(((p.detach() - initial[id(p)]) ** 2).sum()
                       for p in d.parameters()).sqrt().item()
        assert out[f'drift_d_{kind}'].item() == pytest.approx(expected, rel=1e-9)


def test_every_logging_interval_has_the_instruments(shapes_root, tmp_path):
    """A 3-iteration run of the shapes GAN config, adversarial from the start,
    logging every iteration: each row holds every instrument, and the
    discriminators drift once they have been updated."""
    init_default_scope('mmdet')
    cfg = tiny_cfg(osp.join(CONFIGS, 'gan-mask-rcnn_r18_fpn_shapes-cpu.py'), shapes_root,
                   str(tmp_path), max_iters=3)
    for key in ('adv_start_fraction', 'adv_ramp_fraction'):
        cfg.model.pop(key, None)  # the defaults: adversarial from the first iteration
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.visualizer.name = str(tmp_path)
    Runner.from_cfg(cfg).train()
    scalars, = glob.glob(osp.join(str(tmp_path), '*', 'vis_data', 'scalars.json'))
    with open(scalars) as f:
        rows = [row for row in map(json.loads, f) if 'loss' in row]
    assert [row['iter'] for row in rows] == [1, 2, 3]
    for row in rows:
        missing = [key for key in INSTRUMENTS if key not in row]
        assert not missing, (row['iter'], missing)
        assert row['l1_g_mask_input'] > 0 and row['grad_ratio_g_box'] > 0
    assert rows[0]['drift_d_box'] == 0 and rows[0]['drift_d_mask'] == 0
    assert rows[-1]['drift_d_box'] > 0 and rows[-1]['drift_d_mask'] > 0

