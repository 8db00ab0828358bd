"""What the discriminators of GAN Mask R-CNN see, from the RoI sampler's output: the
positives they score (all, or a random subset per image), the box head's regression
of each, decoded (fake), and the ground-truth boxes of those positives, each box
once (real); and ``GeneratorPass``, which collects them during one generator forward.
"""
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

from mmdet.models.roi_heads.bbox_heads import BBoxHead
from mmdet.models.task_modules.samplers import SamplingResult

#: (kind, stage) -> the detached inputs of ``loss_discriminator`` of that kind.
DiscriminatorInputs = Dict[Tuple[str, int], Tuple[Tensor, ...]]


def decode_positive_boxes(bbox_head: BBoxHead, bbox_pred: Tensor,
                          sampling_results: List[SamplingResult]) -> List[Tensor]:
    """Decode the regression of the positive RoIs for their ground-truth class.

    Args:
        bbox_head (BBoxHead): The box head (its coder, class-agnostic or not).
        bbox_pred (Tensor): (N, 4 * num_classes) or (N, 4) deltas of all
            sampled RoIs, image by image, positives first within an image.
        sampling_results (list[SamplingResult]): One per image.

    Returns:
        list[Tensor]: Per image, (P_i, 4) boxes (x1, y1, x2, y2) in pixels of
        the network input, with gradients to ``bbox_pred``.
    """
    boxes, start = [], 0
    for res in sampling_results:
        num_pos = len(res.pos_priors)
        deltas = bbox_pred[start:start + num_pos]
        if not bbox_head.reg_class_agnostic:
            deltas = deltas.view(num_pos, bbox_pred.shape[1] // 4, 4)
            deltas = deltas[torch.arange(num_pos), res.pos_gt_labels]
        boxes.append(bbox_head.bbox_coder.decode(res.pos_priors, deltas))
        start += len(res.priors)
    return boxes


def distinct_gt_boxes(sampling_results: List[SamplingResult],
                       keep: List[Tensor]) -> Tuple[List[Tensor], Tensor]:
    """The ground-truth boxes of the kept positives, each box once.

    Several positives share a GT box; pooling and scoring it once per image
    (``BoxDiscriminator(real, index)``) gives the same result for less.

    Args:
        sampling_results (list[SamplingResult]): One per image.
        keep (list[Tensor]): Per image, (K_i,) long indices of the kept positives.

    Returns:
        tuple: Per image, (G_i, 4) distinct GT boxes of its kept positives,
        and (P,) long indices into their concatenation: the real box of
        each kept positive, in order.
    """
    boxes, index, offset = [], [], 0
    for res, k in zip(sampling_results, keep):
        distinct, inverse = torch.unique(res.pos_assigned_gt_inds[k],
                                         return_inverse=True)
        first = torch.empty(len(distinct), dtype=torch.long, device=inverse.device)
        first.scatter_(0, inverse, torch.arange(len(inverse), device=inverse.device))
        boxes.append(res.pos_gt_bboxes[k][first])
        index.append(inverse + offset)
        offset += len(distinct)
    return boxes, torch.cat(index)


def positive_subset(sampling_results: List[SamplingResult],
                    cap: Optional[int]) -> List[Tensor]:
    """Per image, the positives the discriminators see: all of them, or a random
    subset of at most ``cap`` (drawn from torch's generator, in sorted order).

    Args:
        sampling_results (list[SamplingResult]): One per image.
        cap (int, optional): Most positives per image; None keeps all.

    Returns:
        list[Tensor]: Per image, (K_i,) long indices into its positives.
    """
    keep = []
    for res in sampling_results:
        num_pos = len(res.pos_priors)
        idx = torch.arange(num_pos, device=res.pos_priors.device)
        if cap is not None and num_pos > cap:
            idx = torch.randperm(num_pos, device=idx.device)[:cap].sort().values
        keep.append(idx)
    return keep


def kept_rows(sampling_results: List[SamplingResult], keep: List[Tensor]) -> Tensor:
    """Rows of the kept positives in the concatenation of all images' positives
    (the order of the mask head's predictions and targets).

    Returns:
        Tensor: (K,) long indices.
    """
    rows, start = [], 0
    for res, k in zip(sampling_results, keep):
        rows.append(k + start)
        start += len(res.pos_priors)
    return torch.cat(rows)


class GeneratorPass:
    """One adversarial forward of the generator: the weight scale of its terms,
    the positives drawn for the discriminators (once per set of sampling results,
    shared by the box and mask terms) and the inputs kept for the discriminator step.

    Args:
        weight_scale (float): Factor on every ``loss_g_*`` (the schedule's ramp).
        max_rois_per_img (int, optional): Cap of ``positive_subset``.
    """

    def __init__(self, weight_scale: float, max_rois_per_img: Optional[int]) -> None:
        self.weight_scale = float(weight_scale)
        self.max_rois_per_img = max_rois_per_img
        self.inputs: DiscriminatorInputs = {}
        self._subsets: Dict[int, Tuple[List[SamplingResult], List[Tensor]]] = {}

    def positives(self, stage: int, sampling_results: List[SamplingResult]) -> List[Tensor]:
        """Per image, (K_i,) indices of the positives the discriminators see."""
        drawn = self._subsets.get(stage)
        if drawn is None or drawn[0] is not sampling_results:
            drawn = (sampling_results, positive_subset(sampling_results,
                                                       self.max_rois_per_img))
            self._subsets[stage] = drawn
        return drawn[1]

    def scaled(self, outputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """``outputs`` with its ``loss`` multiplied by the weight scale."""
        return {k: self.weight_scale * v if k == 'loss' else v for k, v in outputs.items()}
