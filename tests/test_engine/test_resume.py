"""A GAN run resumed across its adversarial start, without reseeding (the configs'
default), finishes with everything restored and follows the uninterrupted schedule.

The run is interrupted right after a checkpoint, once before its first adversarial
iteration and once after it, then resumed with ``resume=True``. References: the
checkpoint file (what the resume must restore: both optimizers, both schedulers,
the discriminators), the GAN schedule's definition (adversarial weight scale 0
before the start, then ``min(1, (i - start + 1) / ramp)``) and an uninterrupted run
of the same config (the lr of both optimizers per iteration). Losses differ from the
uninterrupted run's without reseeding; they must be finite. Only what a run shows
is checked (checkpoints, runner state after the resume, the logged scalars), not
how the schedule is implemented.
"""
import copy
import json
import math
import os.path as osp

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from conftest import CONFIGS, tiny_cfg

GAN_CPU = osp.join(CONFIGS, 'gan-mask-rcnn_r18_fpn_shapes-cpu.py')
N, RAMP = 6, 2  # iterations; the adversarial weights ramp over RAMP iterations
SIDES = ('generator', 'discriminator')


class _Interrupted(Exception):
    pass


class _InterruptAfter(Hook):
    """Raise after iteration ``stop`` (1-based), once its checkpoint is written."""

    priority = 'LOWEST'  # after CheckpointHook

    def __init__(self, stop):
        self.stop = stop

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.stop:
            raise _Interrupted


class _StateAtStart(Hook):
    """What the runner holds when training (re)starts, after any resume."""

    def before_train(self, runner):
        # copies: a state dict holds the live tensors, which training updates in place
        self.optimizers = copy.deepcopy({s: runner.optim_wrapper[s].state_dict()
                                         for s in SIDES})
        self.schedulers = copy.deepcopy({s: [x.state_dict() for x in runner.param_schedulers[s]]
                                         for s in SIDES})
        self.weights = {k: v.clone() for k, v in runner.model.state_dict().items()}


def _cfg(shapes_root, work_dir, name, start, stop):
    cfg = tiny_cfg(GAN_CPU, shapes_root, work_dir, N)
    cfg.model.update(adv_start_fraction=start / N, adv_ramp_fraction=RAMP / N)
    cfg.default_hooks.checkpoint.update(interval=stop, max_keep_ckpts=-1)
    cfg.log_processor.window_size = 1  # log each iteration's own values
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.visualizer.name = f'{work_dir}-{name}'  # the visualizer is a per-name singleton
    return cfg


def _train(cfg, *hooks):
    runner = Runner.from_cfg(cfg)
    for hook in hooks:
        runner.register_hook(hook)
    try:
        runner.train()
    except _Interrupted:
        pass
    with open(osp.join(runner.log_dir, 'vis_data', 'scalars.json')) as f:
        return {r['step']: r for r in map(json.loads, f) if 'loss' in r}


def _equal_states(ours, ref):
    """Optimizer state dicts equal, tensor for tensor."""
    assert ours['param_groups'] == ref['param_groups']
    assert ours['state'].keys() == ref['state'].keys()
    for key, state in ref['state'].items():
        for name, value in state.items():
            assert torch.equal(ours['state'][key][name], value), (key, name)


@pytest.mark.parametrize('start,stop', [(3, 2), (2, 3)], ids=['stop_before', 'stop_after'])
def test_resume_across_the_adversarial_start(shapes_root, tmp_path, start, stop):
    straight = _train(_cfg(shapes_root, str(tmp_path / 'straight'), 'straight', start, stop))
    work = str(tmp_path / 'resumed')
    _train(_cfg(shapes_root, work, 'first', start, stop), _InterruptAfter(stop))
    assert not osp.exists(osp.join(work, f'iter_{N}.pth'))
    cfg = _cfg(shapes_root, work, 'second', start, stop)
    cfg.resume = True
    at_start = _StateAtStart()
    resumed = _train(cfg, at_start)

    final = torch.load(osp.join(work, f'iter_{N}.pth'), map_location='cpu',
                       weights_only=False)
    assert final['meta']['iter'] == N
    ckpt = torch.load(osp.join(work, f'iter_{stop}.pth'), map_location='cpu',
                      weights_only=False)
    # the discriminator has stepped before the checkpoint iff the start came first
    assert bool(ckpt['optimizer']['discriminator']['state']) == (start < stop)
    assert ckpt['optimizer']['generator']['state']
    for side in SIDES:
        _equal_states(at_start.optimizers[side], ckpt['optimizer'][side])
        assert at_start.schedulers[side] == ckpt['param_schedulers'][side]
        assert [s['_global_step'] for s in at_start.schedulers[side]] == [stop] * 2
    assert all(torch.equal(at_start.weights[k], v) for k, v in ckpt['state_dict'].items())
    assert any(k.startswith('roi_head.box_discriminator.') for k in ckpt['state_dict'])

    assert sorted(resumed) == list(range(stop + 1, N + 1))
    for step, row in resumed.items():
        i = step - 1  # 0-based iteration
        scale = 0.0 if i < start else min(1.0, (i - start + 1) / RAMP)
        assert row['adv_weight_scale'] == pytest.approx(scale), step
        assert ('loss_d_box' in row) == ('loss_d_mask' in row) == (i >= start), step
        for side in SIDES:
            assert row[f'{side}.lr'] == straight[step][f'{side}.lr'], (step, side)
        losses = [v for k, v in row.items() if k.startswith('loss')]
        assert losses and all(math.isfinite(v) for v in losses), (step, row)
