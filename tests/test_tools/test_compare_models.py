"""Tests of the model comparison (tools/analysis_tools/compare_models.py) on tiny models.

Two tiny trained models (the session's baseline checkpoint and a GAN Mask R-CNN
trained here) are compared through the CLI: tables, grid and loss curves. The AP
values are checked on predictions whose AP is known: the ground truth itself (AP
100) and the ground truth of every other image (pycocotools' COCOeval as the
reference), with the difference column between them.
"""
import json
import os.path as osp
import runpy
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.fileio import dump, load
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from conftest import BASELINE_CPU, CONFIGS, REPO, tiny_cfg
from gan_mask_rcnn_lab.comparison_plots import loss_curves, read_training_log
from gan_mask_rcnn_lab.model_comparison import (ModelRun, compare, reference_data,
                                                run_from_work_dir, write_report)

GAN_CPU = osp.join(CONFIGS, 'gan-mask-rcnn_r18_fpn_shapes-cpu.py')
CLI = osp.join(REPO, 'tools', 'analysis_tools', 'compare_models.py')


@pytest.fixture(scope='module')
def second_model(shapes_root, tmp_path_factory):
    """(config, checkpoint) of a second tiny model, trained for 3 iterations."""
    from mmengine.runner import Runner
    work_dir = str(tmp_path_factory.mktemp('second_model'))
    if osp.exists(GAN_CPU):
        cfg = tiny_cfg(GAN_CPU, shapes_root, work_dir, max_iters=3)
    else:
        cfg = tiny_cfg(BASELINE_CPU, shapes_root, work_dir, max_iters=3)
        cfg.randomness = dict(seed=1)
    # A visualizer of its own: the default one is a per-process singleton that
    # would write this run's losses into the first model's log folder.
    cfg.visualizer.name = 'second_model_visualizer'
    cfg_file = osp.join(work_dir, 'second.py')
    cfg.dump(cfg_file)
    Runner.from_cfg(Config.fromfile(cfg_file)).train()
    return cfg_file, osp.join(work_dir, 'iter_3.pth')


def coco_reference(pkl, ann_file, classes):
    """bbox and segm mAP of dumped predictions by pycocotools (the reference)."""
    gt = COCO(ann_file)
    cat_ids = gt.getCatIds(catNms=list(classes))
    out = {}
    for iou_type in ('bbox', 'segm'):
        dets = []
        for p in load(pkl):
            pred = p['pred_instances']
            for i in range(len(pred['labels'])):
                x1, y1, x2, y2 = pred['bboxes'][i].tolist()
                det = dict(image_id=p['img_id'], category_id=cat_ids[int(pred['labels'][i])],
                           score=float(pred['scores'][i]))
                if iou_type == 'bbox':
                    det['bbox'] = [x1, y1, x2 - x1, y2 - y1]
                else:
                    rle = dict(pred['masks'][i])
                    if isinstance(rle['counts'], bytes):
                        rle['counts'] = rle['counts'].decode()
                    det['segmentation'] = rle
                dets.append(det)
        if not dets:
            out[iou_type] = 0.0
            continue
        ev = COCOeval(gt, gt.loadRes(dets), iou_type)
        ev.params.maxDets = [100, 300, 1000]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        out[iou_type] = max(float(ev.stats[0]), 0.0)
    return out


def test_cli_tables_figures_and_reference_ap(tiny_checkpoint, second_model, tmp_path,
                                            monkeypatch, capsys):
    out_dir = tmp_path / 'cmp'
    monkeypatch.setattr(sys, 'argv', [
        CLI, '--configs', tiny_checkpoint[0], second_model[0], '--checkpoints',
        tiny_checkpoint[1], second_model[1], '--names', 'base', 'other', '--out-dir',
        str(out_dir), '--num-images', '3', '--score-thr', '0.05'])
    runpy.run_path(CLI, run_name='__main__')
    printed = capsys.readouterr().out
    for title in ('### bbox AP', '### segm AP', '### boundary AP', '### per-class segm AP',
                  '| base | other | other - base |'):
        assert title in printed, printed
    assert set(json.loads((out_dir / 'metrics.json').read_text())) == {'base', 'other'}
    grid = out_dir / 'comparison_grid.png'
    import cv2
    img = cv2.imread(str(grid))
    assert img.shape[0] == 28 + 3 * 256  # title row, ground truth and two models
    assert img.shape[1] > 3 * 128
    assert osp.getsize(out_dir / 'loss_curves.png') > 10000
    if osp.exists(GAN_CPU):  # the GAN's log has the discriminator losses to plot
        assert {'loss', 'loss_d_box', 'loss_d_mask', 'loss_g_mask'} <= set(
            read_training_log(osp.dirname(second_model[1])))


def ground_truth_predictions(data, every=1):
    """``DumpDetResults`` entries that predict the ground truth (score 1) of every
    ``every``-th image of the test set, and nothing on the others."""
    coco = COCO(data['ann_file'])
    cat_ids = coco.getCatIds(catNms=data['classes'])
    entries = []
    for k, img_id in enumerate(sorted(coco.getImgIds())):
        img = coco.loadImgs(img_id)[0]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id)) if k % every == 0 else []
        masks = []
        for ann in anns:
            rle = coco.annToRLE(ann)
            masks.append(dict(size=rle['size'], counts=rle['counts']))
        entries.append(dict(
            img_id=img_id, ori_shape=(img['height'], img['width']),
            pred_instances=dict(
                bboxes=torch.tensor([[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                                      a['bbox'][1] + a['bbox'][3]] for a in anns]).reshape(-1, 4),
                scores=torch.ones(len(anns)),
                labels=torch.tensor([cat_ids.index(a['category_id']) for a in anns],
                                    dtype=torch.int64),
                masks=masks)))
    return entries


def test_ground_truth_scores_full_ap_and_the_tables_show_the_difference(tiny_checkpoint,
                                                                        tmp_path):
    """Predictions equal to the ground truth score AP 100 by definition; those of
    every other image only score what pycocotools computes for them; the tables
    show both and their difference."""
    cfg_file = tiny_checkpoint[0]
    data = reference_data(Config.fromfile(cfg_file))
    for name, every in (('gt', 1), ('half', 2)):
        dump(ground_truth_predictions(data, every), str(tmp_path / f'{name}.pkl'))
    runs = [ModelRun(name, cfg_file, predictions=str(tmp_path / f'{name}.pkl'))
            for name in ('gt', 'half')]
    results = compare(runs, str(tmp_path / 'out'))
    half = coco_reference(tmp_path / 'half.pkl', data['ann_file'], data['classes'])
    assert 0.2 < half['segm'] < 0.8
    for iou_type in ('bbox', 'segm', 'boundary'):
        assert results['gt']['metrics'][f'{iou_type}_mAP'] == pytest.approx(1.0)
    for iou_type, value in half.items():
        assert results['half']['metrics'][f'{iou_type}_mAP'] == pytest.approx(value, abs=1e-3)
    tables = write_report(results, data['classes'], str(tmp_path / 'out'))
    row = next(line for line in tables.split('### segm AP')[1].splitlines()
               if line.startswith('| AP |'))
    cells = [c.strip() for c in row.split('|')[2:-1]]
    assert cells == ['100.0', f"{100 * half['segm']:.1f}", f"{100 * half['segm'] - 100:+.1f}"]


def test_work_dir_mode_reuses_dumped_predictions(tiny_checkpoint, tmp_path):
    work_dir = osp.dirname(tiny_checkpoint[1])
    run = run_from_work_dir('base', work_dir)
    assert run.checkpoint.endswith('iter_6.pth') and run.config.endswith('.py')
    # Predictions of a model that detects nothing: AP 0, and the model is not run.
    data = reference_data(Config.fromfile(run.config))
    images = json.load(open(data['ann_file']))['images']
    empty = [dict(img_id=img['id'], ori_shape=(img['height'], img['width']),
                  pred_instances=dict(bboxes=torch.zeros(0, 4), scores=torch.zeros(0),
                                      labels=torch.zeros(0, dtype=torch.int64), masks=[]))
             for img in images]
    dump(empty, str(tmp_path / 'empty.pkl'))
    runs = [ModelRun('a', run.config, predictions=str(tmp_path / 'empty.pkl')),
            ModelRun('b', run.config, predictions=str(tmp_path / 'empty.pkl'))]
    results = compare(runs, str(tmp_path / 'out'))
    assert not (tmp_path / 'out' / 'runs').exists()
    for iou_type in ('bbox', 'segm', 'boundary'):
        assert results['a']['metrics'][f'{iou_type}_mAP'] == 0.0


def test_checkpoint_with_other_classes_names_both_lists(tiny_checkpoint, tmp_path):
    cfg = Config.fromfile(tiny_checkpoint[0])
    cfg.test_dataloader.dataset.metainfo = dict(classes=('gland', ))
    cfg_file = str(tmp_path / 'other_classes.py')
    cfg.dump(cfg_file)
    runs = [ModelRun(n, cfg_file, tiny_checkpoint[1]) for n in 'ab']
    with pytest.raises(ValueError, match=r"\['ellipse', 'polygon', 'star', 'gear'\].*\['gland'\]"):
        compare(runs, str(tmp_path / 'out'))


def test_predictions_of_a_model_with_other_classes_name_both_lists(tiny_checkpoint, tmp_path):
    cfg = Config.fromfile(tiny_checkpoint[0])
    cfg.test_dataloader.dataset.metainfo = dict(classes=('gland', ))
    cfg_file = str(tmp_path / 'other_classes.py')
    cfg.dump(cfg_file)
    dump([], str(tmp_path / 'p.pkl'))
    runs = [ModelRun('a', tiny_checkpoint[0], predictions=str(tmp_path / 'p.pkl')),
            ModelRun('b', cfg_file, predictions=str(tmp_path / 'p.pkl'))]
    shapes = r"\['ellipse', 'polygon', 'star', 'gear'\]"
    with pytest.raises(ValueError, match=r"'b'.*\['gland'\].*" + shapes):
        compare(runs, str(tmp_path / 'out'))


def test_predictions_for_other_images_are_rejected(tiny_checkpoint, tmp_path):
    dump([dict(img_id=987654, ori_shape=(8, 8), pred_instances=dict())], str(tmp_path / 'p.pkl'))
    runs = [ModelRun(n, tiny_checkpoint[0], predictions=str(tmp_path / 'p.pkl')) for n in 'ab']
    with pytest.raises(ValueError, match='987654'):
        compare(runs, str(tmp_path / 'out'))


def test_loss_curves_read_g_and_d_losses(tmp_path):
    log = tmp_path / 'work' / '20250101_000000' / 'vis_data'
    log.mkdir(parents=True)
    lines = [dict(step=i, loss=2.0 / i, loss_g_mask=0.1 * i, loss_d_mask=-0.2 * i, lr=0.01)
             for i in range(1, 6)]
    (log / 'scalars.json').write_text('\n'.join(json.dumps(x) for x in lines) + '\n')
    series = read_training_log(str(tmp_path / 'work'))
    assert set(series) == {'loss', 'loss_g_mask', 'loss_d_mask'}
    assert series['loss_d_mask'] == [(i, pytest.approx(-0.2 * i)) for i in range(1, 6)]
    loss_curves({'gan': series, 'baseline': {'loss': series['loss']}}, str(tmp_path / 'c.png'))
    assert osp.getsize(tmp_path / 'c.png') > 10000


def test_fewer_than_two_models_is_an_error(tiny_checkpoint, tmp_path):
    with pytest.raises(ValueError, match='at least 2 models, got 1'):
        compare([ModelRun('a', tiny_checkpoint[0], tiny_checkpoint[1])], str(tmp_path))


def test_prediction_file_without_images_is_named(tiny_checkpoint, tmp_path):
    dump([], str(tmp_path / 'none.pkl'))
    runs = [ModelRun(n, tiny_checkpoint[0], predictions=str(tmp_path / 'none.pkl')) for n in 'ab']
    with pytest.raises(ValueError, match=r'none\.pkl.*holds no images'):
        compare(runs, str(tmp_path / 'out'))
