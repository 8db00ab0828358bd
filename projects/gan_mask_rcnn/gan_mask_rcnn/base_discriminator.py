"""The interface shared by GAN Mask R-CNN's box and mask discriminators.

Each returns its own losses already weighted, as mmdet's loss modules do:
``loss_generator`` gives ``loss_weight * L_G`` and ``loss_discriminator`` gives
``d_loss_weight * L_D``, each as the ``loss`` entry of a dict whose other entries are
detached values to log. Each also keeps its parameters at initialisation, so that
``param_drift`` (``||theta_D - theta_D(0)||``, which shows whether it learns) holds
across a resume.
"""
import math
import numbers
from abc import abstractmethod
from typing import Dict

import torch
from mmengine.model import BaseModule
from torch import Tensor

from mmdet.utils import OptMultiConfig


def check_loss_weight(name: str, value: float, owner: str) -> float:
    """Return ``value`` as a float, or raise naming ``owner.name`` and the value."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or value < 0):
        raise ValueError(f'{owner} {name} must be a finite number >= 0, got {value!r}')
    return float(value)


class BaseDiscriminator(BaseModule):
    """Base of the discriminators: loss weights, joint normalisation, parameter drift.

    Args:
        loss_weight (float): Weight of the generator term ``L_G`` in the
            detector's loss.
        d_loss_weight (float): Weight of the discriminator's own loss ``L_D``.
            Defaults to 1 (unweighted, the thesis is silent); the author's code
            uses ``loss_weight`` here too (box 0.025, mask 0.5). A ``paramwise``
            lr multiplier is not the same: weight decay does not scale with it.
        joint_norm (bool): True: score real and fake in one forward on their
            concatenation, so that batch statistics (BatchNorm) mix both; False
            (default, thesis and author's code): one forward each, so that an
            all-real and an all-fake batch are normalised apart. Per-sample norms
            (``norm_cfg=dict(type='GN', num_groups=...)``) or none
            (``norm_cfg=None``) give the same losses either way.
        init_cfg (dict or list[dict], optional): Initialization config.
    """

    # 2: with the ``initial_params`` buffer (written into a checkpoint's metadata)
    _version = 2

    def __init__(self, loss_weight: float, d_loss_weight: float = 1.0,
                 joint_norm: bool = False, init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        owner = type(self).__name__
        self.loss_weight = check_loss_weight('loss_weight', loss_weight, owner)
        self.d_loss_weight = check_loss_weight('d_loss_weight', d_loss_weight, owner)
        if not isinstance(joint_norm, bool):
            raise ValueError(f'{owner} joint_norm must be True or False, got {joint_norm!r}')
        self.joint_norm = joint_norm
        self.register_buffer('initial_params', torch.empty(0))

    @abstractmethod
    def loss_generator(self, *inputs: Tensor) -> Dict[str, Tensor]:
        """``loss``: ``loss_weight * L_G``, and detached values to log."""

    @abstractmethod
    def loss_discriminator(self, *inputs: Tensor) -> Dict[str, Tensor]:
        """``loss``: ``d_loss_weight * L_D`` on detached inputs, and values to log."""

    def _flat_params(self) -> Tensor:
        return torch.cat([p.detach().flatten() for p in self.parameters()])

    def reset_param_drift(self) -> None:
        """Take the current parameters as ``theta_D(0)``; subclasses call it once
        their layers exist, ``init_weights`` after initialising them."""
        self.initial_params = self._flat_params().clone()

    def init_weights(self) -> None:
        """Initialise the layers, then record them as ``theta_D(0)``."""
        super().init_weights()
        self.reset_param_drift()

    def param_drift(self) -> Tensor:
        """``||theta_D - theta_D(0)||``, the L2 distance of all parameters from their
        initial values (a detached scalar)."""
        current = self._flat_params()
        if current.shape != self.initial_params.shape:
            raise RuntimeError(f'{type(self).__name__} has {current.numel()} parameter '
                               f'values but {self.initial_params.numel()} initial ones: '
                               'call reset_param_drift() after changing its layers')
        return (current - self.initial_params).norm()
