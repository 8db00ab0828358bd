"""Small helpers shared by the package's hooks, loops and optimizer constructor."""
from mmengine.model import is_model_wrapper
from torch import nn


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside an MMEngine model wrapper (DDP, GradAllReduceDataParallel),
    or ``model`` itself."""
    return model.module if is_model_wrapper(model) else model
