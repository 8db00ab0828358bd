"""GAN Mask R-CNN for MMDetection 3.x.

Importing this package registers every module below into the MMEngine/MMDet
registries; configs pull it in with
``custom_imports = dict(imports=['gan_mask_rcnn'], allow_failed_imports=False)``.
"""
from .datasets import GlaSDataset, ShapesDataset
from .grad_all_reduce_data_parallel import GradAllReduceDataParallel
from .synthetic_shapes import SHAPE_CLASSES, generate_shapes

__version__ = '0.1.0'

__all__ = ['GlaSDataset', 'ShapesDataset', 'GradAllReduceDataParallel', 'SHAPE_CLASSES',
           'generate_shapes']
