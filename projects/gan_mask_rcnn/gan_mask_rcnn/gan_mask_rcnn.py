"""GAN Mask R-CNN detector: Mask R-CNN whose ``train_step`` plays the GAN game.

One iteration (the author's order): a generator step (Mask R-CNN losses plus the
weighted adversarial terms, discriminators frozen) under
``optim_wrapper['generator']``, then ``d_steps`` discriminator steps under
``optim_wrapper['discriminator']`` on the detached inputs that the generator's
forward produced. Prediction is Mask R-CNN's, unchanged.
"""
import warnings
from contextlib import contextmanager
from typing import Dict, Iterator, List, Union

import torch
from mmengine.dist import all_reduce
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import Tensor, nn

from mmdet.models.detectors import MaskRCNN
from mmdet.registry import MODELS
from .gan_optim_wrapper_constructor import check_gan_optim_wrapper


@contextmanager
def frozen(modules: List[nn.Module]) -> Iterator[None]:
    """Set ``requires_grad=False`` on the parameters of ``modules``, then restore it."""
    params = [p for m in modules for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


@MODELS.register_module()
class GANMaskRCNN(MaskRCNN):
    """Mask R-CNN trained against a box and a mask discriminator.

    Needs ``roi_head=dict(type='GANRoIHead', ...)`` and an ``OptimWrapperDict``
    with ``generator`` and ``discriminator`` (``GANOptimWrapperConstructor``).
    The GAN schedule (``set_gan_schedule``) is set by ``GANIterBasedTrainLoop``
    before each iteration; without that loop training is adversarial from the
    first iteration with one discriminator step and full loss weights.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not hasattr(self.roi_head, 'discriminator_names'):
            raise TypeError(
                "GANMaskRCNN needs roi_head=dict(type='GANRoIHead', box_discriminator="
                "dict(type='BoxDiscriminator'), mask_discriminator=dict(type="
                f"'MaskDiscriminator'), ...), got {type(self.roi_head).__name__}")
        self.d_steps = 1

    def discriminator_names(self) -> List[str]:
        """Full names of the discriminator submodules, e.g. ``roi_head.box_discriminator``."""
        return [f'roi_head.{name}' for name in self.roi_head.discriminator_names()]

    def set_gan_schedule(self, adversarial: bool, weight_scale: float = 1.0,
                         d_steps: int = 1) -> None:
        """Set the GAN schedule of the next iterations.

        Args:
            adversarial (bool): Whether to train adversarially; if False the
                iteration is a plain Mask R-CNN step and the discriminators are
                not run.
            weight_scale (float): Factor on the discriminators' ``loss_weight``.
            d_steps (int): Discriminator updates per generator update.
        """
        if weight_scale < 0:
            raise ValueError(f'weight_scale must be >= 0, got {weight_scale}')
        if int(d_steps) != d_steps or d_steps < 1:
            raise ValueError(f'd_steps must be an integer >= 1, got {d_steps}')
        self.roi_head.adversarial = bool(adversarial)
        self.roi_head.adv_weight_scale = float(weight_scale)
        self.d_steps = int(d_steps)

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: OptimWrapperDict) -> Dict[str, Tensor]:
        """One generator step and ``d_steps`` discriminator steps.

        Args:
            data (dict or tuple or list): A batch from the dataloader.
            optim_wrapper (OptimWrapperDict): With ``generator`` and
                ``discriminator`` wrappers.

        Returns:
            dict[str, Tensor]: Mask R-CNN's log variables, ``loss_g_*`` and, in
            adversarial iterations, ``loss_d_*``, ``acc_d_box_*``, ``dist_d_mask``.
        """
        check_gan_optim_wrapper(optim_wrapper)
        gen_wrapper = optim_wrapper['generator']
        disc_wrapper = optim_wrapper['discriminator']
        discriminators = self.roi_head.discriminators()
        try:
            with gen_wrapper.optim_context(self), frozen(discriminators):
                data = self.data_preprocessor(data, True)
                losses = self._run_forward(data, mode='loss')
            loss, log_vars = self.parse_losses(losses)
            gen_wrapper.update_params(loss)
            if self.roi_head.adversarial:
                log_vars.update(self._train_discriminators(disc_wrapper))
        finally:
            self.roi_head.clear_discriminator_inputs()
        return log_vars

    def _train_discriminators(self, disc_wrapper: OptimWrapper) -> Dict[str, Tensor]:
        """Run ``d_steps`` updates of the discriminators; skip non-finite losses."""
        log_vars = {}
        for _ in range(self.d_steps):
            with disc_wrapper.optim_context(self):
                losses = self.roi_head.discriminator_loss()
            loss, log_vars = self.parse_losses(losses)
            log_vars.pop('loss')
            # every rank must take the same decision, or the gradient exchanges of
            # a multi-process run fall out of step
            finite = torch.isfinite(loss.detach()).float()
            all_reduce(finite, op='min')
            if not finite.item():
                warnings.warn(f'non-finite discriminator loss {loss.item()} '
                              f'({ {k: v.item() for k, v in log_vars.items()} }): '
                              'skipping this discriminator update')
                disc_wrapper.zero_grad()
                continue
            disc_wrapper.update_params(loss)
        return log_vars

