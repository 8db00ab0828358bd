"""Optimizer-wrapper constructor that gives a GAN detector two optim wrappers.

Splits the detector's parameters into the discriminators (the submodules named by
``model.discriminator_names()``) and the generator (everything else) and builds
each side with MMEngine's ``DefaultOptimWrapperConstructor``, so each side has its
own optimizer, lr, ``clip_grad``, ``paramwise_cfg`` and (through the runner) lr
schedulers: MMEngine builds a plain ``param_scheduler`` list once per side, and
``param_scheduler=dict(generator=[...], discriminator=[...])`` gives each its own.

Config::

    optim_wrapper = dict(
        constructor='GANOptimWrapperConstructor',
        type='OptimWrapper',   # shared by both sides; `--amp` makes it AmpOptimWrapper
        generator=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9),
                       clip_grad=dict(max_norm=10)),
        discriminator=dict(optimizer=dict(type='SGD', lr=0.002, momentum=0.9)))

Top-level keys other than ``generator`` and ``discriminator`` (``type``,
``loss_scale``, ``paramwise_cfg``, ...) apply to both sides; a side's own value
wins, except that a side may not name a different wrapper ``type``.
"""
from typing import List, Optional

from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapperDict
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn

from .utils import unwrap_model

SIDES = ('generator', 'discriminator')
HINT = ("optim_wrapper=dict(constructor='GANOptimWrapperConstructor', "
        "generator=dict(optimizer=dict(type='SGD', lr=...)), "
        "discriminator=dict(optimizer=dict(type='SGD', lr=...)))")


def check_gan_optim_wrapper(optim_wrapper) -> None:
    """Raise a ``TypeError`` unless ``optim_wrapper`` is an ``OptimWrapperDict``
    with ``generator`` and ``discriminator``."""
    if isinstance(optim_wrapper, OptimWrapperDict):
        if set(SIDES) <= set(optim_wrapper.keys()):
            return
        got = f'OptimWrapperDict with keys {sorted(optim_wrapper.keys())}'
    else:
        got = type(optim_wrapper).__name__
    raise TypeError(f'GAN training needs an OptimWrapperDict with generator and '
                    f'discriminator wrappers, got {got}; write {HINT}')


def module_view(module: nn.Module, names: List[str], selected: bool,
                prefix: str = '') -> Optional[nn.Module]:
    """A module tree holding only the submodules in (or not in) ``names``.

    Parameter names in the view equal those in ``module`` (so ``custom_keys``
    of ``paramwise_cfg`` match) and untouched subtrees are the original modules
    (so norm-layer rules apply). Ancestors of a selected submodule become plain
    ``nn.Module`` containers.

    Args:
        module (nn.Module): The full model.
        names (list[str]): Dotted names of submodules, e.g. ``roi_head.box_discriminator``.
        selected (bool): Keep the named submodules (True) or everything else (False).
        prefix (str): Dotted name of ``module`` inside the full model.

    Returns:
        nn.Module or None: The view; None if it would hold nothing.
    """
    if any(prefix == n or prefix.startswith(n + '.') for n in names):
        return module if selected else None
    if prefix and not any(n.startswith(prefix + '.') for n in names):
        return None if selected else module
    view = nn.Module()
    if not selected:
        for name, param in module.named_parameters(recurse=False):
            view.register_parameter(name, param)
    for name, child in module.named_children():
        sub = module_view(child, names, selected, f'{prefix}.{name}' if prefix else name)
        if sub is not None:
            view.add_module(name, sub)
    return view


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class GANOptimWrapperConstructor:
    """Build ``OptimWrapperDict(generator=..., discriminator=...)`` for a GAN detector.

    Args:
        optim_wrapper_cfg (dict): ``generator`` and ``discriminator`` optim
            wrapper configs (each with an ``optimizer``) plus shared keys.
        paramwise_cfg (dict, optional): Shared ``paramwise_cfg`` (a side's own
            ``paramwise_cfg`` wins).
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        if not isinstance(optim_wrapper_cfg, dict):
            raise TypeError(f'optim_wrapper_cfg must be a dict, got {type(optim_wrapper_cfg)}')
        shared = dict(optim_wrapper_cfg)
        missing = [side for side in SIDES if side not in shared]
        if missing:
            raise ValueError(f'optim_wrapper is missing {missing}; write {HINT}')
        if 'optimizer' in shared:
            raise ValueError('optim_wrapper.optimizer is ambiguous for a GAN: give each side '
                             f'its own optimizer; write {HINT}')
        side_cfgs = {side: dict(shared.pop(side)) for side in SIDES}
        self.constructors = {}
        for side, cfg in side_cfgs.items():
            if 'optimizer' not in cfg:
                raise ValueError(f'optim_wrapper.{side} needs an optimizer, e.g. '
                                 f"{side}=dict(optimizer=dict(type='SGD', lr=0.01))")
            if 'type' in shared and cfg.get('type', shared['type']) != shared['type']:
                raise ValueError(
                    f"optim_wrapper.type={shared['type']!r} conflicts with optim_wrapper."
                    f"{side}.type={cfg['type']!r}; set the wrapper type in one place")
            cfg = {**shared, **cfg}
            side_paramwise = cfg.pop('paramwise_cfg', paramwise_cfg)
            self.constructors[side] = DefaultOptimWrapperConstructor(cfg, side_paramwise)

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        """Build the two optim wrappers for ``model`` (or a wrapped model)."""
        model = unwrap_model(model)
        if not hasattr(model, 'discriminator_names'):
            raise TypeError('GANOptimWrapperConstructor needs a model with discriminator_names() '
                            f'(e.g. GANMaskRCNN), got {type(model).__name__}')
        names = model.discriminator_names()
        for name in names:
            model.get_submodule(name)  # raises AttributeError naming a wrong name
        wrappers = {}
        for side in SIDES:
            view = module_view(model, names, selected=side == 'discriminator')
            if view is None or not any(True for _ in view.parameters()):
                raise ValueError(f'the {side} of {type(model).__name__} has no parameters '
                                 f'(discriminators: {names})')
            wrappers[side] = self.constructors[side](view)
        # Both wrappers log their clipped gradient norm under `train/<grad_name>`;
        # keep `grad_norm` for the generator and log the discriminator's apart.
        if hasattr(wrappers['discriminator'], 'grad_name'):
            wrappers['discriminator'].grad_name += '_d'
        return OptimWrapperDict(**wrappers)
