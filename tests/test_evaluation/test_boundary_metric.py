"""Tests of CocoBoundaryMetric against references that do not use its code.

Boundary IoU follows from its definition (Cheng et al. 2021): the boundary of a
mask is the set of its pixels within ``d = round(0.02 * image diagonal)`` pixels
(chessboard distance) of the background, and Boundary AP matches by
``min(mask IoU, boundary IoU)``. For axis-aligned squares that boundary is the
square minus the square shrunk by ``d`` on every side, built here from
rectangles. bbox and segm AP are compared with pycocotools' COCOeval.
"""
import json

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from gan_mask_rcnn.coco_boundary_metric import CocoBoundaryMetric

H, W = 300, 400  # diagonal 500 px -> d = 10 px
IOU_THRS = np.linspace(0.5, 0.95, 10)


def rect(x, y, w, h, shape=(H, W)):
    """Boolean mask (H, W) of the rectangle [x, x + w) x [y, y + h)."""
    m = np.zeros(shape, bool)
    m[max(y, 0):y + h, max(x, 0):x + w] = True
    return m


def square_boundary(x, y, s, d):
    """The definition's boundary of a square: its pixels within d of outside."""
    return rect(x, y, s, s) & ~rect(x + d, y + d, s - 2 * d, s - 2 * d)


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def rle(mask):
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    r['counts'] = r['counts'].decode()
    return r


def data_sample(img_id, gt_masks, gt_labels, pred_masks, pred_labels, scores):
    """One mmdet-style data sample (dict) with GT instances and predictions."""
    shape = gt_masks[0].shape if len(gt_masks) else pred_masks[0].shape

    def box(m):
        ys, xs = np.nonzero(m)
        return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]

    instances = [dict(bbox=box(m), bbox_label=int(l), ignore_flag=0, mask=rle(m))
                 for m, l in zip(gt_masks, gt_labels)]
    pred_masks = np.asarray(pred_masks, bool).reshape(-1, *shape)
    pred = dict(
        bboxes=torch.tensor([box(m) for m in pred_masks], dtype=torch.float32).reshape(-1, 4),
        scores=torch.tensor(scores, dtype=torch.float32),
        labels=torch.tensor(pred_labels, dtype=torch.int64),
        masks=torch.from_numpy(pred_masks))
    return dict(img_id=img_id, ori_shape=shape, instances=instances, pred_instances=pred)


def evaluate(samples, classes=('square', ), **kwargs):
    metric = CocoBoundaryMetric(**kwargs)
    metric.dataset_meta = dict(classes=classes)
    metric.process({}, samples)
    return metric.evaluate(len(samples))


def ap_of_single_match(match_iou):
    """AP of one GT and one detection with this IoU: 1 where IoU >= threshold."""
    return float(np.mean(match_iou >= IOU_THRS - 1e-12))


@pytest.mark.parametrize('corner', [(50, 50), (0, 0)], ids=['inside', 'touching-border'])
@pytest.mark.parametrize('shift', [0, 1, 2, 3, 5])
def test_shifted_square_matches_definition(shift, corner):
    x, y = corner
    s = 100
    d = int(round(0.02 * np.hypot(H, W)))
    gt, pred = rect(x, y, s, s), rect(x + shift, y + shift, s, s)
    mask_iou = iou(gt, pred)
    boundary_iou = min(mask_iou, iou(square_boundary(x, y, s, d),
                                     square_boundary(x + shift, y + shift, s, d)))
    res = evaluate([data_sample(0, [gt], [0], [pred], [0], [0.9])])
    assert res['coco/segm_mAP'] == pytest.approx(ap_of_single_match(mask_iou), abs=1e-3)
    assert res['coco/boundary_mAP'] == pytest.approx(ap_of_single_match(boundary_iou), abs=1e-3)
    assert res['coco/boundary_mAP_50'] == float(boundary_iou >= 0.5)
    assert res['coco/boundary_mAP_75'] == float(boundary_iou >= 0.75)
    # The large square (area 1e4 > 96^2) counts as "large" only.
    assert res['coco/boundary_mAP_l'] == res['coco/boundary_mAP']


def test_one_pixel_shift_hurts_boundary_more_than_mask():
    gt, pred = rect(50, 50, 100, 100), rect(51, 51, 100, 100)
    res = evaluate([data_sample(0, [gt], [0], [pred], [0], [0.9])])
    assert res['coco/segm_mAP'] == 1.0
    assert res['coco/boundary_mAP'] < 0.8


def test_dilation_ratio_widens_the_boundary():
    gt, pred = rect(50, 50, 100, 100), rect(53, 53, 100, 100)
    d = int(round(0.05 * np.hypot(H, W)))
    expected = min(iou(gt, pred), iou(square_boundary(50, 50, 100, d),
                                      square_boundary(53, 53, 100, d)))
    res = evaluate([data_sample(0, [gt], [0], [pred], [0], [0.9])],
                   boundary_dilation_ratio=0.05)
    assert res['coco/boundary_mAP'] == pytest.approx(ap_of_single_match(expected), abs=1e-3)


def random_scene(rng, img_id, classes=2):
    """Rectangles with jittered predictions, a false positive and a miss."""
    gts, gl, preds, pl, sc = [], [], [], [], []
    for _ in range(rng.integers(2, 5)):
        x, y = rng.integers(0, 300), rng.integers(0, 200)
        w, h = rng.integers(8, 100), rng.integers(8, 100)
        gts.append(rect(x, y, w, h))
        gl.append(int(rng.integers(classes)))
        if rng.random() < 0.8:
            dx, dy, dw, dh = rng.integers(-6, 7, size=4)
            preds.append(rect(x + dx, y + dy, max(w + dw, 4), max(h + dh, 4)))
            pl.append(gl[-1] if rng.random() < 0.9 else 1 - gl[-1])
            sc.append(float(rng.random()))
    preds.append(rect(*rng.integers(0, 200, size=2), 30, 30))
    pl.append(0)
    sc.append(float(rng.random()))
    return data_sample(img_id, gts, gl, preds, pl, sc)


def test_bbox_and_segm_agree_with_pycocotools(tmp_path):
    rng = np.random.default_rng(0)
    samples = [random_scene(rng, i) for i in range(6)]
    classes = ('a', 'b')
    res = evaluate(samples, classes=classes, outfile_prefix=str(tmp_path / 'r'))
    # Reference: pycocotools on the same GT and result files.
    gt = COCO(str(tmp_path / 'r.gt.json'))
    for iou_type, file in (('bbox', 'r.bbox.json'), ('segm', 'r.segm.json')):
        dets = json.loads((tmp_path / file).read_text())
        if iou_type == 'segm':
            for det in dets:
                det.pop('bbox')
        ev = COCOeval(gt, gt.loadRes(dets), iou_type)
        ev.params.maxDets = [100, 300, 1000]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        for i, item in enumerate(['mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l']):
            assert res[f'coco/{iou_type}_{item}'] == pytest.approx(ev.stats[i], abs=1e-3), item


def test_classwise_reports_every_metric_per_class():
    gt, pred = rect(50, 50, 100, 100), rect(52, 52, 100, 100)
    other = rect(200, 150, 60, 60)
    res = evaluate([data_sample(0, [gt, other], [0, 1], [pred], [0], [0.9])],
                   classes=('a', 'b'), classwise=True)
    for metric in ('bbox', 'segm', 'boundary'):
        assert res[f'coco/{metric}_b_mAP'] == 0.0  # class b never detected
    assert res['coco/segm_a_mAP'] == pytest.approx(ap_of_single_match(iou(gt, pred)), abs=1e-3)
    assert res['coco/boundary_a_mAP'] < res['coco/segm_a_mAP']


def test_empty_predictions_give_zero_ap():
    gt = rect(50, 50, 100, 100)
    sample = data_sample(0, [gt], [0], np.zeros((0, H, W), bool), [], [])
    res = evaluate([sample])
    for metric in ('bbox', 'segm', 'boundary'):
        assert res[f'coco/{metric}_mAP'] == 0.0


def test_label_outside_the_class_list_names_the_classes():
    gt = rect(50, 50, 100, 100)
    with pytest.raises(ValueError, match=r"2 classes \['a', 'b'\]"):
        evaluate([data_sample(0, [gt], [0], [gt], [5], [0.9])], classes=('a', 'b'))


def test_annotation_file_with_other_classes_names_both_lists(tmp_path):
    ann = dict(images=[dict(id=0, width=W, height=H, file_name='x.png')],
               categories=[dict(id=1, name='car')], annotations=[])
    (tmp_path / 'ann.json').write_text(json.dumps(ann))
    gt = rect(50, 50, 100, 100)
    with pytest.raises(ValueError, match=r"\['square'\].*\['car'\]"):
        evaluate([data_sample(0, [gt], [0], [gt], [0], [0.9])],
                 ann_file=str(tmp_path / 'ann.json'))


@pytest.mark.parametrize('kwargs, match', [
    (dict(metric='proposal'), "metric must be.*'proposal'"),
    (dict(metric=[]), 'metric must be'),
    (dict(boundary_dilation_ratio=0.0), 'boundary_dilation_ratio.*0.0'),
    (dict(proposal_nums=(100, )), r'proposal_nums.*\(100,\)'),
    (dict(metric_items=['mAP', 'AP_huge']), r"metric_items \['AP_huge'\]"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CocoBoundaryMetric(**kwargs)


def test_registered_in_mmdet_metrics():
    from mmdet.registry import METRICS
    import gan_mask_rcnn  # noqa: F401  (registers the metric)
    metric = METRICS.build(dict(type='CocoBoundaryMetric', metric=['segm', 'boundary']))
    assert isinstance(metric, CocoBoundaryMetric)
    assert metric.metrics == ['segm', 'boundary']


def test_metric_items_select_the_reported_numbers():
    gt = rect(50, 50, 100, 100)
    res = evaluate([data_sample(0, [gt], [0], [gt], [0], [0.9])],
                   metric='boundary', metric_items=['mAP_50', 'AR@100'])
    assert res == {'coco/boundary_mAP_50': 1.0, 'coco/boundary_AR@100': 1.0}
