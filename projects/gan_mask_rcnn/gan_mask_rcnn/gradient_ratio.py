"""Gradient-ratio probe, a training instrument: how hard an adversarial term pulls
on a prediction next to the supervised loss on the same prediction.

``probe_gradient_ratio(pred, key)`` returns a view of ``pred`` for the adversarial
term to use. In the backward of the summed loss, one hook sees the adversarial
gradient (on the view) and one the total (on ``pred``), and
``||d adv / d pred|| / ||d total / d pred - d adv / d pred||`` goes to the current
MessageHub as ``train/<key>``, which MMEngine's logger prints at every logging
interval. The cost is two norms per backward, no extra backward.
"""
from typing import Dict

from mmengine.logging import MessageHub
from torch import Tensor


def probe_gradient_ratio(pred: Tensor, key: str) -> Tensor:
    """Log ``||grad of the adversarial term|| / ||grad of the rest||`` on ``pred``.

    Valid when ``pred``'s other consumers are the supervised loss only (e.g.
    ``bbox_pred``: ``loss_bbox``; ``mask_preds``: ``loss_mask``). Nothing is
    logged when the adversarial term sends no gradient or the rest sends zero.

    Args:
        pred (Tensor): A prediction of any shape, e.g. ``bbox_pred`` (N, 4 * C).
        key (str): Log name, e.g. ``'grad_ratio_g_box'``; it must not contain
            ``loss`` (MMEngine sums such log variables into the loss).

    Returns:
        Tensor: A view of ``pred`` (``pred`` itself if it needs no gradient):
        feed it, and only it, to the adversarial term.
    """
    if not pred.requires_grad:
        return pred
    adversarial = pred.view_as(pred)
    seen: Dict[str, Tensor] = {}

    def keep_adversarial(grad: Tensor) -> None:
        seen['adversarial'] = grad

    def log_ratio(grad: Tensor) -> None:
        # runs after keep_adversarial: pred's gradient is complete only once every
        # consumer, the view included, has sent its part
        adv = seen.pop('adversarial', None)
        if adv is None:
            return
        rest = (grad.float() - adv.float()).norm()
        if rest > 0:
            MessageHub.get_current_instance().update_scalar(
                f'train/{key}', (adv.float().norm() / rest).item())

    adversarial.register_hook(keep_adversarial)
    pred.register_hook(log_ratio)
    return adversarial
