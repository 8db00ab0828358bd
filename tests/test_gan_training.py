"""GAN training through MMEngine: train_step, optim-wrapper constructor, GAN loop,
exact resume, load_from a plain Mask R-CNN checkpoint, inference with and without
the discriminator weights, logging, and bad input.

References: mmdet's plain Mask R-CNN train_step and inference, a second run of the
same schedule (straight vs. resumed), the checkpoint files themselves, and the
TensorBoard event reader."""
import copy
import glob
import json
import os.path as osp

import pytest
import torch
from conftest import CONFIGS, tiny_cfg, train_with_resume
from mmengine.config import Config
from mmengine.optim import (DefaultOptimWrapperConstructor, OptimWrapperDict,
                            build_optim_wrapper)
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from mmdet.apis import DetInferencer, inference_detector, init_detector
from mmdet.registry import MODELS

GAN_CFG = osp.join(CONFIGS, 'gan-mask-rcnn_r18_fpn_shapes-cpu.py')
BASE_CFG = osp.join(CONFIGS, 'mask-rcnn_r18_fpn_shapes-cpu.py')
N = 2  # iterations of the runner tests (adversarial, weights ramping 0.5 -> 1)


def gan_tiny_cfg(data_root, work_dir, max_iters=N):
    cfg = tiny_cfg(GAN_CFG, data_root, work_dir, max_iters)
    cfg.train_cfg.update(adv_start_iter=0, adv_weight_ramp_iters=2, reseed_every_iter=True)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None  # no validation: speed
    cfg.optim_wrapper.discriminator.clip_grad = dict(max_norm=10)  # logs grad_norm_d
    cfg.visualizer.name = work_dir  # the visualizer is a per-name singleton
    return cfg


def plain_model_cfg(gan_model_cfg):
    cfg = copy.deepcopy(gan_model_cfg)
    cfg.type = 'MaskRCNN'
    cfg.roi_head.type = 'StandardRoIHead'
    for key in ('box_discriminator', 'mask_discriminator', 'disc_roi_extractor',
                'max_disc_rois_per_img'):
        cfg.roi_head.pop(key, None)
    return cfg


# ---------------------------------------------------------------- model-level tests
@pytest.fixture(scope='module')
def setup(shapes_root, tmp_path_factory):
    """The tiny GAN config and one training batch (no runner)."""
    init_default_scope('mmdet')
    cfg = gan_tiny_cfg(shapes_root, str(tmp_path_factory.mktemp('gan_unit')))
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    return cfg, next(iter(loader))


def build(cfg, plain=False):
    torch.manual_seed(0)
    model = MODELS.build(plain_model_cfg(cfg.model) if plain else cfg.model)
    model.init_weights()
    return model


def params(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def test_constructor_splits_generator_and_discriminator(setup):
    cfg, _ = setup
    model = build(cfg)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert isinstance(wrapper, OptimWrapperDict)
    groups = {side: [p for g in wrapper[side].optimizer.param_groups for p in g['params']]
              for side in ('generator', 'discriminator')}
    disc = {id(p) for name, p in model.named_parameters() if 'discriminator' in name}
    assert {id(p) for p in groups['discriminator']} == disc
    assert {id(p) for p in groups['generator']} == \
        {id(p) for p in model.parameters()} - disc
    assert len(groups['generator']) + len(groups['discriminator']) == \
        len(list(model.parameters()))
    assert wrapper['generator'].optimizer.defaults['lr'] == 0.01
    assert wrapper['discriminator'].optimizer.defaults['lr'] == pytest.approx(0.01 / 5)


def test_constructor_paramwise_cfg_uses_detector_names(setup):
    cfg, _ = setup
    model = build(cfg)
    ow = copy.deepcopy(cfg.optim_wrapper)
    ow.generator.paramwise_cfg = dict(custom_keys={'backbone': dict(lr_mult=0.1)})
    ow.discriminator.paramwise_cfg = dict(
        custom_keys={'roi_head.mask_discriminator': dict(lr_mult=3.0)})
    wrapper = build_optim_wrapper(model, ow)
    names = {id(p): n for n, p in model.named_parameters()}
    for side, key, lr in (('generator', 'backbone.', 0.001), ('generator', 'neck.', 0.01),
                          ('discriminator', 'mask_discriminator', 0.006),
                          ('discriminator', 'box_discriminator', 0.002)):
        lrs = {g['lr'] for g in wrapper[side].optimizer.param_groups
               if key in names[id(g['params'][0])]}
        assert lrs and all(v == pytest.approx(lr) for v in lrs), (side, key, lrs)


def test_constructor_shared_wrapper_type_and_errors(setup):
    cfg, _ = setup
    model = build(cfg)
    ow = copy.deepcopy(cfg.optim_wrapper)
    ow.accumulative_counts = 2  # a shared key reaches both sides
    wrapper = build_optim_wrapper(model, ow)
    assert wrapper['generator']._accumulative_counts == 2
    assert wrapper['discriminator']._accumulative_counts == 2
    for missing in ('generator', 'discriminator'):
        bad = copy.deepcopy(cfg.optim_wrapper)
        bad.pop(missing)
        with pytest.raises(ValueError, match=f"missing \\['{missing}'\\].*constructor="):
            build_optim_wrapper(model, bad)
    bad = copy.deepcopy(cfg.optim_wrapper)
    bad.discriminator.type = 'AmpOptimWrapper'
    with pytest.raises(ValueError, match="conflicts with optim_wrapper.discriminator.type"):
        build_optim_wrapper(model, bad)
    bad = copy.deepcopy(cfg.optim_wrapper)
    bad.optimizer = dict(type='SGD', lr=0.1)
    with pytest.raises(ValueError, match='give each side its own optimizer'):
        build_optim_wrapper(model, bad)
    with pytest.raises(TypeError, match='discriminator_names'):
        build_optim_wrapper(build(cfg, plain=True), cfg.optim_wrapper)


def test_plain_optim_wrapper_is_rejected_with_a_hint(setup):
    cfg, batch = setup
    model = build(cfg)
    plain = DefaultOptimWrapperConstructor(dict(optimizer=dict(type='SGD', lr=0.01)))(model)
    with pytest.raises(TypeError, match="constructor='GANOptimWrapperConstructor'"):
        model.train_step(batch, plain)


def test_gan_model_without_discriminators_is_rejected(setup):
    cfg, _ = setup
    bad = copy.deepcopy(cfg.model)
    bad.roi_head = plain_model_cfg(cfg.model).roi_head
    with pytest.raises(TypeError, match="roi_head=dict\\(type='GANRoIHead'"):
        MODELS.build(bad)


def test_warmup_step_equals_plain_mask_rcnn_step(setup):
    """Before adv_start_iter a GAN iteration is exactly mmdet's Mask R-CNN step."""
    cfg, batch = setup
    gan, plain = build(cfg), build(cfg, plain=True)
    plain.load_state_dict(gan.state_dict(), strict=False)
    gan_ow = build_optim_wrapper(gan, cfg.optim_wrapper)
    plain_ow = build_optim_wrapper(plain, dict(cfg.optim_wrapper.generator))
    disc_before = params(gan.roi_head.box_discriminator)
    gan.set_gan_schedule(adversarial=False)
    torch.manual_seed(1)
    gan_log = gan.train_step(copy.deepcopy(batch), gan_ow)
    torch.manual_seed(1)
    plain_log = plain.train_step(copy.deepcopy(batch), plain_ow)
    assert gan_log.keys() == plain_log.keys()
    for key in plain_log:
        assert torch.equal(gan_log[key], plain_log[key]), key
    ours = params(gan)
    for name, value in params(plain).items():
        assert torch.equal(ours[name], value), name
    for name, value in params(gan.roi_head.box_discriminator).items():
        assert torch.equal(value, disc_before[name]), name


def test_adversarial_step_updates_both_sides_without_leaks(setup):
    cfg, batch = setup
    model = build(cfg)
    ow = build_optim_wrapper(model, cfg.optim_wrapper)
    discs = model.roi_head.discriminators()
    grads_at_d_step = []
    d_update = ow['discriminator'].update_params

    def spy(loss, **kwargs):  # D grads must be empty before the D backward
        grads_at_d_step.append([p.grad for d in discs for p in d.parameters()])
        d_update(loss, **kwargs)

    ow['discriminator'].update_params = spy
    before = params(model)
    model.set_gan_schedule(adversarial=True, weight_scale=1.0, d_steps=2)
    log = model.train_step(batch, ow)
    assert len(grads_at_d_step) == 2  # d_steps
    assert all(g is None for g in grads_at_d_step[0])  # the G step left no D gradient
    for key in ('loss_g_box', 'loss_g_mask', 'loss_d_box', 'loss_d_mask',
                'acc_d_box_real', 'acc_d_box_fake', 'dist_d_mask'):
        assert key in log and torch.isfinite(log[key]), key
    after = params(model)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert any('box_discriminator' in n for n in changed)
    assert any('mask_discriminator' in n for n in changed)
    assert any(n.startswith('backbone') for n in changed)
    assert all(p.requires_grad for p in model.parameters())  # D unfrozen again


def test_non_finite_discriminator_loss_skips_the_d_update(setup, monkeypatch):
    cfg, batch = setup
    model = build(cfg)
    ow = build_optim_wrapper(model, cfg.optim_wrapper)
    real = model.roi_head.discriminator_loss

    def nan_loss():
        out = real()
        out['loss_d_box'] = out['loss_d_box'] * float('nan')
        return out

    monkeypatch.setattr(model.roi_head, 'discriminator_loss', nan_loss)
    before = params(model)
    with pytest.warns(UserWarning, match='non-finite discriminator loss'):
        model.train_step(batch, ow)
    after = params(model)
    for name in before:
        if 'discriminator' in name:  # D neither stepped nor left with gradients
            assert torch.equal(before[name], after[name]), name
            assert model.get_parameter(name).grad is None, name
        else:
            assert torch.isfinite(after[name]).all(), name
    assert any(not torch.equal(before[n], after[n]) for n in before
               if 'discriminator' not in n)  # the generator step did happen


def test_set_gan_schedule_rejects_bad_values(setup):
    model = build(setup[0])
    with pytest.raises(ValueError, match='d_steps must be an integer >= 1, got 0'):
        model.set_gan_schedule(True, d_steps=0)
    with pytest.raises(ValueError, match='weight_scale must be >= 0, got -1'):
        model.set_gan_schedule(True, weight_scale=-1)


# ----------------------------------------------------------------- runner tests
def _train(cfg):
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


@pytest.fixture(scope='module')
def straight_run(shapes_root, tmp_path_factory):
    """N iterations in one go, logging to the local and TensorBoard backends."""
    work_dir = str(tmp_path_factory.mktemp('gan_straight'))
    cfg = gan_tiny_cfg(shapes_root, work_dir)
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend'),
                                   dict(type='TensorboardVisBackend')]
    _train(cfg)
    cfg_file = osp.join(work_dir, 'gan.py')
    cfg.dump(cfg_file)
    return cfg_file, osp.join(work_dir, f'iter_{N}.pth')


def test_loop_schedule_and_unknown_keys(shapes_root, tmp_path):
    cfg = gan_tiny_cfg(shapes_root, str(tmp_path), max_iters=10)
    cfg.train_cfg.update(adv_start_iter=3, adv_weight_ramp_iters=4, d_steps=2)
    runner = Runner.from_cfg(cfg)
    loop = runner.build_train_loop(cfg.train_cfg)
    sched = [loop.gan_schedule(i) for i in range(10)]
    assert [s['adversarial'] for s in sched] == [False] * 3 + [True] * 7
    assert [s['weight_scale'] for s in sched] == [0, 0, 0, .25, .5, .75, 1, 1, 1, 1]
    assert all(s['d_steps'] == 2 for s in sched)
    bad = copy.deepcopy(cfg.train_cfg)
    bad.d_stepz = 3
    with pytest.raises(TypeError, match=r"unknown train_cfg key\(s\) \['d_stepz'\].*d_steps"):
        runner.build_train_loop(bad)
    bad = copy.deepcopy(cfg.train_cfg)
    bad.adv_start_iter = -1
    with pytest.raises(ValueError, match='adv_start_iter must be an integer >= 0, got -1'):
        runner.build_train_loop(bad)


def test_runner_with_plain_optim_wrapper_stops_before_training(shapes_root, tmp_path):
    cfg = gan_tiny_cfg(shapes_root, str(tmp_path), max_iters=1)
    cfg.optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01))
    cfg.param_scheduler = None
    with pytest.raises(TypeError, match="constructor='GANOptimWrapperConstructor'"):
        _train(cfg)


def test_resume_equals_straight_run(straight_run, shapes_root, tmp_path):
    """N straight == N/2, stop, resume, N/2: weights, both optimizers, both schedulers."""
    work_dir = str(tmp_path)
    train_with_resume(lambda: gan_tiny_cfg(shapes_root, work_dir), N)
    ours = torch.load(osp.join(work_dir, f'iter_{N}.pth'), map_location='cpu',
                      weights_only=False)
    ref = torch.load(straight_run[1], map_location='cpu', weights_only=False)
    assert ours['meta']['iter'] == ref['meta']['iter'] == N
    assert ours['state_dict'].keys() == ref['state_dict'].keys()
    assert any('discriminator' in k for k in ref['state_dict'])
    for key, value in ref['state_dict'].items():
        assert torch.equal(ours['state_dict'][key], value), key
    for side in ('generator', 'discriminator'):
        a, b = ours['optimizer'][side]['state'], ref['optimizer'][side]['state']
        assert a.keys() == b.keys() and len(b) > 0, side
        for idx in b:
            assert torch.equal(a[idx]['momentum_buffer'], b[idx]['momentum_buffer'])
        assert ours['param_schedulers'][side] == ref['param_schedulers'][side]


def test_logs_every_gan_term_to_local_and_tensorboard(straight_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    vis_dir = osp.dirname(glob.glob(osp.join(osp.dirname(straight_run[1]), '*',
                                             'vis_data', 'scalars.json'))[0])
    with open(osp.join(vis_dir, 'scalars.json')) as f:
        rows = [row for row in map(json.loads, f) if 'loss' in row]
    keys = ('loss_g_box', 'loss_g_mask', 'loss_d_box', 'loss_d_mask', 'acc_d_box_real',
            'acc_d_box_fake', 'dist_d_mask', 'loss_mask', 'loss_bbox', 'grad_norm',
            'grad_norm_d', 'adv_weight_scale')
    last = rows[-1]
    for key in keys:
        assert key in last, (key, sorted(last))
    assert [r['adv_weight_scale'] for r in rows] == [0.5, 1.0]
    events = EventAccumulator(vis_dir)
    events.Reload()
    tags = set(events.Tags()['scalars'])
    for key in keys:
        assert key in tags, (key, sorted(tags))


def test_load_from_plain_mask_rcnn_checkpoint(setup, shapes_root, tmp_path):
    """Generator weights come from the checkpoint; discriminators start fresh."""
    cfg = gan_tiny_cfg(shapes_root, str(tmp_path), max_iters=1)
    plain = build(cfg, plain=True)
    with torch.no_grad():
        for p in plain.parameters():
            p.add_(0.5)  # differ from any fresh initialisation
    ckpt = osp.join(str(tmp_path), 'plain.pth')
    torch.save(dict(meta=dict(), state_dict=plain.state_dict()), ckpt)
    cfg.load_from = ckpt
    runner = Runner.from_cfg(cfg)
    runner._init_model_weights()
    fresh_d = params(runner.model.roi_head.box_discriminator)
    runner.load_or_resume()
    loaded = runner.model.state_dict()
    for key, value in plain.state_dict().items():
        assert torch.equal(loaded[key], value), key
    for name, value in params(runner.model.roi_head.box_discriminator).items():
        assert torch.equal(value, fresh_d[name]), name
    runner.train()  # and an adversarial iteration runs from there
    assert runner.iter == 1


def test_inference_with_and_without_discriminator_weights(straight_run, shapes_root,
                                                          tmp_path):
    cfg_file, ckpt = straight_run
    img = sorted(glob.glob(osp.join(shapes_root, 'val', '*.png')))[0]
    checkpoint = torch.load(ckpt, map_location='cpu', weights_only=False)
    stripped = osp.join(str(tmp_path), 'no_disc.pth')
    torch.save(dict(meta=checkpoint['meta'], state_dict={
        k: v for k, v in checkpoint['state_dict'].items() if 'discriminator' not in k}),
        stripped)
    plain_cfg = Config.fromfile(cfg_file)
    plain_cfg.model = plain_model_cfg(plain_cfg.model)
    plain_file = osp.join(str(tmp_path), 'plain.py')
    plain_cfg.dump(plain_file)

    results = []
    for config, weights in ((cfg_file, ckpt), (cfg_file, stripped), (plain_file, ckpt)):
        model = init_detector(config, weights, device='cpu')
        results.append(inference_detector(model, img).pred_instances)
    ref = results[0]
    assert len(ref) > 0
    for other in results[1:]:
        for key in ('bboxes', 'scores', 'labels', 'masks'):
            assert torch.equal(other[key], ref[key]), key
    inferencer = DetInferencer(model=cfg_file, weights=stripped, device='cpu')
    out = inferencer(img, return_datasamples=True, no_save_vis=True)
    pred = out['predictions'][0].pred_instances
    assert torch.equal(pred.bboxes, ref.bboxes) and torch.equal(pred.masks, ref.masks)
