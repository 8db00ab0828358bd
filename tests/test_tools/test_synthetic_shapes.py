"""The synthetic shapes generator: deterministic, valid COCO, masks agree with boxes."""
import hashlib
import json
import os.path as osp

import numpy as np
import pytest
from pycocotools.coco import COCO

from gan_mask_rcnn_lab.synthetic_shapes import SHAPE_CLASSES, generate_shapes


def _digest(root, split):
    h = hashlib.sha256()
    with open(osp.join(root, 'annotations', f'{split}.json'), 'rb') as f:
        h.update(f.read())
    coco = json.load(open(osp.join(root, 'annotations', f'{split}.json')))
    for img in coco['images']:
        with open(osp.join(root, img['file_name']), 'rb') as f:
            h.update(f.read())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    for name, seed in (('a', 3), ('b', 3), ('c', 4)):
        generate_shapes(str(tmp_path / name), num_images=3, size=64, seed=seed)
    assert _digest(tmp_path / 'a', 'train') == _digest(tmp_path / 'b', 'train')
    assert _digest(tmp_path / 'a', 'train') != _digest(tmp_path / 'c', 'train')


def test_coco_is_valid_and_masks_agree_with_boxes(tmp_path):
    root = str(tmp_path)
    generate_shapes(root, num_images=12, size=96, seed=0, split='val', num_classes=3)
    coco = COCO(osp.join(root, 'annotations', 'val.json'))
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(SHAPE_CLASSES[:3])
    assert len(coco.getImgIds()) == 12
    labels = set()
    for img_id in coco.getImgIds():
        info = coco.loadImgs(img_id)[0]
        assert osp.exists(osp.join(root, info['file_name']))
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        union = np.zeros((96, 96), np.int32)
        for ann in anns:
            mask = coco.annToMask(ann).astype(bool)
            ys, xs = np.nonzero(mask)
            # COCO boxes are [x, y, w, h] of the pixel extent.
            expected = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            np.testing.assert_allclose(ann['bbox'], expected)
            assert ann['area'] == mask.sum() and ann['iscrowd'] == 0
            union += mask
            labels.add(ann['category_id'])
        assert union.max() <= 1, 'visible masks of one image must not overlap (occlusion)'
    assert labels == {1, 2, 3}


def _cut_border(a, b):
    """Pixel pairs (4-neighbours) with one pixel only in mask ``a`` and the other
    only in mask ``b``: where a later shape cut an earlier one, the two visible masks
    meet along the cut; shapes painted apart or overlapping barely do."""
    only_a, only_b = a & ~b, b & ~a
    return int((only_a[:, :-1] & only_b[:, 1:]).sum() + (only_b[:, :-1] & only_a[:, 1:]).sum()
               + (only_a[:-1] & only_b[1:]).sum() + (only_b[:-1] & only_a[1:]).sum())


def test_occlusion_happens(tmp_path):
    """Later shapes cut earlier ones: many instance pairs meet along a border of at
    least 8 pixel pairs (the cut), and their masks do not overlap."""
    generate_shapes(str(tmp_path), num_images=20, size=96, seed=1, max_instances=6)
    coco = COCO(str(tmp_path / 'annotations' / 'train.json'))
    cut_pairs = 0
    for img_id in coco.getImgIds():
        masks = [coco.annToMask(a).astype(bool)
                 for a in coco.loadAnns(coco.getAnnIds(imgIds=img_id))]
        cut_pairs += sum(_cut_border(a, b) >= 8
                         for i, a in enumerate(masks) for b in masks[i + 1:])
    assert cut_pairs >= 10


@pytest.mark.parametrize('kwargs', [dict(num_classes=1), dict(num_classes=5),
                                    dict(num_images=0), dict(size=8)])
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        generate_shapes(str(tmp_path), **{**dict(num_images=1, size=64), **kwargs})
