"""Box discriminator of GAN Mask R-CNN (thesis section 3.2.1, Figure 3-1).

Scores the 28x28 FPN features of a box, pooled with PrRoIPool: ground-truth boxes
are real, boxes decoded from the box head's regression are fake. Its generator
loss reaches ``bbox_pred`` through the box coordinates of the pooling.
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptMultiConfig
from .base_discriminator import BaseDiscriminator
from .discriminator_utils import (build_conv_stack, check_roi_features,
                                  conv_output_size, finish_conv_module)


@MODELS.register_module()
class BoxDiscriminator(BaseDiscriminator):
    """Five conv layers (BN + LeakyReLU each) and a linear layer giving one logit.

    Losses (thesis eq. 3.2 and 3.3), with ``D = sigmoid(logit)``:
    ``L_G = mean(-log D(fake))`` and ``L_D = mean(-log D(real)) +
    mean(-log(1 - D(fake)))``, both computed with BCE-with-logits.

    Args:
        in_channels (int): Channels of the pooled FPN features. Defaults to 256.
        roi_size (int): Side of the pooled features. Defaults to 28.
        channels (Sequence[int]): Output channels of the five conv layers.
        strides (Sequence[int]): Their strides; the defaults go 28 -> 14 -> 7 -> 4
            and keep 4x4 so that BatchNorm has several values per channel even
            for a single box.
        loss_weight (float): Weight of ``L_G`` in the detector's loss (0.025 in
            the author's code).
        d_loss_weight (float): Weight of ``L_D``. Defaults to 1 (unweighted);
            the author's code uses 0.025. See ``BaseDiscriminator``.
        joint_norm (bool): Score real and fake boxes in one forward (shared
            BatchNorm statistics). Defaults to False. See ``BaseDiscriminator``.
        norm_cfg (dict, optional): Norm layer config. Defaults to BN;
            ``dict(type='GN', num_groups=16)`` or None (no norm) also work.
        act_cfg (dict): Activation config. Defaults to LeakyReLU(0.2).
        init_cfg (dict or list[dict], optional): Initialization config.
    """

    def __init__(self,
                 in_channels: int = 256,
                 roi_size: int = 28,
                 channels: Sequence[int] = (64, 64, 128, 128, 128),
                 strides: Sequence[int] = (2, 2, 2, 1, 1),
                 loss_weight: float = 0.025,
                 d_loss_weight: float = 1.0,
                 joint_norm: bool = False,
                 norm_cfg: Optional[ConfigType] = dict(type='BN'),
                 act_cfg: ConfigType = dict(type='LeakyReLU', negative_slope=0.2),
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(loss_weight, d_loss_weight, joint_norm, init_cfg)
        self.in_channels = in_channels
        self.roi_size = roi_size
        self.convs = build_conv_stack(in_channels, roi_size, channels, strides,
                                      norm_cfg, act_cfg)
        size = roi_size
        for stride in strides:
            size = conv_output_size(size, stride)
        self.fc = nn.Linear(channels[-1] * size * size, 1)
        self.reset_param_drift()

    def forward(self, x: Tensor, index: Optional[Tensor] = None) -> Tensor:
        """Score RoI features.

        Args:
            x (Tensor): RoI features, shape (N, in_channels, roi_size, roi_size).
            index (Tensor, optional): (M,) long indices into ``x``: score
                ``x[index]`` without building it. The first conv runs on the N
                distinct inputs and its output is gathered before BatchNorm, so
                the result equals ``forward(x[index])`` (batch statistics
                included) at a fraction of the cost when rows repeat, e.g. the
                ground-truth box of several positives.

        Returns:
            Tensor: Logits, shape (N,) or (M,); ``sigmoid(logit)`` is D's
            probability that the box is a ground-truth box.
        """
        check_roi_features(x, self.in_channels, self.roi_size, 'BoxDiscriminator')
        convs = iter(self.convs)
        if index is not None:
            first = next(convs)
            # index_select, not x[index]: the backward of advanced indexing adds
            # repeated rows with parallel atomics on CPU (run-to-run last bits)
            x = finish_conv_module(first, first.conv(x).index_select(0, index),
                                   'BoxDiscriminator(x, index)')
        for conv in convs:
            x = conv(x)
        return self.fc(x.flatten(1)).squeeze(1)

    def _score(self, real: Optional[Tensor], fake: Tensor,
               real_index: Optional[Tensor]) -> Tuple[Optional[Tensor], Tensor]:
        """Logits of the real (``real[real_index]``) and the fake boxes; in one
        forward on their concatenation when ``joint_norm``. Real logits: None
        when ``real`` is None (the generator's step without ``joint_norm``)."""
        if not self.joint_norm:
            return (None if real is None else self(real, real_index)), self(fake)
        if real is None:
            raise ValueError('BoxDiscriminator(joint_norm=True) scores fake boxes '
                             'together with real ones: pass real')
        if real_index is None:
            real_index = torch.arange(len(real), device=real.device)
        index = torch.cat([real_index, len(real) + torch.arange(len(fake),
                                                                device=real.device)])
        logits = self(torch.cat([real, fake]), index)
        return logits[:len(real_index)], logits[len(real_index):]

    def loss_generator(self, fake: Tensor, real: Optional[Tensor] = None,
                       real_index: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Generator loss ``loss_weight * mean(-log D(fake))`` (eq. 3.2).

        Args:
            fake (Tensor): Features of predicted boxes, (M, C, S, S), M >= 1.
            real (Tensor, optional): Features of ground-truth boxes, (N, C, S, S);
                needed with ``joint_norm`` only (their logits are not used).
            real_index (Tensor, optional): (M,) long, as in ``loss_discriminator``.

        Returns:
            dict[str, Tensor]: ``loss``, a scalar.
        """
        _, logits = self._score(real if self.joint_norm else None, fake, real_index)
        loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        return dict(loss=self.loss_weight * loss)

    def loss_discriminator(self, real: Tensor, fake: Tensor,
                           real_index: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Discriminator loss ``d_loss_weight * L_D`` (eq. 3.3) and D's accuracy.

        Args:
            real (Tensor): Features of ground-truth boxes, (N, C, S, S), N >= 1.
            fake (Tensor): Features of predicted boxes, (M, C, S, S), detached.
            real_index (Tensor, optional): (M,) long: the real input of fake
                box i is ``real[real_index[i]]`` (positives that share a GT box
                share its features); None: ``real`` is (M, C, S, S) already.

        Returns:
            dict[str, Tensor]: ``loss`` (scalar), ``acc_real`` (fraction of real
            boxes with D > 0.5) and ``acc_fake`` (fraction of fake with D < 0.5).
        """
        real_logits, fake_logits = self._score(real, fake, real_index)
        loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                + F.binary_cross_entropy_with_logits(fake_logits,
                                                     torch.zeros_like(fake_logits)))
        return dict(loss=self.d_loss_weight * loss,
                    acc_real=(real_logits.detach() > 0).float().mean(),
                    acc_fake=(fake_logits.detach() < 0).float().mean())
