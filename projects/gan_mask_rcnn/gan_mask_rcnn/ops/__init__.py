"""Compiled ops of gan_mask_rcnn (extension ``gan_mask_rcnn.ops._C``)."""
from .prroi_pool import PrRoIPool, prroi_pool

__all__ = ['PrRoIPool', 'prroi_pool']
