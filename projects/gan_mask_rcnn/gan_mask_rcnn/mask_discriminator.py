"""Mask discriminator (SegAN-style critic) of GAN Mask R-CNN (thesis section 3.2.2).

Takes a mask multiplied element-wise with the 28x28 RoI features of its box (fake:
``sigmoid`` of the mask logits of the ground-truth class; real: the mask target),
and returns the input and the outputs of its five conv layers, flattened, weighted
and concatenated. The generator makes the real and fake vectors close in L1, the
critic pushes them apart (eq. 3.4, ``L_D = -L_G``).
"""
from typing import List, Optional, Sequence

import torch
from mmengine.model import BaseModule
from torch import Tensor

from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptMultiConfig
from .discriminator_utils import build_conv_stack, check_roi_features, masked_conv


@MODELS.register_module()
class MaskDiscriminator(BaseModule):
    """SegAN critic: five conv layers (BN + LeakyReLU each), shrinking resolution.

    ``L_G`` is the mean absolute difference between the real and fake vectors,
    i.e. eq. 3.4 divided by the vector length (as in the author's code, whose
    generator weight 0.5 assumes this normalisation).

    Args:
        in_channels (int): Channels of the RoI features. Defaults to 256.
        roi_size (int): Side of the masks and RoI features. Defaults to 28.
        channels (Sequence[int]): Output channels of the five conv layers.
        strides (Sequence[int]): Their strides; the defaults go 28 -> 14 -> 7 ->
            4 -> 2 -> 2 (a 1x1 last layer would break BatchNorm for one RoI).
        layer_weights (Sequence[float]): Weights of the input and of each layer's
            output in the concatenation, ``len(channels) + 1`` values. Defaults to
            the author's ``(1, 1, 2, 2, 2, 4)``.
        loss_weight (float): Weight of the generator term ``L_G`` in the
            detector's loss (0.5 in the author's code). ``L_D`` is unweighted.
        norm_cfg (dict): Norm layer config. Defaults to BN.
        act_cfg (dict): Activation config. Defaults to LeakyReLU(0.2).
        init_cfg (dict or list[dict], optional): Initialization config.
    """

    def __init__(self,
                 in_channels: int = 256,
                 roi_size: int = 28,
                 channels: Sequence[int] = (64, 128, 128, 128, 128),
                 strides: Sequence[int] = (2, 2, 2, 2, 1),
                 layer_weights: Sequence[float] = (1, 1, 2, 2, 2, 4),
                 loss_weight: float = 0.5,
                 norm_cfg: ConfigType = dict(type='BN'),
                 act_cfg: ConfigType = dict(type='LeakyReLU', negative_slope=0.2),
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.convs = build_conv_stack(in_channels, roi_size, channels, strides,
                                      norm_cfg, act_cfg)
        if len(layer_weights) != len(channels) + 1:
            raise ValueError(f'layer_weights needs len(channels) + 1 = {len(channels) + 1} '
                             f'values (input + each layer), got {tuple(layer_weights)}')
        if loss_weight < 0:
            raise ValueError(f'loss_weight must be >= 0, got {loss_weight}')
        self.in_channels = in_channels
        self.roi_size = roi_size
        self.layer_weights = tuple(float(w) for w in layer_weights)
        self.loss_weight = loss_weight

    def layer_outputs(self, x: Tensor) -> List[Tensor]:
        """The input and the output of each conv layer, unweighted.

        Args:
            x (Tensor): Mask times RoI features, (N, in_channels, roi_size, roi_size).

        Returns:
            list[Tensor]: ``len(channels) + 1`` tensors, each (N, C_l, S_l, S_l).
        """
        check_roi_features(x, self.in_channels, self.roi_size, 'MaskDiscriminator')
        outputs = [x]
        for conv in self.convs:
            outputs.append(conv(outputs[-1]))
        return outputs

    def forward(self, x: Tensor) -> Tensor:
        """Hierarchical features of masked RoI features.

        Args:
            x (Tensor): Mask times RoI features, (N, in_channels, roi_size, roi_size).

        Returns:
            Tensor: The weighted, flattened input and layer outputs concatenated,
            shape (N, M) with M = sum of the flattened sizes.
        """
        return torch.cat([w * f.flatten(1) for w, f in
                          zip(self.layer_weights, self.layer_outputs(x))], dim=1)

    def _l1(self, real_outputs: List[Tensor], fake_outputs: List[Tensor],
            input_term: Optional[Tensor] = None) -> Tensor:
        """``mean |forward(real) - forward(fake)|`` from the per-layer outputs.

        Summed layer by layer, so the (N, M) vectors are never concatenated:
        ``|w a - w b| = |w| |a - b|``. ``input_term``: the input layer's
        weighted sum, when the caller computed it (``masked_distance``).
        """
        total, length = 0, 0
        for i, (w, a, b) in enumerate(zip(self.layer_weights, real_outputs,
                                          fake_outputs)):
            length += a[0].numel()
            if i == 0 and input_term is not None:
                total = total + input_term
            else:
                total = total + abs(w) * (a - b).abs().sum()
        return total / (len(real_outputs[0]) * length)

    def _masked_layer_outputs(self, feats: Tensor, mask: Tensor) -> List[Tensor]:
        """``layer_outputs(mask * feats)``, the first conv through ``masked_conv``
        (the (N, C, S, S) product is not kept for backward). The input layer's
        entry is ``feats``, standing in for the product's size only."""
        check_roi_features(feats, self.in_channels, self.roi_size, 'MaskDiscriminator')
        first = self.convs[0]
        if first.order != ('conv', 'norm', 'act'):
            raise ValueError("masked_distance needs conv layers ordered ('conv', 'norm', "
                             f"'act'), got {first.order}")
        x = masked_conv(first.conv, feats, mask)
        if first.with_norm:
            x = first.norm(x)
        if first.with_activation:
            x = first.activate(x)
        outputs = [feats, x]
        for conv in self.convs[1:]:
            outputs.append(conv(outputs[-1]))
        return outputs

    def masked_distance(self, feats: Tensor, real_mask: Tensor, fake_mask: Tensor,
                        real_grad: bool = True) -> Tensor:
        """``distance(real_mask * feats, fake_mask * feats)`` for the same features.

        The input layer's term is summed as ``|m_r - m_f| * sum_c |F_c|`` per
        pixel (``|F m_r - F m_f| = |F| |m_r - m_f|``), so neither its (N, C, S, S)
        difference nor its absolute value is built, and the first conv keeps the
        mask and the features for backward, not their product (``masked_conv``).

        Args:
            feats (Tensor): RoI features, (N, C, S, S), no gradient.
            real_mask (Tensor): Ground-truth masks, (N, 1, S, S).
            fake_mask (Tensor): Predicted masks, (N, 1, S, S).
            real_grad (bool): Whether the real branch is differentiated (the
                critic's step); False runs it under ``no_grad`` (the generator's).

        Returns:
            Tensor: Scalar distance.
        """
        if real_mask.shape != fake_mask.shape or real_mask.shape != (
                feats.shape[0], 1, *feats.shape[2:]):
            raise ValueError(f'masks must be (N, 1, S, S) for features {tuple(feats.shape)}'
                             f', got {tuple(real_mask.shape)} and {tuple(fake_mask.shape)}')
        feats = feats.detach()
        with torch.set_grad_enabled(real_grad and torch.is_grad_enabled()):
            real_outputs = self._masked_layer_outputs(feats, real_mask)
        fake_outputs = self._masked_layer_outputs(feats, fake_mask)
        input_term = abs(self.layer_weights[0]) * (
            (real_mask - fake_mask).abs() * feats.abs().sum(1, keepdim=True)).sum()
        return self._l1(real_outputs, fake_outputs, input_term)

    def distance(self, real: Tensor, fake: Tensor) -> Tensor:
        """Mean absolute difference ``mean |D(real) - D(fake)|``.

        Args:
            real (Tensor): Ground-truth mask times features, (N, C, S, S), N >= 1.
            fake (Tensor): Predicted mask times features, (N, C, S, S).

        Returns:
            Tensor: Scalar distance.
        """
        return self._l1(self.layer_outputs(real), self.layer_outputs(fake))

    def loss_generator(self, real: Tensor, fake: Tensor) -> Tensor:
        """Unweighted generator loss ``L_G`` (eq. 3.4); no gradient through ``real``.

        Call it with the critic frozen (``requires_grad_(False)``).
        """
        with torch.no_grad():
            real_outputs = self.layer_outputs(real)
        return self._l1(real_outputs, self.layer_outputs(fake))

    def loss_discriminator(self, real: Tensor, fake: Tensor) -> Tensor:
        """Critic loss ``L_D = -L_G`` on detached inputs; scalar."""
        return -self.distance(real, fake)
