"""Test helper imported by the ``torchrun`` run of ``test_gan_mask_rcnn.py``.

``NaNOnRankOneHook`` makes ``loss_mask`` NaN on rank 1 only, in iteration 0, and
saves every rank's parameters before training, after iteration 0 and at the end,
with the model's count of skipped iterations, to ``rank<r>.pth``.
"""
import os.path as osp

import torch
from dist_weights_hook import rank_params
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from gan_mask_rcnn.utils import unwrap_model


@HOOKS.register_module()
class NaNOnRankOneHook(Hook):
    """Inject a NaN on rank 1 in iteration 0; save ``{'skipped': int, 'init',
    'first', 'final': params}`` per rank."""

    def before_train(self, runner) -> None:
        self.init = rank_params(runner)
        if runner.rank != 1:
            return
        head = unwrap_model(runner.model).roi_head
        real = head.loss

        def loss(*args, **kwargs):
            out = real(*args, **kwargs)
            if runner.iter == 0:
                out['loss_mask'] = out['loss_mask'] * float('nan')
            return out

        head.loss = loss

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.iter == 0:
            self.first = rank_params(runner)

    def after_train(self, runner) -> None:
        torch.save(dict(skipped=unwrap_model(runner.model).num_skipped_iters, init=self.init,
                        first=self.first, final=rank_params(runner)),
                   osp.join(runner.work_dir, f'rank{runner.rank}.pth'))
