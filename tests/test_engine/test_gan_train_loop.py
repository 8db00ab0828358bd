"""GAN training through MMEngine's Runner: the loop and the configs' schedule, exact
resume, logging, load_from a plain Mask R-CNN checkpoint, inference with and without
the discriminator weights, and bad schedule values.

References: a second run of the same schedule (straight vs. resumed), hand-typed
schedules, the checkpoint files themselves, and the TensorBoard event reader."""
import glob
import json
import os.path as osp

import pytest
import torch
from gan_testing import (GAN_CFG, N, build, gan_tiny_cfg, params, plain_model_cfg,
                         train_with_interruption)
from mmengine.config import Config
from mmengine.runner import Runner

from mmdet.apis import DetInferencer, inference_detector, init_detector


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


def test_one_max_iters_line_moves_the_whole_schedule(tmp_path):
    """A child config that only sets max_iters: the GAN schedule keeps its fractions
    (shapes: start at a quarter, ramp over a twentieth) and one lr list drives both
    optimizers, each its own copy."""
    child = tmp_path / 'short.py'
    child.write_text(f"_base_ = ['{GAN_CFG}']\ntrain_cfg = dict(max_iters=1000)\n")
    for max_iters, start, ramp in ((2000, 500, 100), (1000, 250, 50)):
        cfg = Config.fromfile(GAN_CFG if max_iters == 2000 else str(child))
        assert cfg.train_cfg.max_iters == max_iters
        model = build(cfg)
        sched = [model.gan_schedule(i, max_iters) for i in (start - 1, start, start + ramp - 1)]
        assert sched == [(False, 0.0), (True, 1 / ramp), (True, 1.0)]


def test_plain_scheduler_list_drives_both_optimizers(shapes_root, tmp_path):
    cfg = gan_tiny_cfg(shapes_root, str(tmp_path), max_iters=8)
    assert isinstance(cfg.param_scheduler, list)  # no generator/discriminator restatement
    runner = Runner.from_cfg(cfg)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    schedulers = runner.build_param_scheduler(runner.param_schedulers)
    assert sorted(schedulers) == ['discriminator', 'generator']
    for side, scheds in schedulers.items():
        assert [type(s).__name__ for s in scheds] == ['LinearLR', 'MultiStepLR']
        assert all(s.optimizer is runner.optim_wrapper[side] for s in scheds)
    assert schedulers['generator'][1].milestones == schedulers['discriminator'][1].milestones


def test_bad_schedule_values_stop_before_training(shapes_root, tmp_path):
    cfg = gan_tiny_cfg(shapes_root, str(tmp_path / 'd'), max_iters=2)
    cfg.model.d_steps = 0
    with pytest.raises(ValueError, match='d_steps must be an integer >= 1, got 0'):
        Runner.from_cfg(cfg)
    cfg = gan_tiny_cfg(shapes_root, str(tmp_path / 'late'), max_iters=2)
    cfg.model.adv_start_fraction = 0.9  # iteration round(1.8) = 2 of 2
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match=r'first adversarial iteration at 2 >= max_iters'):
        runner.train()


def test_runner_with_plain_optim_wrapper_stops_before_training(shapes_root, tmp_path):
    cfg = gan_tiny_cfg(shapes_root, str(tmp_path), max_iters=1)
    cfg.optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01))
    cfg.param_scheduler = None
    with pytest.raises(TypeError, match="constructor='GANOptimWrapperConstructor'"):
        _train(cfg)


def test_resume_equals_straight_run(straight_run, shapes_root, tmp_path):
    """N straight == N/2, stop, resume, N/2: weights, both optimizers, both schedulers.
    The ramp (0.5, then 1.0) makes a schedule that restarted at resume differ."""
    work_dir = str(tmp_path)
    train_with_interruption(lambda: gan_tiny_cfg(shapes_root, work_dir), N)
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
    scales = ours['message_hub']['log_scalars']['train/adv_weight_scale']
    assert list(scales._log_history) == [0.5, 1.0]  # the schedule went on, not over


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


def test_load_from_plain_mask_rcnn_checkpoint(shapes_root, tmp_path):
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
