"""Iteration-based training loop for GAN Mask R-CNN.

The detector owns the GAN schedule (``GANMaskRCNN(adv_start_fraction=...,
adv_ramp_fraction=..., d_steps=...)``) and reads the iteration from the
MessageHub. This loop keeps what only a loop can do: ``ReseedIterBasedTrainLoop``'s
optional reseeding, and silencing during the warm-up PyTorch's warning that the
discriminator's lr scheduler steps while its optimizer does not (its schedule
follows the iterations, as intended). At build it stops on the train_cfg keys that
moved to the model and on a start that rounds to ``max_iters``.
"""
import logging
import re
import warnings
from typing import Sequence

from mmengine.logging import print_log
from mmengine.registry import LOOPS

from .reseed_train_loop import ReseedIterBasedTrainLoop
from .utils import unwrap_model

LOOP_KEYS = ('max_iters', 'val_begin', 'val_interval', 'dynamic_intervals',
             'reseed_every_iter')
# train_cfg keys of this loop before the detector owned the schedule
MOVED_KEYS = ('adv_start_iter', 'adv_weight_ramp_iters', 'd_steps')


def moved_keys_message(train_cfg: dict, max_iters: int) -> str:
    """The error for a ``train_cfg`` with the keys that moved to the model."""
    start = train_cfg.get('adv_start_iter', 0)
    ramp = train_cfg.get('adv_weight_ramp_iters', 0)
    new = (f"adv_start_fraction={start / max_iters:g}, "
           f"adv_ramp_fraction={ramp / max_iters:g}, d_steps={train_cfg.get('d_steps', 1)}")
    late = (f'; adv_start_iter={start} >= max_iters={max_iters} would train no adversarial '
            'iteration: lower it below max_iters' if start >= max_iters else '')
    moved = {k: train_cfg[k] for k in MOVED_KEYS if k in train_cfg}
    return (f'train_cfg keys {moved} moved to the model, as fractions of max_iters='
            f"{max_iters}: delete them from train_cfg and write model=dict(type="
            f"'GANMaskRCNN', {new}){late}")


@LOOPS.register_module()
class GANIterBasedTrainLoop(ReseedIterBasedTrainLoop):
    """``ReseedIterBasedTrainLoop`` for a model that owns a GAN schedule.

    Args:
        runner (Runner): The runner; its model must have ``gan_schedule``
            (e.g. ``GANMaskRCNN``).
        dataloader (DataLoader or dict): Training dataloader.
        max_iters (int): Total training iterations.
        reseed_every_iter (bool): Reseed the random generators from (seed,
            iteration) before fetching each batch, for bit-exact resume with
            ``num_workers=0``. Defaults to False.
        **kwargs: ``val_begin``, ``val_interval``, ``dynamic_intervals`` of
            ``IterBasedTrainLoop``.
    """

    def __init__(self, runner, dataloader, max_iters: int,
                 reseed_every_iter: bool = False, **kwargs) -> None:
        if any(k in kwargs for k in MOVED_KEYS):
            raise TypeError(moved_keys_message(kwargs, max_iters))
        unknown = sorted(set(kwargs) - set(LOOP_KEYS))
        if unknown:
            raise TypeError(f'GANIterBasedTrainLoop got unknown train_cfg key(s) {unknown}; '
                            f'allowed keys: {list(LOOP_KEYS)}')
        model = unwrap_model(runner.model)
        if not hasattr(model, 'gan_schedule'):
            raise TypeError('GANIterBasedTrainLoop needs a model with gan_schedule() '
                            f"(e.g. type='GANMaskRCNN'), got {type(model).__name__}")
        super().__init__(runner, dataloader, max_iters, reseed_every_iter, **kwargs)
        self._model = model
        # raises on a start that rounds to the end; 1.0 asks for no adversarial iteration
        if not model.gan_schedule(self.max_iters - 1, self.max_iters)[0]:
            print_log(f'adv_start_fraction={model.adv_start_fraction}: no adversarial '
                      f'iteration in {self.max_iters}; this run trains plain Mask R-CNN',
                      logger='current', level=logging.WARNING)

    def run_iter(self, data_batch: Sequence[dict]) -> None:
        """Run an iteration; in the warm-up without the scheduler-order warning."""
        adversarial, _ = self._model.gan_schedule(self._iter, self.max_iters)
        with warnings.catch_warnings():
            if not adversarial:
                warnings.filterwarnings(
                    'ignore', category=UserWarning,
                    message=re.escape('Detected call of `scheduler.step()`'))
            super().run_iter(data_batch)
