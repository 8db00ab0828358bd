"""The GAN step of GAN Mask R-CNN for any mmdet ``TwoStageDetector``.

``GANTwoStageDetectorMixin.train_step`` orchestrates one iteration as mmagic's
``BaseGAN`` does, with the data passed explicitly: ``train_generator`` (the
detector's losses plus the weighted adversarial terms, discriminators frozen, under
``optim_wrapper['generator']``) returns its log variables and the discriminators'
inputs, and ``train_discriminator`` takes those inputs for ``d_steps`` updates under
``optim_wrapper['discriminator']``. Prediction is the plain detector's.

The detector owns the GAN schedule: its config values are model arguments, and
``train_step`` reads the iteration and ``max_iters`` from MMEngine's ``MessageHub``
(the runner's ``RuntimeInfoHook`` keeps them), so a resumed run follows the same
schedule under any loop.
"""
import math
import warnings
from numbers import Real
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import Tensor

from mmdet.models.detectors import TwoStageDetector
from .adversarial_roi_head import AdversarialRoIHeadMixin
from .discriminator_inputs import DiscriminatorInputs
from .gan_optim_wrapper_constructor import check_gan_optim_wrapper
from .training_guards import NormStatistics, all_ranks_finite, frozen, guarded_update

#: The adversarial RoI head of each mmdet RoI head, for the error of a plain one.
GAN_ROI_HEADS = {'StandardRoIHead': 'GANRoIHead', 'CascadeRoIHead': 'GANCascadeRoIHead',
                 'HybridTaskCascadeRoIHead': 'GANHybridTaskCascadeRoIHead'}


def _check_fraction(name: str, value) -> None:
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not 0 <= value <= 1:
        raise ValueError(f'{name} is a fraction of max_iters in [0, 1], got {value!r}')


def _check_int(name: str, value, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f'{name} must be an integer >= {low}, got {value!r}')


class GANTwoStageDetectorMixin:
    """The GAN step for a ``TwoStageDetector`` whose RoI head has discriminators.

    Needs an adversarial RoI head (``GANRoIHead``, ``GANCascadeRoIHead``,
    ``GANHybridTaskCascadeRoIHead``) and an ``OptimWrapperDict`` with ``generator``
    and ``discriminator`` (``GANOptimWrapperConstructor``). The schedule points
    are fractions of ``max_iters``, so one ``train_cfg.max_iters`` line moves them.

    Args:
        adv_start_fraction (float): The first adversarial iteration (0-based) is
            ``round(adv_start_fraction * max_iters)``; earlier iterations are plain
            detector steps. In [0, 1]; exactly 1 asks for a run without any
            adversarial iteration (the baseline's training, e.g. for paired
            tests). Defaults to 0 (the author's).
        adv_ramp_fraction (float): From there the adversarial loss weights grow
            linearly from ``1 / R`` to 1 over ``R = round(adv_ramp_fraction *
            max_iters)`` iterations; ``R = 0`` means full weights at once. In
            [0, 1]. Defaults to 0.
        d_steps (int): Discriminator updates per generator update. Defaults to 1.
        max_consecutive_skips (int): An iteration whose generator loss or
            gradients are not finite (on any rank) is skipped on all ranks,
            generator and discriminator steps alike, with a warning and its
            normalisation statistics put back; one more after this many skips in
            a row stops training with an error naming the non-finite terms.
            Defaults to 10.
        **kwargs: Arguments of the detector.
    """

    def __init__(self, *args, adv_start_fraction: float = 0.0,
                 adv_ramp_fraction: float = 0.0, d_steps: int = 1,
                 max_consecutive_skips: int = 10, **kwargs) -> None:
        if not isinstance(self, TwoStageDetector):
            raise TypeError(f'{type(self).__name__}: the GAN step needs an mmdet '
                            'TwoStageDetector (an RPN and an RoI head with box and mask '
                            'heads), e.g. MaskRCNN, CascadeRCNN or HybridTaskCascade')
        _check_fraction('adv_start_fraction', adv_start_fraction)
        _check_fraction('adv_ramp_fraction', adv_ramp_fraction)
        _check_int('d_steps', d_steps, 1)
        _check_int('max_consecutive_skips', max_consecutive_skips, 0)
        super().__init__(*args, **kwargs)
        if not isinstance(self.roi_head, AdversarialRoIHeadMixin):
            plain = type(self.roi_head).__name__
            raise TypeError(
                f"{type(self).__name__} needs roi_head=dict(type='"
                f"{GAN_ROI_HEADS.get(plain, 'GANRoIHead')}', box_discriminator=dict(type="
                "'BoxDiscriminator'), mask_discriminator=dict(type='MaskDiscriminator'), "
                f'...), got {plain}')
        self.adv_start_fraction = adv_start_fraction
        self.adv_ramp_fraction = adv_ramp_fraction
        self.d_steps = d_steps
        self.max_consecutive_skips = max_consecutive_skips
        self.num_skipped_iters = 0  # in this process, since it started
        self._skips_in_row = 0

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
                'would be the plain detector; lower model.adv_start_fraction or raise '
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
                f"{type(self).__name__}.train_step reads 'iter' and 'max_iters' from "
                "MMEngine's MessageHub, which a Runner's RuntimeInfoHook sets; outside a "
                "Runner call MessageHub.get_current_instance().update_info('iter', i) and "
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
            dict[str, Tensor]: The detector's log variables, ``loss_g_*`` and, in
            adversarial iterations, the discriminator step's; for a skipped
            iteration only ``skipped_iters`` (the count in this process).
        """
        check_gan_optim_wrapper(optim_wrapper)
        adversarial, scale = self.current_gan_schedule()
        MessageHub.get_current_instance().update_scalar('train/adv_weight_scale', scale)
        statistics = NormStatistics([self])
        log_vars, disc_inputs = self.train_generator(
            data, optim_wrapper['generator'], scale if adversarial else None)
        if log_vars is None:
            statistics.restore()
            return dict(skipped_iters=torch.tensor(float(self.num_skipped_iters)))
        if adversarial:
            log_vars.update(self.train_discriminator(disc_inputs,
                                                     optim_wrapper['discriminator']))
        return log_vars

    def train_generator(self, data: Union[dict, tuple, list], optim_wrapper: OptimWrapper,
                        adv_weight_scale: Optional[float]
                        ) -> Tuple[Optional[Dict[str, Tensor]], DiscriminatorInputs]:
        """The generator step: the detector's losses, plus the adversarial terms
        scaled by ``adv_weight_scale`` (None: a plain detector step), one update.

        Returns:
            tuple: The log variables (None when the step was skipped) and the
            discriminators' detached inputs (empty when not adversarial).
        """
        with optim_wrapper.optim_context(self), frozen(self.roi_head.discriminators()):
            data = self.data_preprocessor(data, True)
            if adv_weight_scale is None:
                losses, disc_inputs = self._run_forward(data, mode='loss'), {}
            else:
                with self.roi_head.generator_pass(adv_weight_scale) as gen_pass:
                    losses = self._run_forward(data, mode='loss')
                disc_inputs = gen_pass.inputs
        loss, log_vars = self.parse_losses(losses)
        if not all_ranks_finite(loss):
            self._skip_iteration('loss terms', [k for k, v in log_vars.items()
                                                if k != 'loss' and not torch.isfinite(v)]
                                 or ['none on this rank (another rank had one)'])
            return None, {}
        bad_grads = guarded_update(optim_wrapper, loss)
        if bad_grads:
            self._skip_iteration('gradients', bad_grads)
            return None, {}
        self._skips_in_row = 0
        return log_vars, disc_inputs

    def _skip_iteration(self, what: str, names: List[str]) -> None:
        """Count and warn about a skipped iteration; raise after too many in a row."""
        self.num_skipped_iters += 1
        self._skips_in_row += 1
        if self._skips_in_row > self.max_consecutive_skips:
            raise RuntimeError(
                f'the generator step was not finite in {self._skips_in_row} iterations in '
                f'a row (max_consecutive_skips={self.max_consecutive_skips}); non-finite '
                f'{what}: {names}. Lower the learning rate, set '
                'optim_wrapper.generator.clip_grad, or check the data')
        warnings.warn(f'non-finite generator {what} {names}: skipping this iteration on all '
                      f'ranks ({self._skips_in_row} in a row, {self.num_skipped_iters} in all;'
                      f' training stops after {self.max_consecutive_skips} in a row)')

    def train_discriminator(self, disc_inputs: DiscriminatorInputs,
                            optim_wrapper: OptimWrapper) -> Dict[str, Tensor]:
        """``d_steps`` updates of the discriminators on ``disc_inputs`` (the
        generator step's). An update whose loss or gradients are not finite (on
        any rank) is skipped, its normalisation statistics put back.

        Returns:
            dict[str, Tensor]: The log variables of the last update taken.
        """
        log_vars = {}
        for _ in range(self.d_steps):
            statistics = NormStatistics(self.roi_head.discriminators())
            with optim_wrapper.optim_context(self):
                losses = self.roi_head.discriminator_loss(disc_inputs)
            loss, step_vars = self.parse_losses(losses)
            step_vars.pop('loss')
            if not all_ranks_finite(loss):
                bad = [k for k, v in step_vars.items() if not torch.isfinite(v)] \
                    or ['none on this rank (another rank had one)']
            else:
                bad = guarded_update(optim_wrapper, loss)
            if bad:
                warnings.warn(f'non-finite discriminator loss or gradients {bad}: skipping '
                              'this discriminator update')
                optim_wrapper.zero_grad()
                statistics.restore()
                continue
            log_vars = step_vars
        return log_vars
