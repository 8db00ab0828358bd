"""Guards of the GAN step: freeze a module's parameters for a pass, decide on all
ranks whether a loss and the gradients are finite, step an optim wrapper only when
its gradients are, and put back the normalisation statistics of a skipped batch.

A skip is decided on every rank together (``all_reduce`` of a finite flag, minimum):
a rank that stepped alone would leave the gradient exchanges of a multi-process run
out of step.
"""
from contextlib import contextmanager
from typing import Iterator, List, Tuple

import torch
from mmengine.dist import all_reduce
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _NormBase


@contextmanager
def frozen(modules: List[nn.Module]) -> Iterator[None]:
    """Set ``requires_grad=False`` on the parameters of ``modules``, then restore it."""
    params = [p for m in modules for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


def all_ranks_true(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` holds on every rank."""
    value = torch.tensor(float(flag), device=device)
    all_reduce(value, op='min')
    return bool(value.item())


def all_ranks_finite(loss: Tensor) -> bool:
    """Whether ``loss`` is finite on every rank."""
    return all_ranks_true(bool(torch.isfinite(loss.detach()).all()), loss.device)


def non_finite_grads(optim_wrapper: OptimWrapper) -> List[str]:
    """Positions ``group<g>.param<i>`` (shape) of this rank's non-finite gradients."""
    bad = []
    for g, group in enumerate(optim_wrapper.param_groups):
        for i, p in enumerate(group['params']):
            if p.grad is not None and not torch.isfinite(p.grad).all():
                bad.append(f'group{g}.param{i} {tuple(p.shape)}')
    return bad


def guarded_update(optim_wrapper: OptimWrapper, loss: Tensor) -> List[str]:
    """``optim_wrapper.update_params(loss)``, except that the step is not taken
    (gradients zeroed) when a gradient is not finite on some rank.

    ``clip_grad`` cannot stop such a step: a NaN total norm gives a NaN clip
    coefficient. An ``AmpOptimWrapper`` leaves the check to its loss scaler, which
    skips the step and lowers the scale on an overflow.

    Returns:
        list[str]: Empty when the step was taken; else this rank's non-finite
        gradients, or a note that only another rank had one.
    """
    loss = optim_wrapper.scale_loss(loss)
    optim_wrapper.backward(loss)
    if not optim_wrapper.should_update():
        return []
    if not isinstance(optim_wrapper, AmpOptimWrapper):
        bad = non_finite_grads(optim_wrapper)
        if not all_ranks_true(not bad, loss.device):
            optim_wrapper.zero_grad()
            return bad or ['none on this rank (another rank had one)']
    optim_wrapper.step()
    optim_wrapper.zero_grad()
    return []


class NormStatistics:
    """A copy of the running statistics of the norm layers of ``modules``
    (BatchNorm's ``running_mean``, ``running_var``, ``num_batches_tracked``), to put
    back when a batch's update is skipped (``norm_eval=False`` trains them on it)."""

    def __init__(self, modules: List[nn.Module]) -> None:
        self._saved: List[Tuple[Tensor, Tensor]] = [
            (buf, buf.detach().clone()) for module in modules for layer in module.modules()
            if isinstance(layer, _NormBase) for buf in layer.buffers(recurse=False)]

    def restore(self) -> None:
        """Copy the saved statistics back."""
        with torch.no_grad():
            for buf, saved in self._saved:
                buf.copy_(saved)
