// Schemas of the max-over-levels PrRoIPool op and its RoI-coordinate backward
// in the `gan_mask_rcnn` library. Kernels: cpu/prroi_pool_max_levels_kernel.cpp,
// cuda/prroi_pool_max_levels_kernel.cu, autocast/prroi_pool_max_levels_kernel.cpp;
// autograd and fake kernels in gan_mask_rcnn/ops/prroi_pool_max_levels.py.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(gan_mask_rcnn, m) {
  // Element-wise maximum of prroi_pool over pyramid levels, (K, C, PH, PW),
  // and the index of the level each element came from (uint8, same shape).
  m.def(
      "prroi_pool_max_levels(Tensor[] features, Tensor rois, int "
      "pooled_height, int pooled_width, float[] spatial_scales) -> "
      "(Tensor, Tensor)");
  // Its gradient wrt rois, (K, 5): each element contributes the coordinate
  // gradient of the level it came from.
  m.def(
      "prroi_pool_max_levels_coor_backward(Tensor grad_output, Tensor output, "
      "Tensor level, Tensor[] features, Tensor rois, int pooled_height, "
      "int pooled_width, float[] spatial_scales) -> Tensor");
}
