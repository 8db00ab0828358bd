"""Test helper imported by the ``torchrun`` runs of ``test_distributed.py``.

``DumpRankWeightsHook`` saves every rank's parameters before and after training
(the checkpoint hook saves rank 0's only) and the model wrapper's class name, so
that the test can compare the ranks and see that training changed the weights.
Before training it shifts the weights of ranks other than 0, so that equal weights
at the end also show that the wrapper copied rank 0's weights.
"""
import os.path as osp

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from gan_mask_rcnn.utils import unwrap_model


def rank_params(runner) -> dict:
    """A copy of this rank's model parameters, by name."""
    return {k: v.detach().clone() for k, v in unwrap_model(runner.model).named_parameters()}


@HOOKS.register_module()
class DumpRankWeightsHook(Hook):
    """Save ``{'wrapper': str, 'init': params, 'final': params}`` to ``rank<r>.pth``."""

    def before_train(self, runner) -> None:
        if runner.rank != 0:
            with torch.no_grad():
                for param in unwrap_model(runner.model).parameters():
                    param.add_(1.0)
        self.init = rank_params(runner)

    def after_train(self, runner) -> None:
        torch.save(dict(wrapper=type(runner.model).__name__, init=self.init,
                        final=rank_params(runner)),
                   osp.join(runner.work_dir, f'rank{runner.rank}.pth'))
