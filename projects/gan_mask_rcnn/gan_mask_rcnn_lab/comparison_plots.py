"""Figures of a model comparison: a qualitative grid and G/D loss curves.

``comparison_grid`` draws the thesis' Figures 4-1 to 4-4: one column per test
image, one row for the ground truth and one per model, masks and boxes drawn by
mmdet's ``DetLocalVisualizer``. ``loss_curves`` plots the generator objective,
the generator's adversarial terms (``loss_g_*``) and the discriminator losses
(``loss_d_*``) from each model's training log (mmengine's ``vis_data`` json).
"""
import glob
import json
import os.path as osp
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import torch
from mmdet.structures import DetDataSample
from mmdet.visualization import DetLocalVisualizer
from mmengine.structures import InstanceData
from pycocotools.coco import COCO

LABEL_WIDTH = 150  # px left of each row, for the row title
TITLE_HEIGHT = 28  # px above each column, for the image name


def gt_instances(coco: COCO, img_id: int, classes: Sequence[str]) -> InstanceData:
    """Ground truth of one image: ``bboxes`` (N, 4) xyxy, ``labels`` (N, ),
    ``masks`` (N, H, W) bool; labels index ``classes`` like mmdet's CocoDataset."""
    label_of = {c: i for i, c in enumerate(coco.getCatIds(catNms=list(classes)))}
    anns = [a for a in coco.imgToAnns[img_id] if a['category_id'] in label_of]
    img = coco.imgs[img_id]
    gt = InstanceData()
    gt.bboxes = torch.tensor([[a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                               a['bbox'][1] + a['bbox'][3]] for a in anns],
                             dtype=torch.float32).reshape(-1, 4)
    gt.labels = torch.tensor([label_of[a['category_id']] for a in anns], dtype=torch.int64)
    gt.masks = np.stack([coco.annToMask(a).astype(bool) for a in anns]) if anns else \
        np.zeros((0, img['height'], img['width']), bool)
    return gt


def pred_instances(prediction: dict, score_thr: float) -> InstanceData:
    """Detections of one ``DumpDetResults`` entry scoring at least ``score_thr``,
    masks decoded from RLE to (N, H, W) bool."""
    pred = prediction['pred_instances']
    keep = pred['scores'] >= score_thr
    out = InstanceData()
    out.bboxes = pred['bboxes'][keep]
    out.labels = pred['labels'][keep]
    out.scores = pred['scores'][keep]
    h, w = prediction['ori_shape']
    masks = [m for m, k in zip(pred['masks'], keep.tolist()) if k]
    out.masks = mask_utils.decode(masks).transpose(2, 0, 1).astype(bool) if masks else \
        np.zeros((0, h, w), bool)
    return out


def _panel(visualizer: DetLocalVisualizer, image: np.ndarray, instances: InstanceData,
           is_gt: bool, height: int) -> np.ndarray:
    """One drawn image (RGB), resized to ``height`` px."""
    sample = DetDataSample()
    if is_gt:
        sample.gt_instances = instances
    else:
        sample.pred_instances = instances
    visualizer.add_datasample('panel', image, sample, draw_gt=is_gt, draw_pred=not is_gt,
                              pred_score_thr=0.0, show=False)
    drawn = visualizer.get_image()
    width = round(drawn.shape[1] * height / drawn.shape[0])
    return cv2.resize(drawn, (width, height), interpolation=cv2.INTER_AREA)


def _text_strip(text: str, size: tuple, vertical_center: bool = True) -> np.ndarray:
    """White (h, w, 3) image with ``text`` written in black."""
    strip = np.full((*size, 3), 255, np.uint8)
    y = size[0] // 2 + 5 if vertical_center else size[0] - 8
    cv2.putText(strip, text[:28], (6, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1,
                cv2.LINE_AA)
    return strip


def comparison_grid(predictions: Dict[str, List[dict]], data: dict, out_file: str,
                    num_images: int = 4, img_ids: Optional[Sequence[int]] = None,
                    score_thr: float = 0.5, height: int = 256) -> List[int]:
    """Write the grid (rows: ground truth, then each model; columns: images).

    Args:
        predictions (dict[str, list[dict]]): name -> ``DumpDetResults`` entries.
        data (dict): ``img_dir``, ``ann_file``, ``classes``, ``palette``.
        out_file (str): PNG path.
        num_images (int): Columns, when ``img_ids`` is not given: the first
            test images that have ground-truth instances.
        img_ids (Sequence[int], optional): Which images to show.
        score_thr (float): Detections below this score are not drawn.
        height (int): Panel height in pixels.

    Returns:
        list[int]: The image ids shown.
    """
    coco = COCO(data['ann_file'])
    by_id = {name: {p['img_id']: p for p in preds} for name, preds in predictions.items()}
    if img_ids is None:
        shared = set.intersection(*(set(ids) for ids in by_id.values()))
        img_ids = [i for i in sorted(shared) if coco.imgToAnns[i]][:num_images]
    missing = [(n, i) for n, ids in by_id.items() for i in img_ids if i not in ids]
    if not img_ids or missing:
        raise ValueError(f'no common images to draw (missing (model, img_id): {missing[:5]})')
    visualizer = DetLocalVisualizer.get_instance('gan_mask_rcnn_comparison')
    visualizer.dataset_meta = dict(classes=tuple(data['classes']), palette=data['palette'])
    rows = {'ground truth': []}
    rows.update({name: [] for name in predictions})
    titles = []
    for img_id in img_ids:
        info = coco.imgs[img_id]
        image = cv2.imread(osp.join(data['img_dir'], info['file_name']))
        if image is None:
            raise ValueError(f"cannot read image {osp.join(data['img_dir'], info['file_name'])!r}")
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        rows['ground truth'].append(
            _panel(visualizer, image, gt_instances(coco, img_id, data['classes']), True, height))
        for name in predictions:
            rows[name].append(_panel(visualizer, image,
                                     pred_instances(by_id[name][img_id], score_thr), False,
                                     height))
        titles.append(_text_strip(osp.basename(info['file_name']),
                                  (TITLE_HEIGHT, rows['ground truth'][-1].shape[1]), False))
    grid = [np.hstack([np.full((TITLE_HEIGHT, LABEL_WIDTH, 3), 255, np.uint8)] + titles)]
    for name, panels in rows.items():
        grid.append(np.hstack([_text_strip(name, (height, LABEL_WIDTH))] + panels))
    cv2.imwrite(out_file, cv2.cvtColor(np.vstack(grid), cv2.COLOR_RGB2BGR))
    return list(img_ids)


def read_training_log(work_dir: str) -> Dict[str, List[tuple]]:
    """Loss scalars logged while training in ``work_dir``.

    Reads ``<work_dir>/<timestamp>/vis_data/scalars.json`` of every run (a
    resumed run overrides the iterations it repeats).

    Returns:
        dict[str, list[tuple[int, float]]]: loss key -> sorted (iteration, value).
    """
    series = defaultdict(dict)
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                record = json.loads(line) if line.strip() else {}
                step = record.get('step', record.get('iter'))
                for key, value in record.items():
                    if key.startswith('loss') and step is not None:
                        series[key][int(step)] = float(value)
    return {k: sorted(v.items()) for k, v in series.items()}


def loss_curves(logs: Dict[str, Dict[str, List[tuple]]], out_file: str) -> None:
    """Plot generator and discriminator losses of every model into one PNG.

    One colour per model, one line style per loss key.

    Args:
        logs (dict): model name -> :func:`read_training_log` output.
        out_file (str): PNG path.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    panels = [('generator objective (loss)', lambda k: k == 'loss'),
              ('generator adversarial terms (loss_g_*)', lambda k: k.startswith('loss_g')),
              ('discriminator losses (loss_d_*)', lambda k: k.startswith('loss_d'))]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6))
    colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for ax, (title, wanted) in zip(axes, panels):
        for model_idx, (name, series) in enumerate(logs.items()):
            for key_idx, key in enumerate(sorted(k for k in series if wanted(k))):
                steps, values = zip(*series[key])
                ax.plot(steps, values, color=colors[model_idx % len(colors)],
                        linestyle=('-', '--', ':', '-.')[key_idx % 4],
                        label=name if key == 'loss' else f'{name}: {key}')
        ax.set_title(title, fontsize=10)
        ax.set_xlabel('iteration')
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.lines:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, 'not logged', ha='center', va='center', transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(out_file, dpi=100)
    plt.close(fig)
