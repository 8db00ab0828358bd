"""tools/model_converters/strip_discriminators.py on a real GAN training checkpoint.

The stripped checkpoint must hold exactly the weights of mmdet's plain Mask R-CNN
(the key set of a MaskRCNN built from the baseline config is the reference), load
into that config strictly and predict exactly what the GAN model predicts with the
full checkpoint.
"""
import hashlib
import os
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from mmdet.apis import inference_detector, init_detector
from mmdet.registry import MODELS
from tools.model_converters.strip_discriminators import publish, strip_checkpoint

CONFIGS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs', 'gan_mask_rcnn')
GAN_CPU = osp.join(CONFIGS, 'gan-mask-rcnn_r18_fpn_shapes-cpu.py')
BASELINE_CPU = osp.join(CONFIGS, 'mask-rcnn_r18_fpn_shapes-cpu.py')


@pytest.fixture(scope='module')
def gan_checkpoint(shapes_root, tiny_cfg_factory, tmp_path_factory):
    """One adversarial iteration of the tiny GAN config: (config file, checkpoint)."""
    work_dir = str(tmp_path_factory.mktemp('tiny_gan'))
    cfg = tiny_cfg_factory(GAN_CPU, shapes_root, work_dir, max_iters=1)
    cfg.model.update(adv_start_fraction=0, adv_ramp_fraction=0)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None  # no validation
    cfg_file = osp.join(work_dir, 'tiny_gan.py')
    cfg.dump(cfg_file)
    Runner.from_cfg(Config.fromfile(cfg_file)).train()
    return cfg_file, osp.join(work_dir, 'iter_1.pth')


def test_publish(gan_checkpoint, shapes_root, tiny_cfg_factory, tmp_path, capsys):
    gan_cfg_file, full_ckpt = gan_checkpoint
    final = publish(full_ckpt, str(tmp_path / 'gan_shapes.pth'))

    match = re.fullmatch(r'gan_shapes-([0-9a-f]{8})\.pth', osp.basename(final))
    assert match, final
    with open(final, 'rb') as f:
        assert hashlib.sha256(f.read()).hexdigest()[:8] == match.group(1)
    assert not osp.exists(tmp_path / 'gan_shapes.pth')
    out = capsys.readouterr().out
    for what in ('roi_head.box_discriminator', 'roi_head.mask_discriminator', "'optimizer'"):
        assert what in out, out

    stripped = torch.load(final, map_location='cpu', weights_only=False)
    full = torch.load(full_ckpt, map_location='cpu', weights_only=False)
    assert set(stripped) == {'meta', 'state_dict'}
    assert {'optimizer', 'param_schedulers', 'message_hub'} <= set(full)

    base_cfg = tiny_cfg_factory(BASELINE_CPU, shapes_root, str(tmp_path / 'base'))
    init_default_scope('mmdet')
    plain = MODELS.build(base_cfg.model)
    assert type(plain).__name__ == 'MaskRCNN'
    assert set(stripped['state_dict']) == set(plain.state_dict())
    plain.load_state_dict(stripped['state_dict'], strict=True)
    for key, value in stripped['state_dict'].items():
        assert torch.equal(value, full['state_dict'][key]), key

    base_cfg_file = str(tmp_path / 'tiny_base.py')
    base_cfg.dump(base_cfg_file)
    gan_model = init_detector(gan_cfg_file, full_ckpt, device='cpu')
    plain_model = init_detector(base_cfg_file, final, device='cpu')
    img = osp.join(shapes_root, 'val', sorted(os.listdir(osp.join(shapes_root, 'val')))[0])
    gan_pred = inference_detector(gan_model, img).pred_instances
    plain_pred = inference_detector(plain_model, img).pred_instances
    assert len(gan_pred) > 0  # equal empty predictions would prove nothing
    assert len(gan_pred) == len(plain_pred)
    for field in ('bboxes', 'scores', 'labels', 'masks'):
        assert torch.equal(gan_pred[field], plain_pred[field]), field


def test_strip_errors(tmp_path):
    with pytest.raises(KeyError, match='no "state_dict" entry'):
        strip_checkpoint({'meta': {}})
    with pytest.raises(FileNotFoundError, match='in_file not found'):
        publish(str(tmp_path / 'missing.pth'), str(tmp_path / 'out.pth'))
