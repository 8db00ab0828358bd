"""GAN Mask R-CNN detector: Mask R-CNN whose ``train_step`` plays the GAN game.

One iteration (the author's order): a generator step (Mask R-CNN losses plus the
weighted adversarial terms, discriminators frozen) under
``optim_wrapper['generator']``, then ``d_steps`` discriminator steps under
``optim_wrapper['discriminator']`` on the detached inputs that the generator's
forward produced. Prediction is Mask R-CNN's, unchanged.

The detector owns the GAN schedule, as mmagic's ``BaseGAN``: its config values
are model arguments, and ``train_step`` reads the iteration and ``max_iters``
from MMEngine's ``MessageHub`` (the runner's ``RuntimeInfoHook`` keeps them), so
a resumed run follows the same schedule under any iteration-based loop.
"""
import math
import warnings
from contextlib import contextmanager
from numbers import Real
from typing import Dict, Iterator, List, Tuple, Union

import torch
from mmengine.dist import all_reduce
from mmengine.logging import MessageHub
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


def all_ranks_finite(loss: Tensor) -> bool:
    """Whether ``loss`` is finite on every rank: all ranks take one decision, or
    the gradient exchanges of a multi-process run fall out of step."""
    finite = torch.isfinite(loss.detach()).all().float()
    all_reduce(finite, op='min')
    return bool(finite.item())


def _check_fraction(name: str, value) -> None:
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not 0 <= value <= 1:
        raise ValueError(f'{name} is a fraction of max_iters in [0, 1], got {value!r}')


def _check_int(name: str, value, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f'{name} must be an integer >= {low}, got {value!r}')


@MODELS.register_module()
class GANMaskRCNN(MaskRCNN):
    """Mask R-CNN trained against a box and a mask discriminator.

    Needs ``roi_head=dict(type='GANRoIHead', ...)`` and an ``OptimWrapperDict``
    with ``generator`` and ``discriminator`` (``GANOptimWrapperConstructor``).
    The schedule points are fractions of ``max_iters``, so that one
    ``train_cfg.max_iters`` line moves them all.

    Args:
        adv_start_fraction (float): The first adversarial iteration (0-based) is
            ``round(adv_start_fraction * max_iters)``; earlier iterations are plain
            Mask R-CNN steps. In [0, 1]; exactly 1 asks for a run without any
            adversarial iteration (the baseline's training, e.g. for paired
            tests). Defaults to 0 (the author's).
        adv_ramp_fraction (float): From there the adversarial loss weights grow
            linearly from ``1 / R`` to 1 over ``R = round(adv_ramp_fraction *
            max_iters)`` iterations; ``R = 0`` means full weights at once. In
            [0, 1]. Defaults to 0.
        d_steps (int): Discriminator updates per generator update. Defaults to 1.
        max_consecutive_skips (int): An iteration whose generator loss is not
            finite (on any rank) is skipped on all ranks, generator and
            discriminator steps alike, with a warning; one more after this many
            skips in a row stops training with an error naming the non-finite
            loss terms. Defaults to 10.
        **kwargs: Arguments of ``MaskRCNN``.
    """

    def __init__(self, *args, adv_start_fraction: float = 0.0,
                 adv_ramp_fraction: float = 0.0, d_steps: int = 1,
                 max_consecutive_skips: int = 10, **kwargs) -> None:
        _check_fraction('adv_start_fraction', adv_start_fraction)
        _check_fraction('adv_ramp_fraction', adv_ramp_fraction)
        _check_int('d_steps', d_steps, 1)
        _check_int('max_consecutive_skips', max_consecutive_skips, 0)
        super().__init__(*args, **kwargs)
        if not hasattr(self.roi_head, 'discriminator_names'):
            raise TypeError(
                "GANMaskRCNN needs roi_head=dict(type='GANRoIHead', box_discriminator="
                "dict(type='BoxDiscriminator'), mask_discriminator=dict(type="
                f"'MaskDiscriminator'), ...), got {type(self.roi_head).__name__}")
        self.adv_start_fraction = adv_start_fraction
        self.adv_ramp_fraction = adv_ramp_fraction
        self.d_steps = d_steps
        self.max_consecutive_skips = max_consecutive_skips
        self.num_skipped_iters = 0  # in this process, since it started
        self._skips_in_row = 0
        self._non_finite_terms: List[str] = []

    def discriminator_names(self) -> List[str]:
        """Full names of the discriminator submodules, e.g. ``roi_head.box_discriminator``."""
        return [f'roi_head.{name}' for name in self.roi_head.discriminator_names()]

    def gan_schedule(self, iteration: int, max_iters: int) -> Tuple[bool, float]:
        """The GAN schedule of a 0-based ``iteration`` of ``max_iters``.

        Returns:
            tuple[bool, float]: Whether the iteration is adversarial, and the
            factor on the discriminators' ``loss_weight`` (0 when not).
        """
        start = round(self.adv_start_fraction * max_iters)
        if start >= max_iters and self.adv_start_fraction < 1:
            raise ValueError(
                f'adv_start_fraction={self.adv_start_fraction} of max_iters={max_iters} '
                f'puts the first adversarial iteration at {start} >= max_iters: the run '
                'would be plain Mask R-CNN; lower model.adv_start_fraction or raise '
                'train_cfg.max_iters (1.0 asks for that on purpose)')
        if iteration < start:
            return False, 0.0
        ramp = round(self.adv_ramp_fraction * max_iters)
        return True, min(1.0, (iteration - start + 1) / ramp) if ramp else 1.0

    def current_gan_schedule(self) -> Tuple[bool, float]:
        """``gan_schedule`` of the iteration the ``MessageHub`` names."""
        hub = MessageHub.get_current_instance()
        iteration, max_iters = hub.get_info('iter'), hub.get_info('max_iters')
        if iteration is None or max_iters is None:
            raise RuntimeError(
                "GANMaskRCNN.train_step reads 'iter' and 'max_iters' from MMEngine's "
                "MessageHub, which a Runner's RuntimeInfoHook sets; outside a Runner call "
                "MessageHub.get_current_instance().update_info('iter', i) and "
                "update_info('max_iters', n) first")
        return self.gan_schedule(iteration, max_iters)

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: OptimWrapperDict) -> Dict[str, Tensor]:
        """One generator step and, when adversarial, ``d_steps`` discriminator steps.

        Args:
            data (dict or tuple or list): A batch from the dataloader.
            optim_wrapper (OptimWrapperDict): With ``generator`` and
                ``discriminator`` wrappers.

        Returns:
            dict[str, Tensor]: Mask R-CNN's log variables, ``loss_g_*`` and, in
            adversarial iterations, ``loss_d_*``, ``acc_d_box_*``, ``dist_d_mask``.
        """
        check_gan_optim_wrapper(optim_wrapper)
        adversarial, scale = self.current_gan_schedule()
        MessageHub.get_current_instance().update_scalar('train/adv_weight_scale', scale)
        gen_wrapper = optim_wrapper['generator']
        try:
            with gen_wrapper.optim_context(self), frozen(self.roi_head.discriminators()), \
                    self.roi_head.gan_schedule(adversarial, scale):
                data = self.data_preprocessor(data, True)
                losses = self._run_forward(data, mode='loss')
            loss, log_vars = self.parse_losses(losses)
            if not all_ranks_finite(loss):
                self._skip_iteration(log_vars)
                return log_vars
            self._skips_in_row = 0
            self._non_finite_terms = []
            gen_wrapper.update_params(loss)
            if adversarial:
                log_vars.update(self._train_discriminators(optim_wrapper['discriminator']))
        finally:
            self.roi_head.clear_discriminator_inputs()
        return log_vars

    def _skip_iteration(self, log_vars: Dict[str, Tensor]) -> None:
        """Count and warn about a skipped iteration; raise after too many in a row."""
        self.num_skipped_iters += 1
        self._skips_in_row += 1
        for name, value in log_vars.items():  # the terms, not their sum 'loss'
            if name != 'loss' and name not in self._non_finite_terms \
                    and not torch.isfinite(value).all():
                self._non_finite_terms.append(name)
        terms = self._non_finite_terms or ['none on this rank (another rank had one)']
        values = {k: v.item() for k, v in log_vars.items() if k in self._non_finite_terms}
        if self._skips_in_row > self.max_consecutive_skips:
            raise RuntimeError(
                f'the generator loss was not finite in {self._skips_in_row} iterations in a '
                f'row (max_consecutive_skips={self.max_consecutive_skips}); non-finite terms: '
                f'{terms}, last values {values}. Lower the learning rate, set '
                'optim_wrapper.generator.clip_grad, or check the data')
        warnings.warn(f'non-finite generator loss (terms {terms}, values {values}): skipping '
                      f'this iteration on all ranks ({self._skips_in_row} in a row, '
                      f'{self.num_skipped_iters} in all; training stops after '
                      f'{self.max_consecutive_skips} in a row)')

    def _train_discriminators(self, disc_wrapper: OptimWrapper) -> Dict[str, Tensor]:
        """Run ``d_steps`` updates of the discriminators; skip non-finite losses."""
        log_vars = {}
        for _ in range(self.d_steps):
            with disc_wrapper.optim_context(self):
                losses = self.roi_head.discriminator_loss()
            loss, log_vars = self.parse_losses(losses)
            log_vars.pop('loss')
            if not all_ranks_finite(loss):
                warnings.warn(f'non-finite discriminator loss {loss.item()} '
                              f'({ {k: v.item() for k, v in log_vars.items()} }): '
                              'skipping this discriminator update')
                disc_wrapper.zero_grad()
                continue
            disc_wrapper.update_params(loss)
        return log_vars
