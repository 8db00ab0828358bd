"""Cascade RoI heads with the box and mask discriminators of
``AdversarialRoIHeadMixin``: Cascade Mask R-CNN's ``CascadeRoIHead`` and HTC's
``HybridTaskCascadeRoIHead`` (with or without its semantic branch).

Inside the detector's generator pass, ``loss`` adds each adversarial stage's
``s<stage>.loss_g_box``/``s<stage>.loss_g_mask`` (``box_stages``, ``mask_stages``)
to mmdet's losses, weighted by that stage's ``stage_loss_weights`` as mmdet weights
every loss of the stage; outside one, and in test mode, each head is exactly its
mmdet base.
"""
from typing import List, Optional, Tuple

from torch import Tensor

from mmdet.models.roi_heads import CascadeRoIHead, HybridTaskCascadeRoIHead
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.registry import MODELS
from mmdet.utils import InstanceList
from .adversarial_roi_head import AdversarialRoIHeadMixin


@MODELS.register_module()
class GANCascadeRoIHead(AdversarialRoIHeadMixin, CascadeRoIHead):
    """``CascadeRoIHead`` with a box and/or a mask discriminator.

    Args:
        **kwargs: Arguments of ``AdversarialRoIHeadMixin`` (the discriminators,
            ``disc_roi_extractor``, ``max_disc_rois_per_img``, ``box_stages``
            (default ``'last'``), ``mask_stages`` (default ``'all'``)) and of
            ``CascadeRoIHead``.
    """

    def bbox_loss(self, stage: int, x: Tuple[Tensor],
                  sampling_results: List[SamplingResult]) -> dict:
        """``CascadeRoIHead.bbox_loss`` plus ``loss_g_box`` in a generator pass."""
        return self.add_box_term(stage, self.bbox_head[stage], x, sampling_results,
                                 super().bbox_loss(stage, x, sampling_results))

    def mask_loss(self, stage: int, x: Tuple[Tensor], sampling_results: List[SamplingResult],
                  batch_gt_instances: InstanceList) -> dict:
        """``CascadeRoIHead.mask_loss`` plus ``loss_g_mask`` in a generator pass."""
        return self.add_mask_term(
            stage, self.mask_head[stage], self.train_cfg[stage], x, sampling_results,
            batch_gt_instances,
            super().mask_loss(stage, x, sampling_results, batch_gt_instances))


@MODELS.register_module()
class GANHybridTaskCascadeRoIHead(AdversarialRoIHeadMixin, HybridTaskCascadeRoIHead):
    """``HybridTaskCascadeRoIHead`` with a box and/or a mask discriminator.

    With ``interleaved=True`` (mmdet's default) a stage's mask head trains on the
    RoIs its box head refined and sampled again; the mask term then sees those
    positives, as the mask loss does.

    Args:
        **kwargs: Arguments of ``AdversarialRoIHeadMixin`` (as for
            ``GANCascadeRoIHead``) and of ``HybridTaskCascadeRoIHead``.
    """

    def bbox_loss(self, stage: int, x: Tuple[Tensor], sampling_results: List[SamplingResult],
                  semantic_feat: Optional[Tensor] = None) -> dict:
        """``HybridTaskCascadeRoIHead.bbox_loss`` plus ``loss_g_box`` in a generator
        pass."""
        return self.add_box_term(
            stage, self.bbox_head[stage], x, sampling_results,
            super().bbox_loss(stage=stage, x=x, sampling_results=sampling_results,
                              semantic_feat=semantic_feat))

    def mask_loss(self, stage: int, x: Tuple[Tensor], sampling_results: List[SamplingResult],
                  batch_gt_instances: InstanceList,
                  semantic_feat: Optional[Tensor] = None) -> dict:
        """``HybridTaskCascadeRoIHead.mask_loss`` plus ``loss_g_mask`` in a generator
        pass."""
        return self.add_mask_term(
            stage, self.mask_head[stage], self.train_cfg[stage], x, sampling_results,
            batch_gt_instances,
            super().mask_loss(stage=stage, x=x, sampling_results=sampling_results,
                              batch_gt_instances=batch_gt_instances,
                              semantic_feat=semantic_feat))
