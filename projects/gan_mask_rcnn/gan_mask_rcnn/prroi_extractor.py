"""RoI extractor with Precise RoI Pooling, for mmdet RoI heads.

``level_mode='mapped'`` pools each RoI from the one FPN level chosen by mmdet's
scale rule (``SingleRoIExtractor.map_roi_levels``); ``level_mode='max'`` pools
every RoI from every level and keeps the element-wise maximum, as the thesis'
discriminators do (28 x 28 PrRoIPool on all FPN levels). Gradients reach the
features and the RoI coordinates in both modes.

Under ``torch.autocast`` (``--amp``) mmdet's extractors cast the RoIs to the
features' 16-bit dtype, which rounds box corners to steps of 1 px (float16) or
8 px (bfloat16) between 1024 and 2048 px. This one pools from float32 RoIs and
float32 features instead and returns the features' dtype, so the GAN's
coordinate gradient is taken at the boxes as predicted.
"""
from typing import List, Optional, Tuple

import torch
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptMultiConfig
from torch import Tensor

from .ops import PrRoIPool, prroi_pool_max_levels
from .ops._checks import compute_dtype

LEVEL_MODES = ('mapped', 'max')


@MODELS.register_module()
class PrRoIExtractor(SingleRoIExtractor):
    """Extracts RoI features with :class:`~gan_mask_rcnn.ops.PrRoIPool`.

    Args:
        out_channels (int): Channels of the feature maps.
        featmap_strides (list[int]): Strides of the feature maps, image pixels.
        roi_layer (dict): RoI layer config. Without ``type`` or with
            ``type='PrRoIPool'`` it is this project's op (not mmcv's CUDA-only
            one); other types are looked up in ``mmcv.ops`` as mmdet does.
            Defaults to ``dict(output_size=28)``.
        level_mode (str): ``'mapped'`` (one level per RoI by scale) or
            ``'max'`` (element-wise maximum over all levels).
            Defaults to ``'mapped'``.
        finest_scale (int): Scale threshold of level 0 for ``'mapped'``.
            Defaults to 56.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 out_channels: int,
                 featmap_strides: List[int],
                 roi_layer: ConfigType = dict(output_size=28),
                 level_mode: str = 'mapped',
                 finest_scale: int = 56,
                 init_cfg: OptMultiConfig = None) -> None:
        if level_mode not in LEVEL_MODES:
            raise ValueError(
                f'level_mode must be one of {LEVEL_MODES}, got {level_mode!r}')
        super().__init__(roi_layer=roi_layer,
                         out_channels=out_channels,
                         featmap_strides=featmap_strides,
                         finest_scale=finest_scale,
                         init_cfg=init_cfg)
        self.level_mode = level_mode

    def build_roi_layers(self, layer_cfg: ConfigType,
                         featmap_strides: List[int]) -> torch.nn.ModuleList:
        """One RoI layer per level; ``PrRoIPool`` means this project's op."""
        cfg = dict(layer_cfg)
        if cfg.get('type', 'PrRoIPool') == 'PrRoIPool':
            cfg['type'] = PrRoIPool
        return super().build_roi_layers(cfg, featmap_strides)

    def forward(self,
                feats: Tuple[Tensor],
                rois: Tensor,
                roi_scale_factor: Optional[float] = None) -> Tensor:
        """Pools RoI features.

        Args:
            feats (tuple[Tensor]): Levels, each (N, C, H_l, W_l).
            rois (Tensor): (K, 5) ``[batch_index, x1, y1, x2, y2]``, image
                pixels.
            roi_scale_factor (float, optional): Scales the RoIs about their
                centres first. Defaults to None.

        Returns:
            Tensor: (K, C, out_h, out_w) RoI features, of the features'
            dtype (computed in float32 under autocast).
        """
        dtype = feats[0].dtype
        if compute_dtype(feats[0]) != dtype:  # 16-bit features under autocast
            feats = tuple(feat.float() for feat in feats)
            return self._pool(feats, rois.float(), roi_scale_factor).to(dtype)
        return self._pool(feats, rois, roi_scale_factor)

    def _pool(self, feats: Tuple[Tensor], rois: Tensor,
              roi_scale_factor: Optional[float]) -> Tensor:
        if self.level_mode == 'mapped':
            return super().forward(feats, rois, roi_scale_factor)
        rois = rois.type_as(feats[0])
        if roi_scale_factor is not None:
            rois = self.roi_rescale(rois, roi_scale_factor)
        layers = self.roi_layers
        if not all(isinstance(layer, PrRoIPool) for layer in layers):
            raise TypeError("level_mode='max' needs roi_layer=dict(type='PrRoIPool', ...), "
                            f'got {type(layers[0]).__name__}')
        return prroi_pool_max_levels(feats[:len(layers)], rois, layers[0].output_size,
                                     [layer.spatial_scale for layer in layers])
