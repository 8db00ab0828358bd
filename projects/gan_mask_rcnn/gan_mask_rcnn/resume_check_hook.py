"""A hook that stops ``--resume`` of a checkpoint that another kind of run saved.

A plain Mask R-CNN run saves one optimizer's state; a GAN Mask R-CNN run saves a
``generator`` and a ``discriminator`` one (``OptimWrapperDict``). On a mismatch
MMEngine's resume fails deep inside the optimizer wrapper ("Mismatched
`state_dict`" or ``KeyError: 'param_groups'``), and on a checkpoint without
training state (published by ``strip_discriminators.py``, or from mmdet's model
zoo) with a ``KeyError``. This hook checks the checkpoint as soon as it is read,
before anything is restored, and says to start from its weights with
``load_from`` instead.
"""
from typing import List, Optional

from mmengine.hooks import Hook
from mmengine.optim import OptimWrapperDict
from mmengine.registry import HOOKS
from mmengine.runner import find_latest_checkpoint

from .utils import unwrap_model

#: What a resume restores besides the weights.
TRAINING_STATE = ('meta', 'message_hub', 'optimizer')


def _optimizer_names(state_or_wrapper) -> Optional[List[str]]:
    """Names of an ``OptimWrapperDict`` or its state dict; None for one optimizer."""
    if isinstance(state_or_wrapper, OptimWrapperDict):
        return sorted(state_or_wrapper.keys())
    if isinstance(state_or_wrapper, dict) and 'param_groups' not in state_or_wrapper:
        return sorted(state_or_wrapper)
    return None


def _describe(names: Optional[List[str]]) -> str:
    if names is None:
        return 'one optimizer (plain Mask R-CNN)'
    kind = ' (GAN Mask R-CNN)' if names == ['discriminator', 'generator'] else ''
    return f'optimizers {names}{kind}'


@HOOKS.register_module()
class ResumeCheckHook(Hook):
    """Stop a resume whose checkpoint does not fit this run, naming ``load_from``.

    Checks, on ``resume`` only, that the checkpoint holds training state
    (``meta``, ``message_hub``, ``optimizer``) and the same optimizers as this
    run. ``load_from`` (weights only) is left alone: it fits either model.
    """

    priority = 'VERY_HIGH'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # MMEngine keeps the resume flag and path in private attributes only
        if not getattr(runner, '_resume', False):
            return
        path = runner._load_from or find_latest_checkpoint(runner.work_dir)
        fix = (f'To start this training from its weights, use load_from instead of '
               f'resume: --cfg-options load_from={path} without --resume')
        missing = [key for key in TRAINING_STATE if key not in checkpoint]
        if missing:
            raise ValueError(
                f'cannot resume from {path}: it holds weights only (no {missing}), as a '
                'published or model-zoo checkpoint does, and --resume continues a '
                f'training run. {fix}.')
        model = unwrap_model(runner.model)
        wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
        ours, saved = _optimizer_names(wrapper), _optimizer_names(checkpoint['optimizer'])
        if ours != saved:
            extra = ('; the discriminators then start fresh' if saved is None else
                     '; the weights of modules this model lacks (e.g. discriminators) '
                     'are then left out')
            raise ValueError(
                f'cannot resume from {path}: a run with {_describe(saved)} saved it, and '
                f'this config trains {type(model).__name__} with {_describe(ours)}; '
                f'--resume only continues a run of the same model. {fix}{extra}.')
