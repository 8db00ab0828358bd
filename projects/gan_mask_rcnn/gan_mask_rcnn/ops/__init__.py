"""Compiled ops of gan_mask_rcnn (extension ``gan_mask_rcnn.ops._C``)."""
from .prroi_pool import PrRoIPool, prroi_pool
from .prroi_pool_max_levels import prroi_pool_max_levels

__all__ = ['PrRoIPool', 'prroi_pool', 'prroi_pool_max_levels']
