"""COCO metric with Boundary AP (Cheng et al., "Boundary IoU", CVPR 2021).

Mask AP barely notices boundary quality: a 100x100 square shifted by one pixel
still has mask IoU 0.98. Boundary IoU compares only the pixels within
``d = dilation_ratio * image diagonal`` of each contour, and Boundary AP matches
detections by ``min(mask IoU, boundary IoU)``. The evaluation itself comes from
faster-coco-eval (``iouType='boundary'``); bbox and segm AP use the same
evaluator, so all three rows of a table come from one code path.
"""
import copy
import os.path as osp
import tempfile
from collections import OrderedDict
from typing import Dict, List, Sequence, Union

import numpy as np
from faster_coco_eval import COCO as FastCOCO
from faster_coco_eval import COCOeval_faster
from mmdet.datasets.api_wrappers import COCO
from mmdet.evaluation.metrics import CocoMetric
from mmdet.registry import METRICS
from mmengine.fileio import load
from mmengine.logging import MMLogger
from terminaltables import AsciiTable

#: Positions of the summary numbers in ``COCOeval.stats`` when ``maxDets`` has
#: three entries (CocoMetric's ``proposal_nums``); the same names as mmdet's.
STAT_INDEX = {
    'mAP': 0, 'mAP_50': 1, 'mAP_75': 2, 'mAP_s': 3, 'mAP_m': 4, 'mAP_l': 5,
    'AR@100': 6, 'AR@300': 7, 'AR@1000': 8,
    'AR_s@1000': 9, 'AR_m@1000': 10, 'AR_l@1000': 11
}
IOU_TYPES = ('bbox', 'segm', 'boundary')


@METRICS.register_module()
class CocoBoundaryMetric(CocoMetric):
    """COCO bbox, segm and Boundary AP for instance segmentation.

    Results are named ``{metric}_{item}`` as in mmdet's ``CocoMetric``
    (``coco/bbox_mAP``, ``coco/segm_mAP_50``, ``coco/boundary_mAP_75``, ...).
    With ``classwise=True`` every metric also reports ``{metric}_{class}_mAP``
    (mmdet's own classwise keys do not name the metric, so bbox and segm
    overwrite each other). Predictions with no detections at all evaluate to
    AP 0.

    Args:
        metric (str | list[str]): Any of ``'bbox'``, ``'segm'`` and
            ``'boundary'``. Defaults to all three.
        boundary_dilation_ratio (float): Boundary width as a fraction of the
            image diagonal, in (0, 1). Defaults to 0.02 (the paper's value).
        **kwargs: Everything else of mmdet's :class:`CocoMetric`
            (``ann_file``, ``classwise``, ``outfile_prefix``, ...).
    """

    def __init__(self,
                 metric: Union[str, Sequence[str]] = IOU_TYPES,
                 boundary_dilation_ratio: float = 0.02,
                 **kwargs) -> None:
        metrics = [metric] if isinstance(metric, str) else list(metric)
        bad = [m for m in metrics if m not in IOU_TYPES]
        if bad or not metrics:
            raise ValueError(
                f'metric must be a non-empty subset of {IOU_TYPES}, got {metric!r}')
        if not 0 < boundary_dilation_ratio < 1:
            raise ValueError('boundary_dilation_ratio must be in (0, 1), '
                             f'got {boundary_dilation_ratio!r}')
        if len(kwargs.get('proposal_nums', (1, 2, 3))) != 3:
            raise ValueError('proposal_nums must have 3 entries, got '
                             f"{kwargs['proposal_nums']!r}")
        unknown = [i for i in kwargs.get('metric_items') or [] if i not in STAT_INDEX]
        if unknown:
            raise ValueError(f'metric_items {unknown} are not in {list(STAT_INDEX)}')
        # mmdet validates its own metric names; 'boundary' is evaluated here.
        super().__init__(metric=[m for m in metrics if m != 'boundary'], **kwargs)
        self.metrics = metrics
        self.boundary_dilation_ratio = boundary_dilation_ratio

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Evaluate the processed results.

        Args:
            results (list): ``(gt, pred)`` pairs from :meth:`process`.

        Returns:
            dict[str, float]: ``{metric}_{item}`` (and per-class) numbers.
        """
        gts, preds = zip(*results)
        with tempfile.TemporaryDirectory() as tmp_dir:
            outfile_prefix = self.outfile_prefix or osp.join(tmp_dir, 'results')
            if self._coco_api is None:
                self._coco_api = COCO(self.gt_to_coco_json(gts, outfile_prefix))
            self._init_ids()
            self._check_labels(preds)
            result_files = self.results2json(preds, outfile_prefix)
            if self.format_only:
                MMLogger.get_current_instance().info(
                    f'results are saved in {osp.dirname(outfile_prefix)}')
                return OrderedDict()
            eval_results = OrderedDict()
            for metric in self.metrics:
                kind = 'bbox' if metric == 'bbox' else 'segm'
                if kind not in result_files:
                    raise KeyError(f'metric {metric!r} needs masks in the '
                                   'predictions (pred_instances.masks)')
                eval_results.update(
                    self.evaluate_iou_type(metric, load(result_files[kind])))
        return eval_results

    def evaluate_iou_type(self, iou_type: str,
                          predictions: List[dict]) -> Dict[str, float]:
        """Run faster-coco-eval for one IoU type against ``self._coco_api``.

        Args:
            iou_type (str): ``'bbox'``, ``'segm'`` or ``'boundary'``.
            predictions (list[dict]): COCO result dicts (``image_id``,
                ``category_id``, ``score`` and ``bbox`` or ``segmentation``).

        Returns:
            dict[str, float]: ``{iou_type}_{item}`` rounded to 3 decimals, and
            ``{iou_type}_{class}_mAP`` when ``classwise``.
        """
        logger = MMLogger.get_current_instance()
        if iou_type != 'bbox':
            # Area ranges must use the mask area, not the box area.
            predictions = [{k: v for k, v in p.items() if k != 'bbox'}
                           for p in predictions]
        gt_json = copy.deepcopy(self._coco_api.dataset)
        # Matching marks "unmatched" with id 0, so an annotation with id 0
        # (mmdet's Cityscapes converter writes one) could never be a true
        # positive; the ids mean nothing else here, so number them from 1.
        for new_id, ann in enumerate(gt_json.get('annotations', []), 1):
            ann['id'] = new_id
        coco_gt = FastCOCO(gt_json)
        coco_eval = COCOeval_faster(
            coco_gt, coco_gt.loadRes(predictions), iou_type,
            print_function=logger.info,
            boundary_dilation_ratio=self.boundary_dilation_ratio)
        coco_eval.params.catIds = self.cat_ids
        coco_eval.params.imgIds = self.img_ids
        coco_eval.params.maxDets = list(self.proposal_nums)
        coco_eval.params.iouThrs = np.asarray(self.iou_thrs, dtype=np.float64)
        coco_eval.run()

        items = self.metric_items or list(STAT_INDEX)[:6]
        eval_results = {
            f'{iou_type}_{item}': round(float(coco_eval.stats[STAT_INDEX[item]]), 3)
            for item in items
        }
        if self.classwise:
            eval_results.update(self._per_class_ap(iou_type, coco_eval))
        stats = coco_eval.stats[:6]
        logger.info(f'{iou_type}_mAP_copypaste: ' +
                    ' '.join(f'{s:.3f}' for s in stats))
        return eval_results

    def _per_class_ap(self, iou_type: str,
                      coco_eval: COCOeval_faster) -> Dict[str, float]:
        """AP over IoU 0.50:0.95 per class (``nan`` for a class without GT)."""
        # precision: (iou, recall, class, area range, max dets)
        precision = coco_eval.eval['precision'][:, :, :, 0, -1]
        rows, results = [('category', f'{iou_type}_mAP')], {}
        for idx, cat_id in enumerate(self.cat_ids):
            name = self._coco_api.cats[cat_id]['name']
            p = precision[:, :, idx]
            ap = round(float(p[p > -1].mean()), 3) if (p > -1).any() else float('nan')
            results[f'{iou_type}_{name}_mAP'] = ap
            rows.append((name, f'{ap:.3f}'))
        MMLogger.get_current_instance().info('\n' + AsciiTable(rows).table)
        return results

    def _init_ids(self) -> None:
        """Look the dataset classes up in the annotation file.

        Raises:
            ValueError: If a dataset class is missing from the annotation file,
                naming both class lists.
        """
        classes = list(self.dataset_meta['classes'])
        ann_classes = [c['name'] for c in self._coco_api.dataset['categories']]
        missing = [c for c in classes if c not in ann_classes]
        if missing:
            raise ValueError(
                f'dataset classes {classes} do not match the annotation '
                f'classes {ann_classes}: missing {missing}')
        if self.cat_ids is None:
            # The same lookup as CocoDataset's, so label i means cat_ids[i].
            self.cat_ids = self._coco_api.get_cat_ids(cat_names=classes)
        if self.img_ids is None:
            self.img_ids = self._coco_api.get_img_ids()

    def _check_labels(self, preds: Sequence[dict]) -> None:
        """Raise if a predicted label is not an index into the dataset classes.

        A model trained on another class list predicts labels the dataset does
        not have; without this check they would be scored as the wrong class.
        """
        classes = list(self.dataset_meta['classes'])
        labels = np.concatenate([np.asarray(p['labels']).reshape(-1)
                                 for p in preds] + [np.zeros(0, int)])
        if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
            raise ValueError(
                f'predicted labels span [{labels.min()}, {labels.max()}] but the '
                f'dataset has {len(classes)} classes {classes}; the model '
                'was trained with a different class list')
