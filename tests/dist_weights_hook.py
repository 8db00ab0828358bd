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


def _unwrapped(runner) -> torch.nn.Module:
    return unwrap_model(runner.model)


def _params(runner) -> dict:
    return {k: v.detach().clone() for k, v in _unwrapped(runner).named_parameters()}


@HOOKS.register_module()
class DumpRankWeightsHook(Hook):
    """Save ``{'wrapper': str, 'init': params, 'final': params}`` to ``rank<r>.pth``."""

    def before_train(self, runner) -> None:
        if runner.rank != 0:
            with torch.no_grad():
                for param in _unwrapped(runner).parameters():
                    param.add_(1.0)
        self.init = _params(runner)

    def after_train(self, runner) -> None:
        torch.save(dict(wrapper=type(runner.model).__name__, init=self.init,
                        final=_params(runner)),
                   osp.join(runner.work_dir, f'rank{runner.rank}.pth'))
