"""Data-parallel wrapper for models that run their own ``train_step`` (GANs).

MMEngine's ``MMDistributedDataParallel`` runs one loss forward and one update, so it
never calls ``GANMaskRCNN.train_step`` (generator step, then discriminator step).
``MMSeparateDistributedDataParallel`` does, but it wraps every child module
(``backbone``, ``rpn_head``, ``roi_head``...) in its own DDP, and a detector calls
``rpn_head.loss_and_predict`` and ``roi_head.loss`` rather than their ``forward``: on
a DDP wrapper those attributes do not exist and, outside ``forward``, DDP would not
synchronise their gradients anyway. Torch's DDP also rejects ``device_ids`` (which
``Runner.wrap_model`` passes to every DDP subclass) for a CPU module.

:class:`GradAllReduceDataParallel` therefore leaves the model whole. It copies rank
0's parameters and buffers to all ranks at the first training step (DDP does it at
construction; MMEngine's runner also does it after ``init_weights``), calls
``module.train_step`` and averages the gradients over all processes right before
every optimizer step (before gradient clipping and AMP unscaling, as DDP would), for
every optimizer wrapper of an ``OptimWrapperDict``. It works with any backend (gloo
on CPU, NCCL on GPU); the all-reduce does not overlap with the backward pass as
DDP's does. Every rank must take the same optimizer steps in the same order: a step
that one rank skips (say, for a non-finite loss seen only there) leaves the
collectives of the ranks out of step.
"""
from contextlib import ExitStack, contextmanager
from typing import Dict, Iterator, List, Union

import torch
import torch.nn as nn
from mmengine import dist
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class GradAllReduceDataParallel(nn.Module):
    """Average gradients across processes before each step of ``module.train_step``.

    Use it in a config with ``model_wrapper_cfg=dict(type='GradAllReduceDataParallel')``
    and start training with a distributed launcher (``--launcher pytorch``).

    Args:
        module (nn.Module): The model; it must implement ``train_step(data,
            optim_wrapper)``, ``val_step`` and ``test_step`` (any ``BaseModel``).
        broadcast_buffers (bool): Copy rank 0's buffers (BatchNorm statistics) to
            all ranks before every training step, like torch DDP's option of the
            same name. Defaults to False, as in MMEngine's DDP wrapper.
        bucket_size_mb (int): Gradients are all-reduced in flat chunks of about
            this many megabytes. Defaults to 25.
    """

    def __init__(self,
                 module: nn.Module,
                 broadcast_buffers: bool = False,
                 bucket_size_mb: int = 25):
        super().__init__()
        if bucket_size_mb <= 0:
            raise ValueError(
                f'bucket_size_mb must be positive, got {bucket_size_mb}')
        self.module = module
        self.broadcast_buffers = broadcast_buffers
        self.bucket_size_mb = bucket_size_mb
        self._weights_synced = False

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: Union[OptimWrapper, OptimWrapperDict]
                   ) -> Dict[str, torch.Tensor]:
        """Run ``module.train_step`` with gradients averaged before each step.

        Args:
            data (dict | tuple | list): A batch from the dataloader.
            optim_wrapper (OptimWrapper | OptimWrapperDict): The optimizer
                wrapper(s) that ``module.train_step`` steps.

        Returns:
            dict[str, Tensor]: The log variables of ``module.train_step``.
        """
        if not self._weights_synced:
            for tensor in list(self.module.parameters()) + list(self.module.buffers()):
                dist.broadcast(tensor.data, src=0)
            self._weights_synced = True
        elif self.broadcast_buffers:
            for buf in self.module.buffers():
                dist.broadcast(buf.data, src=0)
        with self._sync_before_step(optim_wrapper):
            return self.module.train_step(data, optim_wrapper)

    def val_step(self, data: Union[dict, tuple, list]) -> list:
        """Predictions of ``module.val_step`` (no communication)."""
        return self.module.val_step(data)

    def test_step(self, data: Union[dict, tuple, list]) -> list:
        """Predictions of ``module.test_step`` (no communication)."""
        return self.module.test_step(data)

    @contextmanager
    def _sync_before_step(self, optim_wrapper) -> Iterator[None]:
        """Make every ``OptimWrapper.step`` average the gradients first."""
        wrappers = (list(optim_wrapper.values())
                    if isinstance(optim_wrapper, OptimWrapperDict) else [optim_wrapper])
        with ExitStack() as stack:
            for wrapper in wrappers:
                stack.enter_context(self._patched_step(wrapper))
            yield

    @contextmanager
    def _patched_step(self, wrapper: OptimWrapper) -> Iterator[None]:
        step = wrapper.step

        def synced_step(**kwargs):
            self.all_reduce_grads(wrapper.param_groups)
            step(**kwargs)

        wrapper.step = synced_step
        try:
            yield
        finally:
            del wrapper.step  # back to the class's method

    def all_reduce_grads(self, param_groups: List[dict]) -> None:
        """Replace the gradients of ``param_groups`` by their mean over ranks.

        A parameter without a gradient on some ranks (a branch that had no
        input there) counts as a zero gradient on those ranks, as in DDP with
        ``find_unused_parameters``; a parameter without a gradient on every
        rank keeps ``grad=None`` so that the optimizer skips it.

        Args:
            param_groups (list[dict]): ``optimizer.param_groups``.
        """
        if dist.get_world_size() == 1:
            return
        params = [p for group in param_groups for p in group['params']]
        if not params:
            return
        has_grad = torch.tensor([float(p.grad is not None) for p in params],
                                device=params[0].device)
        dist.all_reduce(has_grad, op='sum')
        grads = []
        for param, count in zip(params, has_grad.tolist()):
            if count > 0:
                if param.grad is None:
                    param.grad = torch.zeros_like(param)
                grads.append(param.grad)
        dist.all_reduce_params(grads, bucket_size_mb=self.bucket_size_mb, op='mean')
