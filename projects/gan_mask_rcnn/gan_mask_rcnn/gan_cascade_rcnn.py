"""Cascade Mask R-CNN and HTC trained with the GAN loss of GAN Mask R-CNN.

The thesis: "although we only implement our design on Mask R-CNN, this GAN loss can
be extended and applied on future state-of-the-art method". These are mmdet's
``CascadeRCNN`` and ``HybridTaskCascade`` with the GAN step of
``GANTwoStageDetectorMixin``; prediction is theirs, unchanged.
"""
from mmdet.models.detectors import CascadeRCNN, HybridTaskCascade
from mmdet.registry import MODELS
from .gan_two_stage_detector import GANTwoStageDetectorMixin


@MODELS.register_module()
class GANCascadeRCNN(GANTwoStageDetectorMixin, CascadeRCNN):
    """Cascade (Mask) R-CNN trained against a box and a mask discriminator.

    Needs ``roi_head=dict(type='GANCascadeRoIHead', ...)`` and an
    ``OptimWrapperDict`` with ``generator`` and ``discriminator``.

    Args:
        **kwargs: The GAN schedule of ``GANTwoStageDetectorMixin`` and the
            arguments of ``CascadeRCNN``.
    """


@MODELS.register_module()
class GANHybridTaskCascade(GANTwoStageDetectorMixin, HybridTaskCascade):
    """HTC (with or without its semantic branch) trained against a box and a mask
    discriminator.

    Needs ``roi_head=dict(type='GANHybridTaskCascadeRoIHead', ...)`` and an
    ``OptimWrapperDict`` with ``generator`` and ``discriminator``.

    Args:
        **kwargs: The GAN schedule of ``GANTwoStageDetectorMixin`` and the
            arguments of ``HybridTaskCascade``.
    """
