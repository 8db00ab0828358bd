"""RoI head of GAN Mask R-CNN: Mask R-CNN's ``StandardRoIHead`` plus the box and mask
discriminators of ``AdversarialRoIHeadMixin``.

Inside the detector's generator pass, ``loss`` adds the generator's adversarial terms
(``loss_g_box``, ``loss_g_mask``) to Mask R-CNN's losses; outside one, and in test
mode, the head is exactly ``StandardRoIHead``: the discriminators never run.
"""
from typing import List, Tuple

from torch import Tensor

from mmdet.models.roi_heads import StandardRoIHead
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.registry import MODELS
from mmdet.utils import InstanceList
from .adversarial_roi_head import AdversarialRoIHeadMixin


@MODELS.register_module()
class GANRoIHead(AdversarialRoIHeadMixin, StandardRoIHead):
    """``StandardRoIHead`` with a box and/or a mask discriminator.

    Args:
        **kwargs: Arguments of ``AdversarialRoIHeadMixin`` (the discriminators,
            ``disc_roi_extractor``, ``max_disc_rois_per_img``) and of
            ``StandardRoIHead``. One stage: ``box_stages``/``mask_stages`` are 0.

    Besides the losses, training logs instruments that show whether the
    discriminators learn: ``l1_g_mask_input`` and ``l1_g_mask_layers`` (the mask
    critic's unweighted ``L_G`` = the parameter-free feature-weighted L1 between
    the masks + the learned layers' term), ``drift_d_box`` and ``drift_d_mask``
    (``||theta_D - theta_D(0)||``), and ``grad_ratio_g_box`` / ``grad_ratio_g_mask``
    (``||d loss_g_box / d bbox_pred|| / ||d loss_bbox / d bbox_pred||``, the same
    for ``loss_g_mask`` / ``loss_mask`` on the mask logits). The ratios exist only
    after the backward, so they go to the MessageHub, not into the loss dict.
    """

    def bbox_loss(self, x: Tuple[Tensor], sampling_results: List[SamplingResult]) -> dict:
        """``StandardRoIHead.bbox_loss`` plus ``loss_g_box`` in a generator pass."""
        return self.add_box_term(0, self.bbox_head, x, sampling_results,
                                 super().bbox_loss(x, sampling_results))

    def mask_loss(self, x: Tuple[Tensor], sampling_results: List[SamplingResult],
                  bbox_feats: Tensor, batch_gt_instances: InstanceList) -> dict:
        """``StandardRoIHead.mask_loss`` plus ``loss_g_mask`` in a generator pass."""
        return self.add_mask_term(
            0, self.mask_head, self.train_cfg, x, sampling_results, batch_gt_instances,
            super().mask_loss(x, sampling_results, bbox_feats, batch_gt_instances))
