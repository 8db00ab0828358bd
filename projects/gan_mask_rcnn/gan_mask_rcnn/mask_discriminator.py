"""Mask discriminator (SegAN-style critic) of GAN Mask R-CNN (thesis section 3.2.2).

Takes a mask multiplied element-wise with the 28x28 RoI features of its box (fake:
``sigmoid`` of the mask logits of the ground-truth class; real: the mask target).
Its vector is that input and the outputs of its five conv layers, flattened,
weighted and concatenated. The generator makes the real and fake vectors close in
L1, the critic pushes them apart (eq. 3.4, ``L_D = -L_G``).
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptMultiConfig
from .base_discriminator import BaseDiscriminator
from .discriminator_utils import build_conv_stack, check_roi_features, finish_conv_module
from .masked_conv import masked_conv


@MODELS.register_module()
class MaskDiscriminator(BaseDiscriminator):
    """SegAN critic: five conv layers (BN + LeakyReLU each), shrinking resolution.

    ``L_G`` is the mean absolute difference between the real and fake vectors,
    i.e. eq. 3.4 divided by the vector length (as in the author's code, whose
    generator weight 0.5 assumes this normalisation). It is computed in two
    parts: the input term ``|w_0| sum |F| |m_real - m_fake|``, which has no
    parameters (a feature-weighted L1 between the masks), and the learned
    layers' term; neither (N, M) vector is built.

    Args:
        in_channels (int): Channels of the RoI features. Defaults to 256.
        roi_size (int): Side of the masks and RoI features. Defaults to 28.
        channels (Sequence[int]): Output channels of the five conv layers.
        strides (Sequence[int]): Their strides; the defaults go 28 -> 14 -> 7 ->
            4 -> 2 -> 2 (a 1x1 last layer would break BatchNorm for one RoI).
        layer_weights (Sequence[float]): Weights of the input and of each layer's
            output in the concatenation, ``len(channels) + 1`` values. Defaults to
            the author's ``(1, 1, 2, 2, 2, 4)``.
        loss_weight (float): Weight of ``L_G`` in the detector's loss (0.5 in the
            author's code).
        d_loss_weight (float): Weight of ``L_D``. Defaults to 1 (unweighted);
            the author's code uses 0.5. See ``BaseDiscriminator``.
        joint_norm (bool): Run real and fake masks in one forward (shared
            BatchNorm statistics). Defaults to False. See ``BaseDiscriminator``.
        norm_cfg (dict, optional): Norm layer config. Defaults to BN;
            ``dict(type='GN', num_groups=16)`` or None (no norm) also work.
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
                 d_loss_weight: float = 1.0,
                 joint_norm: bool = False,
                 norm_cfg: Optional[ConfigType] = dict(type='BN'),
                 act_cfg: ConfigType = dict(type='LeakyReLU', negative_slope=0.2),
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(loss_weight, d_loss_weight, joint_norm, init_cfg)
        self.convs = build_conv_stack(in_channels, roi_size, channels, strides,
                                      norm_cfg, act_cfg)
        if len(layer_weights) != len(channels) + 1:
            raise ValueError(f'layer_weights needs len(channels) + 1 = {len(channels) + 1} '
                             f'values (input + each layer), got {tuple(layer_weights)}')
        self.layer_weights = tuple(float(w) for w in layer_weights)
        self.in_channels = in_channels
        self.roi_size = roi_size
        self.reset_param_drift()

    def forward(self, feats: Tensor, mask: Tensor) -> List[Tensor]:
        """Outputs of the conv layers for the input ``mask * feats``, unweighted.

        The first conv runs through ``masked_conv``: the (N, C, S, S) product is
        kept for backward only when the critic's weights need a gradient.

        Args:
            feats (Tensor): RoI features, (N, in_channels, roi_size, roi_size),
                not differentiated.
            mask (Tensor): Masks, (N, 1, roi_size, roi_size).

        Returns:
            list[Tensor]: ``len(channels)`` tensors, each (N, C_l, S_l, S_l).
        """
        check_roi_features(feats, self.in_channels, self.roi_size, 'MaskDiscriminator')
        first = self.convs[0]
        outputs = [finish_conv_module(first, masked_conv(first.conv, feats, mask),
                                      'MaskDiscriminator')]
        for conv in self.convs[1:]:
            outputs.append(conv(outputs[-1]))
        return outputs

    def _distance(self, feats: Tensor, real_mask: Tensor, fake_mask: Tensor,
                  real_grad: bool) -> Tuple[Tensor, Tensor]:
        """``mean |vector(real_mask * feats) - vector(fake_mask * feats)|``.

        The input term is summed as ``|m_r - m_f| * sum_c |F_c|`` per pixel
        (``|F m_r - F m_f| = |F| |m_r - m_f|``), so its (N, C, S, S) difference
        is never built.

        Args:
            feats (Tensor): RoI features, (N, C, S, S), no gradient.
            real_mask (Tensor): Ground-truth masks, (N, 1, S, S).
            fake_mask (Tensor): Predicted masks, (N, 1, S, S).
            real_grad (bool): Whether the real branch is differentiated (the
                critic's step); False runs it under ``no_grad`` (the generator's)
                unless ``joint_norm`` runs both in one forward.

        Returns:
            tuple[Tensor, Tensor]: The distance (scalar) and its input term
            (detached scalar); the learned layers' term is their difference.
        """
        if real_mask.shape != fake_mask.shape or real_mask.shape != (
                feats.shape[0], 1, *feats.shape[2:]):
            raise ValueError(f'masks must be (N, 1, S, S) for features {tuple(feats.shape)}'
                             f', got {tuple(real_mask.shape)} and {tuple(fake_mask.shape)}')
        feats = feats.detach()
        if self.joint_norm:
            outputs = self(torch.cat([feats, feats]), torch.cat([real_mask, fake_mask]))
            real_outputs = [out[:len(feats)] for out in outputs]
            fake_outputs = [out[len(feats):] for out in outputs]
        else:
            with torch.set_grad_enabled(real_grad and torch.is_grad_enabled()):
                real_outputs = self(feats, real_mask)
            fake_outputs = self(feats, fake_mask)
        terms = [abs(self.layer_weights[0]) * (
            (real_mask - fake_mask).abs() * feats.abs().sum(1, keepdim=True)).sum()]
        terms += [abs(w) * (a - b).abs().sum() for w, a, b in
                  zip(self.layer_weights[1:], real_outputs, fake_outputs)]
        length = len(feats) * (feats[0].numel() + sum(out[0].numel() for out in real_outputs))
        return sum(terms) / length, terms[0].detach() / length

    def loss_generator(self, feats: Tensor, real_mask: Tensor,
                       fake_mask: Tensor) -> Dict[str, Tensor]:
        """Generator loss ``loss_weight * L_G`` (eq. 3.4), no gradient through the
        real branch. Call it with the critic frozen (``requires_grad_(False)``).

        Args:
            feats (Tensor): RoI features, (N, C, S, S), N >= 1, no gradient.
            real_mask (Tensor): Ground-truth masks, (N, 1, S, S).
            fake_mask (Tensor): Predicted masks (``sigmoid`` of the logits), (N, 1, S, S).

        Returns:
            dict[str, Tensor]: ``loss`` (scalar) and the two parts of the
            unweighted ``L_G``: ``l1_input`` (the parameter-free input term)
            and ``l1_layers`` (the learned layers' term), detached.
        """
        distance, input_term = self._distance(feats, real_mask, fake_mask, real_grad=False)
        return dict(loss=self.loss_weight * distance, l1_input=input_term,
                    l1_layers=distance.detach() - input_term)

    def loss_discriminator(self, feats: Tensor, real_mask: Tensor,
                           fake_mask: Tensor) -> Dict[str, Tensor]:
        """Critic loss ``d_loss_weight * L_D`` with ``L_D = -L_G``, on detached
        inputs shaped as in ``loss_generator``.

        Returns:
            dict[str, Tensor]: ``loss`` (scalar) and ``dist``, the unweighted
            real/fake distance the critic maximises (detached).
        """
        distance, _ = self._distance(feats, real_mask, fake_mask.detach(), real_grad=True)
        return dict(loss=-self.d_loss_weight * distance, dist=distance.detach())
