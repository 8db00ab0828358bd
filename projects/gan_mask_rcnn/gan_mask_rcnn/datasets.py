"""COCO-form datasets that check their data at start-up, one type per data source.

Every config's datasets are one of these mmdet ``CocoDataset`` s: ``ShapesDataset``
(the synthetic set of ``tools/generate_shapes.py``), ``GlaSDataset`` (GlaS in COCO
form, ``data/glas_cc``), ``CheckedCocoDataset`` (COCO 2017, the phone
set, a user's own COCO file) and ``CheckedCityscapesDataset``. Before training
they stop, instead of a stack trace from deep inside mmengine or a silent wrong
run, on:

- a missing annotation file or image folder: named, with how to get the data
  (``how_to_get``, set by each config);
- an annotation file that is not COCO json: named by its path;
- a class list (``metainfo.classes``) that is not the file's categories or a part
  of them in the file's order: both lists named. mmdet drops the annotations of
  unlisted categories and numbers labels in the file's order, so a list with other
  names leaves no image to train on, and one in another order names every class
  wrongly;
- no image left after filtering.

Categories of the file that the list leaves out only warn, with the number of
dropped annotations and of images left without any.
"""
import os
import os.path as osp
import warnings
from typing import List, Optional

from mmdet.datasets import CityscapesDataset, CocoDataset
from mmdet.registry import DATASETS

#: Classes of the synthetic shapes set (written by ``tools/generate_shapes.py``).
SHAPE_CLASSES = ('ellipse', 'polygon', 'star', 'gear')


class DataCheckMixin:
    """Start-up checks for a ``CocoDataset`` subclass (first among its bases).

    Args:
        how_to_get (str, optional): How a user gets the data; shown when a file
            is missing. Defaults to the class's ``HOW_TO_GET``.
        *args, **kwargs: Arguments of the dataset class.
    """

    HOW_TO_GET = ('Point the config at your data, e.g. --cfg-options '
                  'train_dataloader.dataset.data_root=/path/to/data/ '
                  'train_dataloader.dataset.ann_file=annotations/train.json '
                  '(and the same for val_dataloader, test_dataloader, val_evaluator).')

    def __init__(self, *args, how_to_get: Optional[str] = None, **kwargs) -> None:
        if how_to_get is not None:
            self.HOW_TO_GET = how_to_get
        super().__init__(*args, **kwargs)

    def required_paths(self) -> List[tuple]:
        """``(what, path, check)`` of each file or folder the dataset reads."""
        return [('annotation file', self.ann_file, osp.isfile),
                ('image folder', self.data_prefix.get('img', ''), osp.isdir)]

    def COCOAPI(self, ann_file: str):  # noqa: N802 (mmdet calls self.COCOAPI(path))
        """mmdet's COCO API on ``ann_file``, naming a file that is not COCO json."""
        try:
            coco = super().COCOAPI(ann_file)
            self._file_classes = tuple(c['name'] for c in coco.dataset.get('categories', []))
        except (ValueError, AssertionError, KeyError, TypeError) as err:
            raise ValueError(
                f'{type(self).__name__}: {self.ann_file!r} is not a COCO annotation file '
                f'(a JSON object with images, annotations, categories): '
                f'{type(err).__name__}: {err}. Re-create or re-download it. '
                f'{self.HOW_TO_GET}') from err
        return coco

    def load_data_list(self) -> List[dict]:
        """Check the paths, load as mmdet, then check the class list."""
        for what, path, check in self.required_paths():
            if path and '://' not in path and not check(path):
                cwd = '' if osp.isabs(path) else f', relative to {os.getcwd()!r}'
                raise FileNotFoundError(
                    f'{type(self).__name__}: {what} not found: {path!r} '
                    f'(data_root={self.data_root!r}{cwd}). {self.HOW_TO_GET}')
        self._listed_ids = None
        self._unlisted = dict(annotations=0, images=0)
        data_list = super().load_data_list()
        self._check_classes()
        return data_list

    def parse_data_info(self, raw_data_info: dict):
        """mmdet's parsing; counts the annotations of unlisted categories."""
        if self._listed_ids is None:
            self._listed_ids = set(self.cat_ids)
        anns = raw_data_info['raw_ann_info']
        unlisted = sum(ann['category_id'] not in self._listed_ids for ann in anns)
        self._unlisted['annotations'] += unlisted
        self._unlisted['images'] += int(bool(anns) and unlisted == len(anns))
        return super().parse_data_info(raw_data_info)

    def _check_classes(self) -> None:
        classes = tuple(self.metainfo['classes'])
        in_file = self._file_classes
        if tuple(c for c in in_file if c in classes) != classes:
            missing = [c for c in classes if c not in in_file]
            why = (f'{missing} {"is" if len(missing) == 1 else "are"} not among its '
                   'categories' if missing else
                   "the classes come in another order than the file's, by which mmdet "
                   'numbers the labels')
            raise ValueError(
                f'{type(self).__name__}: the class list does not fit {self.ann_file!r}: '
                f'{why}.\n  metainfo.classes:       {classes}\n'
                f'  categories of the file: {in_file}\n'
                "Set the dataset's metainfo=dict(classes=...) (and the heads' num_classes) "
                "to the file's categories or a part of them in the file's order, or point "
                'ann_file at the right file.')
        if self._unlisted['annotations']:
            left_out = tuple(c for c in in_file if c not in classes)
            dropped = (not self.test_mode and bool(self.filter_cfg)
                       and self.filter_cfg.get('filter_empty_gt', False))
            warnings.warn(
                f'{type(self).__name__}: metainfo.classes leaves out the categories '
                f'{left_out} of {self.ann_file!r}: {self._unlisted["annotations"]} '
                f'annotations are dropped and {self._unlisted["images"]} image(s) are left '
                'without any' + (' (filter_empty_gt drops them)' if dropped else '') + '.')

    def filter_data(self) -> List[dict]:
        """mmdet's filtering; stops when no image is left."""
        kept = super().filter_data()
        if not kept:
            raise ValueError(
                f'{type(self).__name__}: no image of {self.ann_file!r} is left '
                f'({len(self.data_list)} in the file, test_mode={self.test_mode}, '
                f'filter_cfg={self.filter_cfg}, classes {tuple(self.metainfo["classes"])}): '
                'training would have nothing to draw. Check the file, the class list or '
                "filter_cfg (filter_empty_gt drops images without annotations, min_size "
                'small ones).')
        return kept


@DATASETS.register_module()
class CheckedCocoDataset(DataCheckMixin, CocoDataset):
    """mmdet's ``CocoDataset`` with the start-up checks (COCO 2017, own COCO files)."""


@DATASETS.register_module()
class CheckedCityscapesDataset(DataCheckMixin, CityscapesDataset):
    """mmdet's ``CityscapesDataset`` with the start-up checks; in test mode it also
    needs the ``gtFine`` folder that ``CityScapesMetric`` reads beside the images."""

    def required_paths(self) -> List[tuple]:
        paths = super().required_paths()
        img_dir = self.data_prefix.get('img', '')
        if self.test_mode and 'leftImg8bit' in img_dir:
            paths.append(('instance ground truth folder (CityScapesMetric)',
                          img_dir.replace('leftImg8bit', 'gtFine'), osp.isdir))
        return paths


@DATASETS.register_module()
class ShapesDataset(CheckedCocoDataset):
    """The synthetic shapes set (:mod:`gan_mask_rcnn_lab.synthetic_shapes`)."""

    METAINFO = dict(
        classes=SHAPE_CLASSES,
        palette=[(220, 20, 60), (0, 130, 255), (0, 170, 80), (250, 170, 30)])
    HOW_TO_GET = ('Create it with: python tools/generate_shapes.py --out data/shapes '
                  '(or `make data`).')


@DATASETS.register_module()
class GlaSDataset(CheckedCocoDataset):
    """GlaS gland segmentation (MICCAI 2015) in COCO form, one class ``gland``."""

    METAINFO = dict(classes=('gland', ), palette=[(220, 20, 60)])
    HOW_TO_GET = ('Put GlaS-cc (images/, annotations/{train,test}.json) in data/glas_cc, '
                  'or link an existing copy there (ln -s <folder> data/glas_cc); from the '
                  'original GlaS release: put it in data/glas_cc/images and run python '
                  'tools/dataset_converters/glas_to_coco.py data/glas_cc/images '
                  'data/glas_cc/annotations.')
