"""A GAN config and its Mask R-CNN baseline started from the same seed are the same
run until the adversarial start: same initial detector weights, same batches and
the same random draws (RPN and RoI samplers). The experiment's GAN-minus-baseline
differences then measure the adversarial terms, not two random initialisations.

The same holds for the Cascade Mask R-CNN and HTC pairs.

Reference: mmdet's plain detector (the baseline config) built and trained by
MMEngine's Runner with the same seed."""
import os.path as osp

import pytest
import torch
from conftest import CONFIGS
from gan_testing import STAGE_PAIRS, tiny_stage_cfg
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, set_random_seed

from mmdet.registry import MODELS

GAN_CFG = osp.join(CONFIGS, 'gan-mask-rcnn_r18_fpn_shapes-cpu.py')
BASE_CFG = osp.join(CONFIGS, 'mask-rcnn_r18_fpn_shapes-cpu.py')
PAIRS = dict(STAGE_PAIRS, mask_rcnn=(BASE_CFG, GAN_CFG))


def _built(config, shapes_root, tmp_path):
    init_default_scope('mmdet')
    cfg = tiny_stage_cfg(config, shapes_root, str(tmp_path))
    set_random_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.state_dict(), torch.get_rng_state()


@pytest.mark.parametrize('kind', sorted(PAIRS))
def test_same_seed_same_detector_weights_and_random_state(shapes_root, tmp_path, kind):
    base, base_rng = _built(PAIRS[kind][0], shapes_root, tmp_path / 'base')
    gan, gan_rng = _built(PAIRS[kind][1], shapes_root, tmp_path / 'gan')
    assert set(base) < set(gan)
    assert all('discriminator' in key for key in set(gan) - set(base))
    differ = [key for key in base if not torch.equal(base[key], gan[key])]
    assert not differ, differ
    assert torch.equal(base_rng, gan_rng)


def _trained(config, shapes_root, work_dir, adv_start_iter=None):
    cfg = tiny_stage_cfg(config, shapes_root, work_dir, max_iters=2)
    if adv_start_iter is not None:
        cfg.model.adv_start_fraction = adv_start_iter / cfg.train_cfg.max_iters
    Runner.from_cfg(cfg).train()
    return torch.load(osp.join(work_dir, 'iter_2.pth'), map_location='cpu',
                      weights_only=False)['state_dict']


def test_gan_warm_up_trains_exactly_as_the_baseline(shapes_root, tmp_path):
    """Two warm-up iterations through the Runner give the baseline's weights, bit
    for bit (the proposals and the sampled RoIs depend on the random stream)."""
    base = _trained(BASE_CFG, shapes_root, str(tmp_path / 'base'))
    gan = _trained(GAN_CFG, shapes_root, str(tmp_path / 'gan'), adv_start_iter=2)
    differ = [key for key in base if not torch.equal(base[key], gan[key])]
    assert not differ, differ
