"""The adversarial terms of GAN Mask R-CNN as one component for any mmdet two-stage
RoI head (``StandardRoIHead``, ``CascadeRoIHead``, ``HybridTaskCascadeRoIHead``).

``AdversarialRoIHeadMixin`` owns a box and/or a mask discriminator and the RoI
extractor of their inputs. A head class mixes it in and calls
``add_box_term``/``add_mask_term`` from its ``bbox_loss``/``mask_loss``. The head is
adversarial only inside ``generator_pass``, which the detector's generator step
opens around its forward; the pass collects the discriminators' detached inputs,
the detector hands them to ``discriminator_loss`` as an argument. Outside a pass
the head is its mmdet base: no adversarial term, nothing kept.
"""
import numbers
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from mmdet.models.roi_heads.bbox_heads import BBoxHead
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox2roi
from mmdet.utils import InstanceList, OptConfigType
from .discriminator_inputs import (DiscriminatorInputs, GeneratorPass,
                                   decode_positive_boxes, distinct_gt_boxes, kept_rows)
from .gradient_ratio import probe_gradient_ratio

#: Discriminator kind -> attribute of the head.
DISCRIMINATORS = {'box': 'box_discriminator', 'mask': 'mask_discriminator'}
#: (step, kind, output key of loss_generator / loss_discriminator) -> log name.
#: Multi-stage heads prefix a stage's names with ``s<stage>.``, as mmdet does.
LOG_NAMES = {
    ('g', 'box', 'loss'): 'loss_g_box',
    ('g', 'mask', 'loss'): 'loss_g_mask',
    ('g', 'mask', 'l1_input'): 'l1_g_mask_input',
    ('g', 'mask', 'l1_layers'): 'l1_g_mask_layers',
    ('d', 'box', 'loss'): 'loss_d_box',
    ('d', 'box', 'acc_real'): 'acc_d_box_real',
    ('d', 'box', 'acc_fake'): 'acc_d_box_fake',
    ('d', 'mask', 'loss'): 'loss_d_mask',
    ('d', 'mask', 'dist'): 'dist_d_mask',
    ('drift', 'box', None): 'drift_d_box',
    ('drift', 'mask', None): 'drift_d_mask',
    ('grad_ratio', 'box', None): 'grad_ratio_g_box',
    ('grad_ratio', 'mask', None): 'grad_ratio_g_mask',
}
Stages = Union[str, Sequence[int]]


def _zero_loss(*tensors: Tensor) -> Tensor:
    """A zero scalar connected to the graph of ``tensors`` (no positives)."""
    return sum(t.sum() for t in tensors) * 0


class AdversarialRoIHeadMixin:
    """A box and/or a mask discriminator for an mmdet two-stage RoI head.

    Args:
        box_discriminator (dict, optional): e.g. ``dict(type='BoxDiscriminator')``.
        mask_discriminator (dict, optional): e.g. ``dict(type='MaskDiscriminator')``.
            At least one is required.
        disc_roi_extractor (dict): RoI extractor pooling the discriminators' 28x28
            inputs from the detached FPN features; it must pass gradients to the box
            coordinates, e.g. ``dict(type='PrRoIExtractor', ...)``.
        max_disc_rois_per_img (int, optional): Feed the discriminators a random
            subset of at most this many positives per image; None (default) feeds
            every positive, as the thesis.
        box_stages (str or list[int]): Stages whose boxes get the box term:
            ``'last'`` (default), ``'all'`` or stage indices. A cascade's output
            boxes are its last stage's regression; the earlier stages only propose
            boxes that the next stage regresses again, so ``'last'`` puts the term
            where the thesis puts it (on the output boxes) at a third of the cost.
        mask_stages (str or list[int]): Stages whose masks get the mask term:
            ``'all'`` (default), ``'last'`` or stage indices. A cascade's (and
            HTC's) output mask is the mean of every stage's mask logits, so each
            mask head shapes it.
        **kwargs: Arguments of the RoI head.

    In a multi-stage head every stage's adversarial terms carry its
    ``stage_loss_weights`` (mmdet weights every loss of a stage so), one
    discriminator of each kind scores every stage's samples, and its loss is the
    mean over its stages (the same step size as with one stage).
    """

    def __init__(self, box_discriminator: OptConfigType = None,
                 mask_discriminator: OptConfigType = None,
                 disc_roi_extractor: OptConfigType = None,
                 max_disc_rois_per_img: Optional[int] = None,
                 box_stages: Stages = 'last', mask_stages: Stages = 'all', **kwargs) -> None:
        name = type(self).__name__
        if max_disc_rois_per_img is not None and (
                isinstance(max_disc_rois_per_img, bool)
                or not isinstance(max_disc_rois_per_img, numbers.Integral)
                or max_disc_rois_per_img < 1):
            raise ValueError('max_disc_rois_per_img must be None (every positive) or an '
                             f'integer >= 1, got {max_disc_rois_per_img!r}')
        if box_discriminator is None and mask_discriminator is None:
            raise ValueError(
                f'{name} needs at least one discriminator: set '
                "box_discriminator=dict(type='BoxDiscriminator') and/or "
                "mask_discriminator=dict(type='MaskDiscriminator'), or use the plain "
                'RoI head for the plain detector')
        if disc_roi_extractor is None:
            raise ValueError(
                f"{name} needs disc_roi_extractor, e.g. dict(type='PrRoIExtractor', "
                "roi_layer=dict(type='PrRoIPool', output_size=28), out_channels=256, "
                "featmap_strides=[4, 8, 16, 32], level_mode='max')")
        super().__init__(**kwargs)
        if mask_discriminator is not None and not self.with_mask:
            raise ValueError(f'mask_discriminator needs a mask_head, got mask_head=None in '
                             f'{name}: drop mask_discriminator or add a mask head')
        stages = list(range(getattr(self, 'num_stages', 1)))
        self.box_stages = self._stage_list('box_stages', box_stages, stages)
        self.mask_stages = self._stage_list('mask_stages', mask_stages, stages)
        # The discriminators draw their first weights from a forked random stream,
        # here and in init_weights: the detector's weights and every later random
        # draw are then those of the plain detector with the same seed (paired runs).
        with torch.random.fork_rng(devices=[]):
            self.box_discriminator = (MODELS.build(box_discriminator)
                                      if box_discriminator is not None else None)
            self.mask_discriminator = (MODELS.build(mask_discriminator)
                                       if mask_discriminator is not None else None)
        self.disc_roi_extractor = MODELS.build(disc_roi_extractor)
        self.max_disc_rois_per_img = max_disc_rois_per_img
        self._generator_pass: Optional[GeneratorPass] = None

    def _stage_list(self, key: str, value: Stages, stages: List[int]) -> Tuple[int, ...]:
        """Resolve ``'all'``, ``'last'`` or a list of stage indices of this head."""
        if value == 'all':
            return tuple(stages)
        if value == 'last':
            return (stages[-1], )
        if isinstance(value, (list, tuple)) and value and len(set(value)) == len(value) \
                and all(isinstance(s, int) and not isinstance(s, bool) and s in stages
                        for s in value):
            return tuple(sorted(value))
        raise ValueError(f"{key} must be 'all', 'last' or distinct stage indices in {stages} "
                         f'({type(self).__name__} has {len(stages)} stage(s)), got {value!r}')

    def init_weights(self) -> None:
        """Initialise the discriminators from a forked random stream, then the rest
        as the RoI head, so that the random state the rest sees is the one it sees
        in the plain detector with the same seed."""
        with torch.random.fork_rng(devices=[]):
            for disc in self.discriminators():
                disc.init_weights()
        super().init_weights()

    def discriminator_names(self) -> List[str]:
        """Attribute names of the discriminators this head has."""
        return [name for name in DISCRIMINATORS.values() if getattr(self, name) is not None]

    def discriminators(self) -> List[nn.Module]:
        """The discriminator modules this head has."""
        return [getattr(self, name) for name in self.discriminator_names()]

    @contextmanager
    def generator_pass(self, weight_scale: float) -> Iterator[GeneratorPass]:
        """Within the context ``loss`` adds the adversarial terms, scaled by
        ``weight_scale``, and the yielded pass collects the discriminators' inputs."""
        if self._generator_pass is not None:
            raise RuntimeError('generator_pass contexts do not nest')
        self._generator_pass = GeneratorPass(weight_scale, self.max_disc_rois_per_img)
        try:
            yield self._generator_pass
        finally:
            self._generator_pass = None

    def _log_name(self, step: str, kind: str, key: Optional[str], stage: int) -> str:
        """The table's name, ``s<stage>.`` prefixed in a multi-stage head."""
        name = LOG_NAMES[(step, kind, key)]
        return f's{stage}.{name}' if hasattr(self, 'num_stages') else name

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

    def add_box_term(self, stage: int, bbox_head: BBoxHead, x: Tuple[Tensor],
                     sampling_results: List[SamplingResult], bbox_results: dict) -> dict:
        """Add ``loss_g_box`` of ``stage`` to ``bbox_results['loss_bbox']`` inside a
        generator pass (when this stage carries the box term); else leave it."""
        gen_pass = self._generator_pass
        if gen_pass is None or self.box_discriminator is None or stage not in self.box_stages:
            return bbox_results
        bbox_pred = bbox_results['bbox_pred']
        keep = gen_pass.positives(stage, sampling_results)
        adv_pred = probe_gradient_ratio(bbox_pred, self._log_name('grad_ratio', 'box', None,
                                                                  stage))
        fake_boxes = [boxes[k] for boxes, k in zip(
            decode_positive_boxes(bbox_head, adv_pred, sampling_results), keep)]
        if sum(len(b) for b in fake_boxes) == 0:
            outputs = dict(loss=_zero_loss(bbox_pred))
        else:
            fake = self._pool(x, fake_boxes)
            with torch.no_grad():
                real_boxes, real_index = distinct_gt_boxes(sampling_results, keep)
                real = self._pool(x, real_boxes)
            gen_pass.inputs[('box', stage)] = (real, fake.detach(), real_index)
            outputs = gen_pass.scaled(self.box_discriminator.loss_generator(
                fake, real, real_index))
        # a multi-stage head's loss prefixes (and weights) its stage's entries itself
        bbox_results['loss_bbox'].update(
            {LOG_NAMES[('g', 'box', k)]: v for k, v in outputs.items()})
        return bbox_results

    def add_mask_term(self, stage: int, mask_head: nn.Module, rcnn_train_cfg: dict,
                      x: Tuple[Tensor], sampling_results: List[SamplingResult],
                      batch_gt_instances: InstanceList, mask_results: dict) -> dict:
        """Add ``loss_g_mask`` of ``stage`` to ``mask_results['loss_mask']`` inside a
        generator pass (when this stage carries the mask term); else leave it."""
        gen_pass = self._generator_pass
        if gen_pass is None or self.mask_discriminator is None \
                or stage not in self.mask_stages:
            return mask_results
        mask_pred = mask_results['mask_preds']
        if len(mask_pred) == 0:
            outputs = dict(loss=_zero_loss(mask_pred))
        else:
            mask_pred = probe_gradient_ratio(
                mask_pred, self._log_name('grad_ratio', 'mask', None, stage))
            keep = gen_pass.positives(stage, sampling_results)
            # mask_pred and the targets hold the positives of all images in order.
            rows = kept_rows(sampling_results, keep)
            labels = torch.cat([res.pos_gt_labels for res in sampling_results])[rows]
            if mask_head.class_agnostic:
                labels = torch.zeros_like(labels)
            fake_mask = mask_pred[rows, labels].sigmoid()[:, None]
            real_mask = mask_head.get_targets(
                sampling_results, batch_gt_instances, rcnn_train_cfg)[rows, None]
            with torch.no_grad():
                feats = self._pool(x, [res.pos_priors[k]
                                       for res, k in zip(sampling_results, keep)])
            if feats.shape[-2:] != fake_mask.shape[-2:]:
                raise ValueError(f'disc_roi_extractor output {tuple(feats.shape[-2:])} must '
                                 f'match the mask size {tuple(fake_mask.shape[-2:])}')
            gen_pass.inputs[('mask', stage)] = (feats, real_mask, fake_mask.detach())
            outputs = gen_pass.scaled(self.mask_discriminator.loss_generator(
                feats, real_mask, fake_mask))
        mask_results['loss_mask'].update(
            {LOG_NAMES[('g', 'mask', k)]: v for k, v in outputs.items()})
        return mask_results

    def discriminator_loss(self, inputs: DiscriminatorInputs) -> Dict[str, Tensor]:
        """Discriminator losses on the inputs of a generator pass.

        Args:
            inputs (dict): ``GeneratorPass.inputs`` of the generator step.

        Returns:
            dict[str, Tensor]: Per adversarial stage (``s<stage>.`` prefixed in a
            multi-stage head) ``loss_d_box``, ``acc_d_box_real``, ``acc_d_box_fake``
            and ``loss_d_mask``, ``dist_d_mask`` (the real/fake distance the critic
            maximises), each loss weighted by its discriminator's ``d_loss_weight``
            and divided by its number of stages; ``drift_d_box``/``drift_d_mask``,
            ``||theta_D - theta_D(0)||``. A stage without positives gives a zero
            loss connected to the discriminator's parameters and no accuracy.
        """
        losses = {}
        for kind, name in DISCRIMINATORS.items():
            disc = getattr(self, name)
            if disc is None:
                continue
            stages = self.box_stages if kind == 'box' else self.mask_stages
            for stage in stages:
                if (kind, stage) in inputs:
                    outputs = disc.loss_discriminator(*inputs[(kind, stage)])
                else:
                    outputs = dict(loss=_zero_loss(*disc.parameters()))
                if len(stages) > 1:
                    outputs['loss'] = outputs['loss'] / len(stages)
                losses.update({self._log_name('d', kind, k, stage): v
                               for k, v in outputs.items()})
            losses[LOG_NAMES[('drift', kind, None)]] = disc.param_drift()
        return losses
