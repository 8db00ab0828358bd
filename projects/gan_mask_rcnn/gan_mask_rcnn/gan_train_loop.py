"""Iteration-based training loop that owns the GAN schedule of GAN Mask R-CNN.

Before each iteration it tells the model (``set_gan_schedule``) whether the
iteration is adversarial (plain Mask R-CNN warm-up before ``adv_start_iter``),
the factor on the adversarial loss weights (linear ramp) and the number of
discriminator steps. All of it is a function of the iteration number only, so a
resumed run follows the same schedule. With ``reseed_every_iter`` the random
state is also a function of (seed, iteration) only, which makes "N iterations"
and "N/2, stop, resume, N/2" equal tensor for tensor (``num_workers=0``).
"""
import logging
import re
import warnings
from typing import Sequence

from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import LOOPS

from .gan_optim_wrapper_constructor import check_gan_optim_wrapper
from .reseed_train_loop import ReseedIterBasedTrainLoop

LOOP_KEYS = ('max_iters', 'val_begin', 'val_interval', 'dynamic_intervals',
             'adv_start_iter', 'd_steps', 'adv_weight_ramp_iters', 'reseed_every_iter')


@LOOPS.register_module()
class GANIterBasedTrainLoop(ReseedIterBasedTrainLoop):
    """``IterBasedTrainLoop`` with the GAN schedule (and ``ReseedIterBasedTrainLoop``'s
    optional reseeding).

    Args:
        runner (Runner): The runner; its model must have ``set_gan_schedule``
            (e.g. ``GANMaskRCNN``).
        dataloader (DataLoader or dict): Training dataloader.
        max_iters (int): Total training iterations.
        adv_start_iter (int): First adversarial iteration (0-based); earlier
            iterations are plain Mask R-CNN generator steps. Defaults to 0.
        d_steps (int): Discriminator updates per generator update. Defaults to 1.
        adv_weight_ramp_iters (int): The adversarial loss weights grow linearly
            from ``1 / adv_weight_ramp_iters`` to 1 over this many iterations from
            ``adv_start_iter``; 0 means full weights at once. Defaults to 0.
        reseed_every_iter (bool): Reseed the random generators from (seed,
            iteration) before fetching each batch, for bit-exact resume with
            ``num_workers=0``. Defaults to False.
        **kwargs: ``val_begin``, ``val_interval``, ``dynamic_intervals`` of
            ``IterBasedTrainLoop``.
    """

    def __init__(self, runner, dataloader, max_iters: int, adv_start_iter: int = 0,
                 d_steps: int = 1, adv_weight_ramp_iters: int = 0,
                 reseed_every_iter: bool = False, **kwargs) -> None:
        unknown = sorted(set(kwargs) - set(LOOP_KEYS))
        if unknown:
            raise TypeError(f'GANIterBasedTrainLoop got unknown train_cfg key(s) {unknown}; '
                            f'allowed keys: {list(LOOP_KEYS)}')
        for name, value, low in (('adv_start_iter', adv_start_iter, 0), ('d_steps', d_steps, 1),
                                 ('adv_weight_ramp_iters', adv_weight_ramp_iters, 0)):
            if not isinstance(value, int) or value < low:
                raise ValueError(f'{name} must be an integer >= {low}, got {value!r}')
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not hasattr(model, 'set_gan_schedule'):
            raise TypeError('GANIterBasedTrainLoop needs a model with set_gan_schedule() '
                            f"(e.g. type='GANMaskRCNN'), got {type(model).__name__}")
        super().__init__(runner, dataloader, max_iters, reseed_every_iter, **kwargs)
        self.adv_start_iter = adv_start_iter
        self.d_steps = d_steps
        self.adv_weight_ramp_iters = adv_weight_ramp_iters

    def gan_schedule(self, iteration: int) -> dict:
        """Keyword arguments of ``set_gan_schedule`` for a 0-based ``iteration``."""
        adversarial = iteration >= self.adv_start_iter
        scale = 1.0
        if adversarial and self.adv_weight_ramp_iters > 0:
            scale = min(1.0, (iteration - self.adv_start_iter + 1) / self.adv_weight_ramp_iters)
        return dict(adversarial=adversarial, weight_scale=scale if adversarial else 0.0,
                    d_steps=self.d_steps)

    def run(self) -> None:
        """Check the optim wrapper, then train as ``IterBasedTrainLoop``."""
        check_gan_optim_wrapper(self.runner.optim_wrapper)
        if self.adv_start_iter >= self.max_iters:
            print_log(f'adv_start_iter={self.adv_start_iter} >= max_iters={self.max_iters}: '
                      'no adversarial iteration will run', logger='current',
                      level=logging.WARNING)
        return super().run()

    def run_iter(self, data_batch: Sequence[dict]) -> None:
        """Set the GAN schedule of this iteration, then run it."""
        schedule = self.gan_schedule(self._iter)
        model = self.runner.model
        (model.module if is_model_wrapper(model) else model).set_gan_schedule(**schedule)
        self.runner.message_hub.update_scalar('train/adv_weight_scale',
                                              schedule['weight_scale'])
        with warnings.catch_warnings():
            if not schedule['adversarial']:
                # During the warm-up the discriminator's optimizer does not step while
                # its lr schedule follows the iterations, as intended; PyTorch's warning
                # that the scheduler stepped first (and would skip a value) does not apply.
                warnings.filterwarnings(
                    'ignore', category=UserWarning,
                    message=re.escape('Detected call of `scheduler.step()`'))
            super().run_iter(data_batch)
