"""GAN Mask R-CNN (Le, MIT 2020): Mask R-CNN whose ``train_step`` plays the GAN game.

One iteration (the author's order): a generator step (Mask R-CNN losses plus the
weighted adversarial terms, discriminators frozen), then ``d_steps`` discriminator
steps on the detached inputs that the generator's forward produced
(``GANTwoStageDetectorMixin``). Prediction is Mask R-CNN's, unchanged.
"""
from mmdet.models.detectors import MaskRCNN
from mmdet.registry import MODELS
from .gan_two_stage_detector import GANTwoStageDetectorMixin


@MODELS.register_module()
class GANMaskRCNN(GANTwoStageDetectorMixin, MaskRCNN):
    """Mask R-CNN trained against a box and a mask discriminator.

    Needs ``roi_head=dict(type='GANRoIHead', ...)`` and an ``OptimWrapperDict``
    with ``generator`` and ``discriminator`` (``GANOptimWrapperConstructor``).

    Args:
        **kwargs: The GAN schedule of ``GANTwoStageDetectorMixin``
            (``adv_start_fraction``, ``adv_ramp_fraction``, ``d_steps``,
            ``max_consecutive_skips``) and the arguments of ``MaskRCNN``.
    """
