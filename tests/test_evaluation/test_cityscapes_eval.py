"""Cityscapes evaluation: a tiny Cityscapes-format folder, mmdet's own converter,
cityscapesscripts through mmdet's ``CityScapesMetric`` and the COCO metric.

The folder has ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` and
``gtFine/<split>/<city>/*_gtFine_{instanceIds,labelIds}.png`` exactly as the
release does (instance ids = label id * 1000 + k, 16 bit). Ground truth fed back
as predictions must score AP 1 in both evaluators (an independent check of the
folder, the converter and the metrics); a trained CPU model then runs through
``mim test``, the path users take.
"""
import json
import os
import os.path as osp
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from conftest import BASELINE_CPU, tiny_cfg

CITY = 'tinytown'
H, W = 128, 256
LABEL_IDS = dict(road=7, person=24, car=26, bicycle=33)  # cityscapesscripts ids
SPLITS = dict(train=4, val=2, test=1)


def converter_script():
    import mmdet
    path = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'dataset_converters',
                    'cityscapes.py')
    if not osp.exists(path):
        pytest.skip(f'mmdet converter not found at {path} (mmdet not pip-installed)')
    return path


def paint_scene(rng):
    """Image (H, W, 3), labelIds (H, W) uint8 and instanceIds (H, W) uint16."""
    img = np.full((H, W, 3), 90, np.uint8)
    img += rng.integers(0, 20, (H, W, 3), dtype=np.uint8)
    label_ids = np.full((H, W), LABEL_IDS['road'], np.uint8)
    inst_ids = label_ids.astype(np.uint16)
    counts = {}
    for _ in range(rng.integers(2, 5)):
        name = ['person', 'car', 'bicycle'][rng.integers(3)]
        counts[name] = counts.get(name, -1) + 1
        w, h = (rng.integers(14, 24), rng.integers(30, 50)) if name == 'person' else \
               (rng.integers(40, 70), rng.integers(20, 36))
        x, y = rng.integers(0, W - w), rng.integers(0, H - h)
        mask = np.zeros((H, W), np.uint8)
        cv2.ellipse(mask, (int(x + w // 2), int(y + h // 2)), (int(w // 2), int(h // 2)),
                    0, 0, 360, 1, -1)
        mask = mask.astype(bool)
        img[mask] = {'person': (40, 40, 200), 'car': (200, 60, 30),
                     'bicycle': (30, 200, 200)}[name]
        label_ids[mask] = LABEL_IDS[name]
        inst_ids[mask] = LABEL_IDS[name] * 1000 + counts[name]
    return img, label_ids, inst_ids


@pytest.fixture(scope='module')
def cityscapes_root(tmp_path_factory):
    """A tiny Cityscapes folder converted to COCO with mmdet's converter."""
    root = str(tmp_path_factory.mktemp('cityscapes'))
    rng = np.random.default_rng(0)
    for split, n in SPLITS.items():
        for sub in ('leftImg8bit', 'gtFine'):
            os.makedirs(osp.join(root, sub, split, CITY))
        for i in range(n):
            stem = osp.join(split, CITY, f'{CITY}_{i:06d}_000019')
            img, label_ids, inst_ids = paint_scene(rng)
            cv2.imwrite(osp.join(root, 'leftImg8bit', stem + '_leftImg8bit.png'), img)
            gt_stem = osp.join(root, 'gtFine', stem)
            Image.fromarray(label_ids).save(gt_stem + '_gtFine_labelIds.png')
            Image.fromarray(inst_ids).save(gt_stem + '_gtFine_instanceIds.png')
    subprocess.run([sys.executable, converter_script(), root, '-o',
                    osp.join(root, 'annotations')], check=True, capture_output=True)
    return root


def gt_instances(root, img_file):
    """``(label id, mask)`` per instance, read back from the instanceIds PNG."""
    inst = np.array(Image.open(img_file.replace('leftImg8bit.png', 'gtFine_instanceIds.png')
                               .replace(osp.join(root, 'leftImg8bit'), osp.join(root, 'gtFine'))))
    return [(v // 1000, inst == v) for v in np.unique(inst) if v >= 1000]


def test_converter_output_matches_the_pngs(cityscapes_root):
    from pycocotools.coco import COCO
    coco = COCO(osp.join(cityscapes_root, 'annotations',
                         'instancesonly_filtered_gtFine_val.json'))
    assert len(coco.dataset['categories']) == 8
    for img in coco.dataset['images']:
        truth = gt_instances(cityscapes_root, osp.join(cityscapes_root, 'leftImg8bit', 'val',
                                                       img['file_name']))
        anns = coco.imgToAnns[img['id']]
        assert sorted((a['category_id'], int(coco.annToMask(a).sum())) for a in anns) == \
               sorted((label, int(m.sum())) for label, m in truth)


def test_ground_truth_as_predictions_scores_one(cityscapes_root, tmp_path):
    from mmdet.datasets import CityscapesDataset
    from mmdet.evaluation import CityScapesMetric
    from gan_mask_rcnn.coco_boundary_metric import CocoBoundaryMetric
    from cityscapesscripts.helpers.labels import id2label
    classes = CityscapesDataset.METAINFO['classes']
    ann_file = osp.join(cityscapes_root, 'annotations', 'instancesonly_filtered_gtFine_val.json')
    with open(ann_file) as f:
        images = json.load(f)['images']
    samples = []
    for img in images:
        path = osp.join(cityscapes_root, 'leftImg8bit', 'val', img['file_name'])
        truth = gt_instances(cityscapes_root, path)
        masks = np.stack([m for _, m in truth])
        boxes = [[np.nonzero(m)[1].min(), np.nonzero(m)[0].min(),
                  np.nonzero(m)[1].max() + 1, np.nonzero(m)[0].max() + 1] for m in masks]
        samples.append(dict(
            img_id=img['id'], img_path=path, ori_shape=(H, W),
            pred_instances=dict(
                labels=torch.tensor([classes.index(id2label[l].name) for l, _ in truth]),
                scores=torch.ones(len(truth)),
                bboxes=torch.tensor(boxes, dtype=torch.float32),
                masks=torch.from_numpy(masks))))
    cs_metric = CityScapesMetric(outfile_prefix=str(tmp_path / 'cs'),
                                 seg_prefix=osp.join(cityscapes_root, 'gtFine', 'val'))
    coco_metric = CocoBoundaryMetric(ann_file=ann_file)
    for metric in (cs_metric, coco_metric):
        metric.dataset_meta = dict(classes=classes)
        metric.process({}, samples)
    cs = cs_metric.evaluate(len(samples))
    coco = coco_metric.evaluate(len(samples))
    assert cs['cityscapes/mAP'] == pytest.approx(1.0)
    assert cs['cityscapes/AP@50'] == pytest.approx(1.0)
    for key in ('bbox_mAP', 'segm_mAP', 'boundary_mAP'):
        assert coco[f'coco/{key}'] == pytest.approx(1.0), key


def cityscapes_cfg(root, work_dir):
    """The baseline CPU config, shrunk, on the tiny Cityscapes set (8 classes)."""
    cfg = tiny_cfg(BASELINE_CPU, root, work_dir, max_iters=2)
    cfg.model.roi_head.bbox_head.num_classes = 8
    cfg.model.roi_head.mask_head.num_classes = 8
    for key, split in (('train_dataloader', 'train'), ('test_dataloader', 'val')):
        ds = cfg[key].dataset
        ds.type = 'CityscapesDataset'
        ds.data_root = osp.join(root, '')
        ds.ann_file = f'annotations/instancesonly_filtered_gtFine_{split}.json'
        ds.data_prefix = dict(img=f'leftImg8bit/{split}/')
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None  # test only at the end
    ann_file = osp.join(root, 'annotations', 'instancesonly_filtered_gtFine_val.json')
    cfg.test_evaluator = [
        dict(type='CocoBoundaryMetric', ann_file=ann_file),
        dict(type='CityScapesMetric', seg_prefix=osp.join(root, 'gtFine', 'val'),
             outfile_prefix=osp.join(work_dir, 'cityscapes_results')),
    ]
    return cfg


def test_trained_model_through_mim_test(cityscapes_root, tmp_path):
    from mmengine.runner import Runner
    work_dir = str(tmp_path / 'work')
    cfg_file = str(tmp_path / 'tiny_cityscapes.py')
    cityscapes_cfg(cityscapes_root, work_dir).dump(cfg_file)
    Runner.from_cfg(Config.fromfile(cfg_file)).train()
    ckpt = osp.join(work_dir, 'iter_2.pth')
    proc = subprocess.run(
        [sys.executable, '-m', 'mim', 'test', 'mmdet', cfg_file, '--checkpoint', ckpt,
         '--work-dir', work_dir], cwd=str(tmp_path), capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    for key in ('coco/bbox_mAP', 'coco/segm_mAP', 'coco/boundary_mAP',
                'cityscapes/mAP', 'cityscapes/AP@50'):
        value = re.search(rf'{key}: (-?[0-9.]+|nan)', out)
        assert value, f'{key} missing in:\n{out[-3000:]}'
        assert value.group(1) == 'nan' or 0.0 <= float(value.group(1)) <= 1.0
