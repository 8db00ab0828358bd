"""GAN Mask R-CNN for MMDetection 3.x.

Importing this package registers every module below into the MMEngine/MMDet
registries; configs pull it in with
``custom_imports = dict(imports=['gan_mask_rcnn'], allow_failed_imports=False)``.
"""
from .box_discriminator import BoxDiscriminator
from .coco_boundary_metric import CocoBoundaryMetric
from .checkpoint_compat import allow_mmengine_checkpoint_types
from .datasets import CheckedCityscapesDataset, CheckedCocoDataset, GlaSDataset, ShapesDataset
from .gan_cascade_rcnn import GANCascadeRCNN, GANHybridTaskCascade
from .gan_cascade_roi_head import GANCascadeRoIHead, GANHybridTaskCascadeRoIHead
from .gan_mask_rcnn import GANMaskRCNN
from .gan_optim_wrapper_constructor import GANOptimWrapperConstructor
from .gan_roi_head import GANRoIHead
from .grad_all_reduce_data_parallel import GradAllReduceDataParallel
from .mask_discriminator import MaskDiscriminator
from .prroi_extractor import PrRoIExtractor
from .reseed_train_loop import ReseedIterBasedTrainLoop
from .resume_check_hook import ResumeCheckHook

allow_mmengine_checkpoint_types()

__version__ = '0.1.0'

__all__ = ['BoxDiscriminator', 'MaskDiscriminator', 'GANRoIHead', 'GANMaskRCNN',
           'GANCascadeRoIHead', 'GANHybridTaskCascadeRoIHead', 'GANCascadeRCNN',
           'GANHybridTaskCascade',
           'GANOptimWrapperConstructor', 'ReseedIterBasedTrainLoop',
           'CheckedCocoDataset', 'CheckedCityscapesDataset', 'GlaSDataset', 'ShapesDataset',
           'GradAllReduceDataParallel',
           'CocoBoundaryMetric', 'PrRoIExtractor', 'ResumeCheckHook']
