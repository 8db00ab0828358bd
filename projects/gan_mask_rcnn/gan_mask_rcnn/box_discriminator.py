"""Box discriminator of GAN Mask R-CNN (thesis section 3.2.1, Figure 3-1).

Scores the 28x28 FPN features of a box, pooled with PrRoIPool: ground-truth boxes
are real, boxes decoded from the box head's regression are fake. Its generator
loss reaches ``bbox_pred`` through the box coordinates of the pooling.
"""
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptMultiConfig
from .discriminator_utils import (build_conv_stack, check_roi_features,
                                  conv_output_size)


@MODELS.register_module()
class BoxDiscriminator(BaseModule):
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
        loss_weight (float): Weight of the generator term ``L_G`` in the
            detector's loss (0.025 in the author's code). ``L_D`` is unweighted.
        norm_cfg (dict): Norm layer config. Defaults to BN.
        act_cfg (dict): Activation config. Defaults to LeakyReLU(0.2).
        init_cfg (dict or list[dict], optional): Initialization config.
    """

    def __init__(self,
                 in_channels: int = 256,
                 roi_size: int = 28,
                 channels: Sequence[int] = (64, 64, 128, 128, 128),
                 strides: Sequence[int] = (2, 2, 2, 1, 1),
                 loss_weight: float = 0.025,
                 norm_cfg: ConfigType = dict(type='BN'),
                 act_cfg: ConfigType = dict(type='LeakyReLU', negative_slope=0.2),
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if loss_weight < 0:
            raise ValueError(f'loss_weight must be >= 0, got {loss_weight}')
        self.in_channels = in_channels
        self.roi_size = roi_size
        self.loss_weight = loss_weight
        self.convs = build_conv_stack(in_channels, roi_size, channels, strides,
                                      norm_cfg, act_cfg)
        size = roi_size
        for stride in strides:
            size = conv_output_size(size, stride)
        self.fc = nn.Linear(channels[-1] * size * size, 1)

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
            if first.order != ('conv', 'norm', 'act'):
                raise ValueError(f"index needs conv layers ordered ('conv', 'norm', "
                                 f"'act'), got {first.order}")
            # index_select, not x[index]: the backward of advanced indexing adds
            # repeated rows with parallel atomics on CPU (run-to-run last bits)
            x = first.conv(x).index_select(0, index)
            if first.with_norm:
                x = first.norm(x)
            if first.with_activation:
                x = first.activate(x)
        for conv in convs:
            x = conv(x)
        return self.fc(x.flatten(1)).squeeze(1)

    def loss_generator(self, fake: Tensor) -> Tensor:
        """Unweighted generator loss ``mean(-log D(fake))`` (eq. 3.2).

        Args:
            fake (Tensor): Features of predicted boxes, (N, C, S, S), N >= 1.

        Returns:
            Tensor: Scalar loss.
        """
        logits = self(fake)
        return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))

    def loss_discriminator(self, real: Tensor, fake: Tensor,
                           real_index: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Discriminator loss (eq. 3.3) and D's accuracy on each side.

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
        real_logits = self(real, real_index)
        fake_logits = self(fake)
        loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                + F.binary_cross_entropy_with_logits(fake_logits,
                                                     torch.zeros_like(fake_logits)))
        return dict(loss=loss,
                    acc_real=(real_logits.detach() > 0).float().mean(),
                    acc_fake=(fake_logits.detach() < 0).float().mean())
