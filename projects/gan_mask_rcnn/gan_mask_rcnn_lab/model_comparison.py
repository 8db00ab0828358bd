"""Evaluate several detectors on the same test set and tabulate the differences.

Used by ``tools/analysis_tools/compare_models.py`` to print the thesis' tables (Tables
4.1-4.7: AP, AP50, AP75, APs, APm, APl of boxes and masks, here with Boundary AP
beside them), per-class AP and the difference of every model to the first one.
Every model is run on the first model's test set (``Runner.test`` with
``DumpDetResults``, the path of ``mim test --out``), or its dumped predictions are
read back; all are then scored by :class:`CocoBoundaryMetric`.
"""
import glob
import json
import math
import os
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from mmengine.config import Config
from mmengine.fileio import load
from mmengine.runner import CheckpointLoader, Runner

from gan_mask_rcnn.coco_boundary_metric import IOU_TYPES, CocoBoundaryMetric
from .markdown import markdown_table

ITEMS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')
HEADERS = ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl')


@dataclass
class ModelRun:
    """One model to compare.

    Attributes:
        name (str): Column title.
        config (str): Its config file.
        checkpoint (str, optional): Weights; needed unless ``predictions``.
        predictions (str, optional): A ``DumpDetResults`` pickle to reuse.
        log_dir (str, optional): Its training work dir (for loss curves).
    """
    name: str
    config: str
    checkpoint: Optional[str] = None
    predictions: Optional[str] = None
    log_dir: Optional[str] = None


def run_from_work_dir(name: str, work_dir: str) -> ModelRun:
    """A :class:`ModelRun` from a training work dir: its dumped config, the
    checkpoint named in ``last_checkpoint`` and a ``*.pkl`` of predictions
    (``mim test --out``) when there is one."""
    configs = sorted(glob.glob(osp.join(work_dir, '*.py')), key=osp.getmtime)
    if not configs:
        raise FileNotFoundError(f'work dir {work_dir!r} has no config (*.py)')
    checkpoint = None
    if osp.exists(osp.join(work_dir, 'last_checkpoint')):
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            checkpoint = f.read().strip()
    pickles = sorted(glob.glob(osp.join(work_dir, '**', '*.pkl'), recursive=True),
                     key=osp.getmtime)
    if checkpoint is None and not pickles:
        raise FileNotFoundError(
            f'work dir {work_dir!r} has neither last_checkpoint nor predictions (*.pkl)')
    return ModelRun(name, configs[-1], checkpoint, pickles[-1] if pickles else None,
                    work_dir)


def reference_data(cfg: Config) -> dict:
    """Image folder, annotation file and classes of ``cfg``'s test set."""
    ds = cfg.test_dataloader.dataset
    while 'dataset' in ds:  # wrappers such as RepeatDataset
        ds = ds.dataset
    root = ds.get('data_root', '') or ''
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    meta = DATASETS.get(ds.type).METAINFO
    classes = list(ds.get('metainfo', {}).get('classes', meta['classes']))
    palette = ds.get('metainfo', {}).get('palette', meta.get('palette'))
    return dict(ann_file=osp.join(root, ds.ann_file),
                img_dir=osp.join(root, ds.get('data_prefix', {}).get('img', '')),
                classes=classes, palette=palette)


def check_checkpoint_classes(checkpoint: str, classes: Sequence[str]) -> None:
    """Raise if the checkpoint was trained on other classes than ``classes``.

    Raises:
        ValueError: Naming both class lists.
    """
    ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    trained = ckpt.get('meta', {}).get('dataset_meta', {}).get('classes')
    if trained is not None and list(trained) != list(classes):
        raise ValueError(f'checkpoint {checkpoint!r} was trained on classes '
                         f'{list(trained)} but the test set has classes {list(classes)}')


def predict(run: ModelRun, ref_cfg: Config, work_dir: str) -> str:
    """Run ``run``'s model on ``ref_cfg``'s test set; return the pickle path.

    The model comes from ``run.config`` and ``run.checkpoint``; the data and
    test pipeline from ``ref_cfg``, so all models see the same images.
    """
    cfg = Config.fromfile(run.config)
    cfg.test_dataloader = ref_cfg.test_dataloader
    out_file = osp.join(work_dir, 'predictions.pkl')
    cfg.test_evaluator = dict(type='DumpDetResults', out_file_path=out_file)
    cfg.load_from = run.checkpoint
    cfg.work_dir = work_dir
    cfg.launcher = 'none'
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]  # no TensorBoard files
    Runner.from_cfg(cfg).test()
    return out_file


def evaluate(predictions: List[dict], data: dict) -> Dict[str, float]:
    """bbox, segm and Boundary AP (overall and per class) of dumped predictions.

    Args:
        predictions (list[dict]): ``DumpDetResults`` entries (``img_id``,
            ``ori_shape``, ``pred_instances`` with RLE ``masks``).
        data (dict): :func:`reference_data` of the reference config.

    Returns:
        dict[str, float]: ``{type}_{item}`` and ``{type}_{class}_mAP``.
    """
    metric = CocoBoundaryMetric(ann_file=data['ann_file'], classwise=True)
    metric.dataset_meta = dict(classes=data['classes'])
    metric.process({}, predictions)
    return {k.split('/', 1)[-1]: v for k, v in metric.evaluate(len(predictions)).items()}


def load_predictions(path: str, data: dict) -> List[dict]:
    """Read a ``DumpDetResults`` pickle and check it fits the test set."""
    predictions = load(path)
    if not predictions:
        raise ValueError(f'predictions file {path!r} holds no images')
    with open(data['ann_file']) as f:
        img_ids = {img['id'] for img in json.load(f)['images']}
    unknown = {p['img_id'] for p in predictions} - img_ids
    if unknown:
        raise ValueError(f'predictions {path!r} are for images not in '
                         f"{data['ann_file']!r}: ids {sorted(unknown)[:5]}")
    return predictions


def compare(runs: Sequence[ModelRun], out_dir: str) -> Dict[str, dict]:
    """Predictions and metrics of every run on the first run's test set.

    Returns:
        dict[str, dict]: name -> ``dict(metrics=..., predictions=...)``.
    """
    if len(runs) < 2:
        raise ValueError(f'compare needs at least 2 models, got {len(runs)}')
    ref_cfg = Config.fromfile(runs[0].config)
    data = reference_data(ref_cfg)
    for run in runs:
        model_classes = reference_data(Config.fromfile(run.config))['classes']
        if model_classes != data['classes']:
            raise ValueError(f'model {run.name!r} ({run.config}) has classes {model_classes} '
                             f"but the test set has classes {data['classes']}")
    results = {}
    for run in runs:
        if run.predictions is None:
            if run.checkpoint is None:
                raise ValueError(f'model {run.name!r} has neither a checkpoint nor predictions')
            check_checkpoint_classes(run.checkpoint, data['classes'])
            run.predictions = predict(run, ref_cfg, osp.join(out_dir, 'runs', run.name))
        predictions = load_predictions(run.predictions, data)
        results[run.name] = dict(metrics=evaluate(predictions, data),
                                 predictions=predictions)
    return results


def _table(title: str, rows: List[str], columns: Dict[str, List[float]]) -> str:
    """A markdown table: one row per ``rows``, one column per model and one
    difference column per model after the first (in AP points, x100)."""
    names = list(columns)
    head = [title] + names + [f'{n} - {names[0]}' for n in names[1:]]
    lines = []
    for i, row in enumerate(rows):
        vals = [columns[n][i] for n in names]
        cells = [_pct(v) for v in vals]
        cells += [_pct(v - vals[0], signed=True) if min(v, vals[0]) >= 0 else 'n/a'
                  for v in vals[1:]]
        lines.append([row] + cells)
    return markdown_table(head, lines)


def _pct(value: float, signed: bool = False) -> str:
    """AP in points (x100); ``n/a`` for nan and COCO's -1 (no ground truth)."""
    if math.isnan(value) or value < 0 and not signed:
        return 'n/a'
    return f'{100 * value:+.1f}' if signed else f'{100 * value:.1f}'


def format_tables(metrics: Dict[str, Dict[str, float]], classes: Sequence[str]) -> str:
    """The thesis-style tables: one per IoU type (AP..APl) and per-class AP.

    Args:
        metrics (dict): name -> :func:`evaluate` output.
        classes (Sequence[str]): Class names, for the per-class table.

    Returns:
        str: Markdown text with the tables.
    """
    out = []
    for iou_type in IOU_TYPES:
        cols = {n: [m.get(f'{iou_type}_{i}', float('nan')) for i in ITEMS]
                for n, m in metrics.items()}
        out.append(f'### {iou_type} AP\n\n' + _table('', list(HEADERS), cols))
    for iou_type in IOU_TYPES:
        cols = {n: [m.get(f'{iou_type}_{c}_mAP', float('nan')) for c in classes]
                for n, m in metrics.items()}
        out.append(f'### per-class {iou_type} AP\n\n' + _table('class', list(classes), cols))
    return '\n\n'.join(out) + '\n'


def write_report(results: Dict[str, dict], classes: Sequence[str], out_dir: str) -> str:
    """Write ``tables.md`` and ``metrics.json`` to ``out_dir``; return the tables."""
    os.makedirs(out_dir, exist_ok=True)
    metrics = {n: r['metrics'] for n, r in results.items()}
    text = format_tables(metrics, classes)
    with open(osp.join(out_dir, 'tables.md'), 'w') as f:
        f.write(text)
    with open(osp.join(out_dir, 'metrics.json'), 'w') as f:
        json.dump(metrics, f, indent=2)
    return text
