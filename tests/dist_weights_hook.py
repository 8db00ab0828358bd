"""Test helper imported by the ``torchrun`` runs of ``test_distributed.py``.

``DumpRankWeightsHook`` saves every rank's parameters before and after training
(the checkpoint hook saves rank 0's only) and the model wrapper's class name, so
that the test can compare the ranks and see that training changed the weights.
"""
import os.path as osp

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class DumpRankWeightsHook(Hook):
    """Save ``{'wrapper': str, 'init': params, 'final': params}`` to ``rank<r>.pth``."""

    def before_train(self, runner) -> None:
        self.init = self._params(runner)

    def after_train(self, runner) -> None:
        torch.save(dict(wrapper=type(runner.model).__name__, init=self.init,
                        final=self._params(runner)),
                   osp.join(runner.work_dir, f'rank{runner.rank}.pth'))

    @staticmethod
    def _params(runner) -> dict:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        return {k: v.detach().clone() for k, v in model.named_parameters()}
