"""RoI head of GAN Mask R-CNN: Mask R-CNN's head plus the two discriminators.

In training, ``loss`` adds the generator's adversarial terms (``loss_g_box``,
``loss_g_mask``) to Mask R-CNN's losses and keeps the discriminators' inputs,
detached, for the discriminator step that follows (``discriminator_loss``), so
that step needs no second forward of the detector. In test mode the head is
exactly ``StandardRoIHead``: the discriminators are never run.
"""
import numbers
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Tuple

import torch
from torch import Tensor, nn

from mmdet.models.roi_heads import StandardRoIHead
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox2roi
from mmdet.utils import InstanceList, OptConfigType
from .discriminator_inputs import decode_positive_boxes, distinct_gt_boxes
from .gradient_ratio import probe_gradient_ratio

DISCRIMINATORS = ('box_discriminator', 'mask_discriminator')


def _zero_loss(*tensors: Tensor) -> Tensor:
    """A zero scalar connected to the graph of ``tensors`` (no positives)."""
    return sum(t.sum() for t in tensors) * 0


def _log_names(outputs: Dict[str, Tensor], step: str, kind: str) -> Dict[str, Tensor]:
    """Name a discriminator's outputs for the log: with ``step='d'`` and
    ``kind='box'``, ``loss`` -> ``loss_d_box``, ``acc_real`` -> ``acc_d_box_real``."""
    names = {}
    for key, value in outputs.items():
        what, _, part = key.partition('_')
        names['_'.join(filter(None, (what, step, kind, part)))] = value
    return names


@MODELS.register_module()
class GANRoIHead(StandardRoIHead):
    """``StandardRoIHead`` with a box and/or a mask discriminator.

    Args:
        box_discriminator (dict, optional): Config of the box discriminator,
            e.g. ``dict(type='BoxDiscriminator')``.
        mask_discriminator (dict, optional): Config of the mask discriminator,
            e.g. ``dict(type='MaskDiscriminator')``. At least one is required.
        disc_roi_extractor (dict): RoI extractor pooling the discriminators'
            28x28 inputs from the (detached) FPN features; it must pass gradients
            to the box coordinates, e.g. ``dict(type='PrRoIExtractor', ...)``.
        max_disc_rois_per_img (int, optional): Feed the discriminators a random
            subset of at most this many positive RoIs per image (both the
            generator and the discriminator terms). Their cost grows with the
            number of RoIs; ``None`` (default) uses every positive, as the thesis.
        **kwargs: Arguments of ``StandardRoIHead``.

    Besides the losses, training logs instruments that show whether the
    discriminators learn: ``l1_g_mask_input`` and ``l1_g_mask_layers`` (the mask
    critic's unweighted ``L_G`` = the parameter-free feature-weighted L1 between
    the masks + the learned layers' term), ``drift_d_box`` and ``drift_d_mask``
    (``||theta_D - theta_D(0)||``), and ``grad_ratio_g_box`` / ``grad_ratio_g_mask``
    (``||d loss_g_box / d bbox_pred|| / ||d loss_bbox / d bbox_pred||``, the same
    for ``loss_g_mask`` / ``loss_mask`` on the mask logits). The ratios exist only
    after the backward, so they go to the MessageHub, not into the loss dict.
    """

    def __init__(self,
                 box_discriminator: OptConfigType = None,
                 mask_discriminator: OptConfigType = None,
                 disc_roi_extractor: OptConfigType = None,
                 max_disc_rois_per_img: Optional[int] = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if max_disc_rois_per_img is not None and (
                isinstance(max_disc_rois_per_img, bool)
                or not isinstance(max_disc_rois_per_img, numbers.Integral)
                or max_disc_rois_per_img < 1):
            raise ValueError('max_disc_rois_per_img must be None (every positive) or an '
                             f'integer >= 1, got {max_disc_rois_per_img!r}')
        if box_discriminator is None and mask_discriminator is None:
            raise ValueError(
                'GANRoIHead needs at least one discriminator: set '
                "box_discriminator=dict(type='BoxDiscriminator') and/or "
                "mask_discriminator=dict(type='MaskDiscriminator'), or use "
                "type='StandardRoIHead' for plain Mask R-CNN")
        if mask_discriminator is not None and not self.with_mask:
            raise ValueError('mask_discriminator needs a mask_head, got mask_head=None')
        if disc_roi_extractor is None:
            raise ValueError(
                "GANRoIHead needs disc_roi_extractor, e.g. dict(type='PrRoIExtractor', "
                "roi_layer=dict(type='PrRoIPool', output_size=28), out_channels=256, "
                "featmap_strides=[4, 8, 16, 32], level_mode='max')")
        # The discriminators draw their first weights from a forked random stream,
        # here and in init_weights: the detector's weights and every later random
        # draw are then those of the baseline with the same seed (paired runs).
        with torch.random.fork_rng(devices=[]):
            self.box_discriminator = (MODELS.build(box_discriminator)
                                      if box_discriminator is not None else None)
            self.mask_discriminator = (MODELS.build(mask_discriminator)
                                       if mask_discriminator is not None else None)
        self.disc_roi_extractor = MODELS.build(disc_roi_extractor)
        self.max_disc_rois_per_img = max_disc_rois_per_img
        self.adversarial = True
        self.adv_weight_scale = 1.0
        self._disc_inputs: Optional[Dict[str, Tuple[Tensor, ...]]] = None
        self._disc_keep: Optional[List[Tensor]] = None

    def init_weights(self) -> None:
        """Initialise the discriminators from a forked random stream, then the rest
        as ``StandardRoIHead``, so that the random state the rest sees is the one
        it sees in Mask R-CNN with the same seed."""
        with torch.random.fork_rng(devices=[]):
            for disc in self.discriminators():
                disc.init_weights()
        super().init_weights()

    def discriminator_names(self) -> List[str]:
        """Attribute names of the discriminators this head has."""
        return [name for name in DISCRIMINATORS if getattr(self, name) is not None]

    def discriminators(self) -> List[nn.Module]:
        """The discriminator modules this head has."""
        return [getattr(self, name) for name in self.discriminator_names()]

    @contextmanager
    def gan_schedule(self, adversarial: bool, adv_weight_scale: float) -> Iterator[None]:
        """Within the context ``loss`` is adversarial or not, with the adversarial
        terms scaled by ``adv_weight_scale``; the detector's ``train_step`` passes
        its schedule this way. Outside, the head keeps its own values."""
        before = self.adversarial, self.adv_weight_scale
        self.adversarial, self.adv_weight_scale = bool(adversarial), float(adv_weight_scale)
        try:
            yield
        finally:
            self.adversarial, self.adv_weight_scale = before

    def loss(self, x: Tuple[Tensor], rpn_results_list: InstanceList,
             batch_data_samples: SampleList) -> dict:
        """Mask R-CNN losses, plus ``loss_g_box``/``loss_g_mask`` when adversarial.

        Also keeps the discriminators' detached inputs for ``discriminator_loss``.
        """
        self._disc_inputs = {} if self.adversarial else None
        self._disc_keep = None
        return super().loss(x, rpn_results_list, batch_data_samples)

    def _disc_subset(self, sampling_results: List[SamplingResult]) -> List[Tensor]:
        """Per image, indices of the positives the discriminators see.

        A random subset of at most ``max_disc_rois_per_img`` positives, drawn
        once per iteration and shared by the box and the mask terms.

        Returns:
            list[Tensor]: Per image, (K_i,) long indices into its positives.
        """
        if self._disc_keep is None:
            keep = []
            for res in sampling_results:
                num_pos = len(res.pos_priors)
                cap = self.max_disc_rois_per_img
                idx = torch.arange(num_pos, device=res.pos_priors.device)
                if cap is not None and num_pos > cap:
                    idx = torch.randperm(num_pos, device=idx.device)[:cap].sort().values
                keep.append(idx)
            self._disc_keep = keep
        return self._disc_keep

    def _pool(self, x: Tuple[Tensor], boxes: List[Tensor]) -> Tensor:
        """Pool (K, C, S, S) discriminator inputs from detached FPN features.

        Args:
            x (tuple[Tensor]): FPN features, each (B, C, H, W).
            boxes (list[Tensor]): Per image, (K_i, 4) boxes (x1, y1, x2, y2) in
                pixels of the network input; gradients flow to them.
        """
        feats = tuple(f.detach() for f in x[:self.disc_roi_extractor.num_inputs])
        # channels-last: the discriminators' first convolutions (256 channels at
        # 28x28, most of their work) run about 2.5x faster so on CPU, where the
        # level_mode='max' kernel writes it directly (elsewhere this converts)
        return self.disc_roi_extractor(feats, bbox2roi(boxes)).contiguous(
            memory_format=torch.channels_last)

    def bbox_loss(self, x: Tuple[Tensor],
                  sampling_results: List[SamplingResult]) -> dict:
        """``StandardRoIHead.bbox_loss`` plus the box generator term ``loss_g_box``."""
        bbox_results = super().bbox_loss(x, sampling_results)
        if self._disc_inputs is None or self.box_discriminator is None:
            return bbox_results
        bbox_pred = bbox_results['bbox_pred']
        keep = self._disc_subset(sampling_results)
        adv_pred = probe_gradient_ratio(bbox_pred, 'grad_ratio_g_box')
        fake_boxes = [boxes[k] for boxes, k in zip(
            decode_positive_boxes(self.bbox_head, adv_pred, sampling_results), keep)]
        if sum(len(b) for b in fake_boxes) == 0:
            losses = dict(loss_g_box=_zero_loss(bbox_pred))
        else:
            fake = self._pool(x, fake_boxes)
            with torch.no_grad():
                real_boxes, real_index = distinct_gt_boxes(sampling_results, keep)
                real = self._pool(x, real_boxes)
            self._disc_inputs['box'] = (real, fake.detach(), real_index)
            losses = self._scaled(_log_names(self.box_discriminator.loss_generator(
                fake, real, real_index), 'g', 'box'))
        bbox_results['loss_bbox'].update(losses)
        return bbox_results

    def _scaled(self, losses: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Multiply the ``loss_*`` entries by the adversarial weight scale (the
        ramp), leaving the logged values as they are."""
        return {k: self.adv_weight_scale * v if k.startswith('loss') else v
                for k, v in losses.items()}

    def mask_loss(self, x: Tuple[Tensor], sampling_results: List[SamplingResult],
                  bbox_feats: Tensor, batch_gt_instances: InstanceList) -> dict:
        """``StandardRoIHead.mask_loss`` plus the mask generator term ``loss_g_mask``."""
        mask_results = super().mask_loss(x, sampling_results, bbox_feats,
                                         batch_gt_instances)
        if self._disc_inputs is None or self.mask_discriminator is None:
            return mask_results
        mask_pred = mask_results['mask_preds']
        if len(mask_pred) == 0:
            losses = dict(loss_g_mask=_zero_loss(mask_pred))
        else:
            mask_pred = probe_gradient_ratio(mask_pred, 'grad_ratio_g_mask')
            keep = self._disc_subset(sampling_results)
            # mask_pred and the targets hold the positives of all images in order.
            rows, start = [], 0
            for res, k in zip(sampling_results, keep):
                rows.append(k + start)
                start += len(res.pos_priors)
            rows = torch.cat(rows)
            labels = torch.cat([res.pos_gt_labels for res in sampling_results])[rows]
            if self.mask_head.class_agnostic:
                labels = torch.zeros_like(labels)
            fake_mask = mask_pred[rows, labels].sigmoid()[:, None]
            real_mask = self.mask_head.get_targets(
                sampling_results, batch_gt_instances, self.train_cfg)[rows, None]
            with torch.no_grad():
                feats = self._pool(x, [res.pos_priors[k]
                                       for res, k in zip(sampling_results, keep)])
            if feats.shape[-2:] != fake_mask.shape[-2:]:
                raise ValueError(f'disc_roi_extractor output {tuple(feats.shape[-2:])} must '
                                 f'match the mask size {tuple(fake_mask.shape[-2:])}')
            self._disc_inputs['mask'] = (feats, real_mask, fake_mask.detach())
            losses = self._scaled(_log_names(self.mask_discriminator.loss_generator(
                feats, real_mask, fake_mask), 'g', 'mask'))
        mask_results['loss_mask'].update(losses)
        return mask_results

    def discriminator_loss(self) -> Dict[str, Tensor]:
        """Discriminator losses on the inputs kept by the last adversarial ``loss``.

        Returns:
            dict[str, Tensor]: ``loss_d_box``, ``acc_d_box_real``,
            ``acc_d_box_fake`` (box D) and ``loss_d_mask``, ``dist_d_mask``
            (mask critic: the real/fake distance it maximises), each loss
            weighted by its discriminator's ``d_loss_weight``; ``drift_d_box``
            and ``drift_d_mask``, each discriminator's ``||theta_D - theta_D(0)||``.
            Without positive samples the losses are zeros connected to the
            discriminators' parameters and no accuracy or distance is reported.
        """
        if self._disc_inputs is None:
            raise RuntimeError('discriminator_loss needs a preceding adversarial loss() '
                               'call (within gan_schedule(adversarial=True, ...))')
        losses = {}
        for name, disc in zip(self.discriminator_names(), self.discriminators()):
            kind = name.split('_')[0]
            if kind in self._disc_inputs:
                outputs = disc.loss_discriminator(*self._disc_inputs[kind])
            else:
                outputs = dict(loss=_zero_loss(*disc.parameters()))
            losses.update(_log_names(outputs, 'd', kind))
            losses[f'drift_d_{kind}'] = disc.param_drift()
        return losses

    def clear_discriminator_inputs(self) -> None:
        """Drop the kept discriminator inputs (frees memory between iterations)."""
        self._disc_inputs = None
