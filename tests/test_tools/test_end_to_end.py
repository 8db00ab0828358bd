"""End to end as a user runs it: `mim train`, `mim test`, DetInferencer, inference_detector.

Also: a config whose data is missing stops at start with the path and the command
that creates the data.
"""
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from conftest import BASELINE_CPU, REPO, tiny_cfg

MIM = [sys.executable, '-m', 'mim']


def _run(cmd, cwd):
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


@pytest.mark.slow
def test_mim_train_then_mim_test(shapes_root, tmp_path):
    work_dir = str(tmp_path / 'work')
    cfg = tiny_cfg(BASELINE_CPU, shapes_root, work_dir, max_iters=3)
    cfg_file = str(tmp_path / 'tiny.py')
    cfg.dump(cfg_file)
    # run from a folder that is not the repo: gan_mask_rcnn must come from the install
    _run(MIM + ['train', 'mmdet', cfg_file, '--work-dir', work_dir], cwd=str(tmp_path))
    ckpt = osp.join(work_dir, 'iter_3.pth')
    assert osp.exists(ckpt)
    out = _run(MIM + ['test', 'mmdet', cfg_file, '--checkpoint', ckpt,
                      '--work-dir', work_dir], cwd=str(tmp_path))
    for key in ('bbox_mAP', 'segm_mAP', 'bbox_mAP_50', 'segm_mAP_75', 'boundary_mAP'):
        assert re.search(rf'coco/{key}: [0-9.]+', out), f'{key} missing in:\n{out[-3000:]}'


def test_det_inferencer_and_inference_detector(tiny_checkpoint, shapes_root, tmp_path):
    from mmdet.apis import DetInferencer, inference_detector, init_detector
    cfg_file, ckpt = tiny_checkpoint
    img = osp.join(shapes_root, 'val', '00000.png')

    inferencer = DetInferencer(model=cfg_file, weights=ckpt, device='cpu')
    out_dir = str(tmp_path / 'vis')
    result = inferencer(img, out_dir=out_dir, pred_score_thr=0.0, no_save_pred=False)
    pred = result['predictions'][0]
    assert {'labels', 'scores', 'bboxes', 'masks'} <= set(pred)
    assert len(pred['masks']) == len(pred['bboxes']) > 0
    assert osp.getsize(osp.join(out_dir, 'vis', '00000.png')) > 1000
    with open(osp.join(out_dir, 'preds', '00000.json')) as f:
        assert json.load(f)['labels'] == pred['labels']

    model = init_detector(cfg_file, ckpt, device='cpu')
    sample = inference_detector(model, img)
    masks = sample.pred_instances.masks
    assert tuple(masks.shape[1:]) == (128, 128) and masks.dtype == torch.bool
    assert len(sample.pred_instances.bboxes) == len(masks)


@pytest.mark.parametrize('config', ['mask-rcnn_r18_fpn_shapes-cpu.py',
                                    'mask-rcnn_r18_fpn_glas-cpu.py'])
def test_missing_data_names_path_and_command(config, tmp_path):
    from mmengine.registry import init_default_scope
    from mmdet.registry import DATASETS
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'gan_mask_rcnn', config))
    init_default_scope('mmdet')
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.data_root = str(tmp_path / 'nowhere') + '/'
    with pytest.raises(FileNotFoundError) as err:
        DATASETS.build(ds_cfg)
    msg = str(err.value)
    assert str(tmp_path / 'nowhere') in msg
    assert 'generate_shapes.py' in msg or 'glas' in msg.lower()
