"""Which boxes the discriminators see (discriminator_inputs.py and the head's
max_disc_rois_per_img): decoded regressions against the ground truth they encode,
the capped subset against the full set, and a bad cap at build."""
import copy
import re

import pytest
import torch
from test_gan_roi_head import NUM_CLASSES, head_cfg, heads, make_batch, run_gan_loss  # noqa: F401

from gan_mask_rcnn.discriminator_inputs import decode_positive_boxes
from mmdet.registry import MODELS


def test_fake_boxes_are_decoded_for_the_gt_class(heads):
    """Encoding the targets and decoding them back must give the GT boxes."""
    gan, _ = heads
    x, proposals, samples = make_batch()
    torch.manual_seed(0)
    results = []
    for props, sample in zip(copy.deepcopy(proposals), samples):
        props.priors = props.pop('bboxes')
        assign = gan.bbox_assigner.assign(props, sample.gt_instances)
        results.append(gan.bbox_sampler.sample(assign, props, sample.gt_instances))
    rows = []
    for res in results:
        deltas = torch.randn(len(res.priors), NUM_CLASSES, 4)
        pos = torch.arange(len(res.pos_priors))
        deltas[pos, res.pos_gt_labels] = gan.bbox_head.bbox_coder.encode(
            res.pos_priors, res.pos_gt_bboxes)
        rows.append(deltas.flatten(1))
    boxes = decode_positive_boxes(gan.bbox_head, torch.cat(rows), results)
    for b, res in zip(boxes, results):
        assert len(b) > 0
        torch.testing.assert_close(b, res.pos_gt_bboxes, atol=1e-3, rtol=0)


def _rows_of(sub, full):
    """Index in ``full`` of each row of ``sub`` (rows compared exactly); -1 if absent."""
    flat_full = full.flatten(1)
    return [next((j for j, row in enumerate(flat_full) if torch.equal(row, r)), -1)
            for r in sub.flatten(1)]


def test_max_disc_rois_per_img_feeds_an_aligned_subset(heads):
    """A cap keeps at most that many positives per image, the same rows on every
    input of a discriminator (real and fake stay paired), drawn from the full set."""
    gan, _ = heads
    for d in gan.discriminators():
        d.requires_grad_(False)
    batch = make_batch()
    full = {kind: v for (kind, _), v in run_gan_loss(gan, batch)[1].items()}
    num_pos = len(full['box'][1])
    gan.max_disc_rois_per_img = 2
    capped = {kind: v for (kind, _), v in run_gan_loss(gan, batch)[1].items()}
    assert num_pos > 4 and len(capped['box'][1]) == 4 and len(capped['mask'][0]) == 4
    # fake boxes (decoded regressions) are distinct; several positives share a GT box
    box_rows = _rows_of(capped['box'][1], full['box'][1])
    assert -1 not in box_rows and len(set(box_rows)) == 4
    # real boxes: each distinct GT box pooled once, indexed per positive
    full_real = full['box'][0][full['box'][2]]
    torch.testing.assert_close(capped['box'][0][capped['box'][2]], full_real[box_rows])
    assert len(full['box'][0]) < num_pos
    mask_rows = _rows_of(capped['mask'][2], full['mask'][2])  # predicted masks
    assert -1 not in mask_rows and len(set(mask_rows)) == 4
    for i in (0, 1):
        torch.testing.assert_close(capped['mask'][i], full['mask'][i][mask_rows])
    gan.max_disc_rois_per_img = 100  # above every image's positives: the full set
    inputs = run_gan_loss(gan, batch)[1]
    for key in ('box', 'mask'):
        for a, b in zip(inputs[(key, 0)], full[key]):
            torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match='max_disc_rois_per_img'):
        MODELS.build(head_cfg(max_disc_rois_per_img=0))


@pytest.mark.parametrize('value', [2.5, 8.0, '8', True])
def test_non_integer_max_disc_rois_per_img_stops_at_build(value):
    """Today's TypeError on the first adversarial iteration becomes an error at
    build that names the key and the value."""
    with pytest.raises(ValueError, match=re.escape(
            f'max_disc_rois_per_img must be None (every positive) or an integer >= 1, '
            f'got {value!r}')):
        MODELS.build(head_cfg(max_disc_rois_per_img=value))
