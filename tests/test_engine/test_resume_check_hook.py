"""ResumeCheckHook: ``--resume`` of a checkpoint that another kind of run saved stops
before anything is restored, with a message that says to use ``load_from``; and
``load_from``, as the message advises, then trains from those weights.

References: real checkpoints of the tiny baseline and GAN CPU configs."""
import os.path as osp

import pytest
import torch
from mmengine.runner import Runner

from conftest import BASELINE_CPU, CONFIGS, tiny_cfg

GAN_CPU = osp.join(CONFIGS, 'gan-mask-rcnn_r18_fpn_shapes-cpu.py')


def _cfg(config, shapes_root, work_dir, max_iters=2):
    cfg = tiny_cfg(config, shapes_root, str(work_dir), max_iters)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.visualizer.name = str(work_dir)  # the visualizer is a per-name singleton
    return cfg


@pytest.fixture(scope='module')
def checkpoints(shapes_root, tmp_path_factory):
    """One training iteration of each kind: {'plain': path, 'gan': path}."""
    out = {}
    for kind, config in (('plain', BASELINE_CPU), ('gan', GAN_CPU)):
        work = tmp_path_factory.mktemp(f'{kind}_ckpt')
        Runner.from_cfg(_cfg(config, shapes_root, work, max_iters=1)).train()
        out[kind] = str(work / 'iter_1.pth')
    return out


@pytest.mark.parametrize('saved,config,what', [
    ('plain', GAN_CPU, 'one optimizer'), ('gan', BASELINE_CPU, "['discriminator', 'generator']")])
def test_resume_of_the_other_kind_names_load_from(checkpoints, shapes_root, tmp_path, saved,
                                                  config, what):
    cfg = _cfg(config, shapes_root, tmp_path)
    cfg.resume, cfg.load_from = True, checkpoints[saved]
    with pytest.raises(ValueError) as err:
        Runner.from_cfg(cfg).train()
    msg = str(err.value)
    assert f'load_from={checkpoints[saved]} without --resume' in msg, msg
    assert what in msg, msg
    assert not osp.exists(tmp_path / 'iter_2.pth')


def test_resume_of_weights_only_names_load_from(checkpoints, shapes_root, tmp_path):
    full = torch.load(checkpoints['plain'], map_location='cpu', weights_only=False)
    published = str(tmp_path / 'published.pth')
    torch.save(dict(meta=full['meta'], state_dict=full['state_dict']), published)
    cfg = _cfg(BASELINE_CPU, shapes_root, tmp_path / 'work')
    cfg.resume, cfg.load_from = True, published
    with pytest.raises(ValueError, match=r"weights only \(no \['message_hub', 'optimizer'\]\)"):
        Runner.from_cfg(cfg).train()


@pytest.mark.parametrize('saved,config', [('plain', GAN_CPU), ('gan', BASELINE_CPU)])
def test_load_from_as_advised_trains_from_the_weights(checkpoints, shapes_root, tmp_path,
                                                      saved, config):
    cfg = _cfg(config, shapes_root, tmp_path, max_iters=1)
    cfg.load_from = checkpoints[saved]
    runner = Runner.from_cfg(cfg)
    weights = torch.load(checkpoints[saved], map_location='cpu', weights_only=False)
    runner.call_hook('before_run')
    runner.load_or_resume()
    ours = runner.model.state_dict()
    shared = set(ours) & set(weights['state_dict'])
    assert 'backbone.conv1.weight' in shared
    assert all(torch.equal(ours[k], weights['state_dict'][k]) for k in shared)
    runner.train()
    assert osp.exists(tmp_path / 'iter_1.pth')
