"""COCO-format datasets of this project, with a clear error when files are missing.

``ShapesDataset`` reads the synthetic set written by ``tools/generate_shapes.py`` and
``GlaSDataset`` the GlaS gland set in COCO form (``../shared/data/glas_cc``). Both
are mmdet ``CocoDataset`` s; they only add class names and a start-up check that
names the missing path and the command that creates or fetches it, instead of a
stack trace from deep inside a transform.
"""
import os.path as osp

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS

#: Classes of the synthetic shapes set (written by ``tools/generate_shapes.py``).
SHAPE_CLASSES = ('ellipse', 'polygon', 'star', 'gear')


class _CheckedCocoDataset(CocoDataset):
    """CocoDataset that checks its annotation file and image folder first."""

    #: How a user gets the data; shown in the error message.
    HOW_TO_GET = ''

    def load_data_list(self):
        img_dir = self.data_prefix.get('img', '')
        for what, path in (('annotation file', self.ann_file), ('image folder', img_dir)):
            if path and not osp.exists(path):
                raise FileNotFoundError(
                    f'{type(self).__name__}: {what} not found: {path!r} '
                    f"(data_root={self.data_root!r}). {self.HOW_TO_GET}")
        return super().load_data_list()


@DATASETS.register_module()
class ShapesDataset(_CheckedCocoDataset):
    """The synthetic shapes set (:mod:`gan_mask_rcnn_lab.synthetic_shapes`)."""

    METAINFO = dict(
        classes=SHAPE_CLASSES,
        palette=[(220, 20, 60), (0, 130, 255), (0, 170, 80), (250, 170, 30)])
    HOW_TO_GET = ('Create it with: python tools/generate_shapes.py --out data/shapes '
                  '(or `make data`).')


@DATASETS.register_module()
class GlaSDataset(_CheckedCocoDataset):
    """GlaS gland segmentation (MICCAI 2015) in COCO form, one class ``gland``."""

    METAINFO = dict(classes=('gland', ), palette=[(220, 20, 60)])
    HOW_TO_GET = ('GlaS-cc ships beside this repository in ../shared/data/glas_cc; '
                  'from the original GlaS release convert it with '
                  'python tools/dataset_converters/glas_to_coco.py <glas_dir> <out_dir>.')
