"""Test helper imported by the ``torchrun`` run of ``test_gan_mask_rcnn.py``.

``NaNOnRankOneHook`` makes ``loss_mask`` NaN on rank 1 only, in iteration 0, and
saves every rank's parameters before training, after iteration 0 and at the end,
with the model's count of skipped iterations, to ``rank<r>.pth``.
"""
import os.path as osp

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from gan_mask_rcnn.utils import unwrap_model


def _unwrapped(runner) -> torch.nn.Module:
    return unwrap_model(runner.model)


def _params(runner) -> dict:
    return {k: v.detach().clone() for k, v in _unwrapped(runner).named_parameters()}


@HOOKS.register_module()
class NaNOnRankOneHook(Hook):
    """Inject a NaN on rank 1 in iteration 0; save ``{'skipped': int, 'init',
    'first', 'final': params}`` per rank."""

    def before_train(self, runner) -> None:
        self.init = _params(runner)
        if runner.rank != 1:
            return
        head = _unwrapped(runner).roi_head
        real = head.loss

        def loss(*args, **kwargs):
            out = real(*args, **kwargs)
            if runner.iter == 0:
                out['loss_mask'] = out['loss_mask'] * float('nan')
            return out

        head.loss = loss

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.iter == 0:
            self.first = _params(runner)

    def after_train(self, runner) -> None:
        torch.save(dict(skipped=_unwrapped(runner).num_skipped_iters, init=self.init,
                        first=self.first, final=_params(runner)),
                   osp.join(runner.work_dir, f'rank{runner.rank}.pth'))
