// Schemas of the PrRoIPool op and its two backward ops in the `gan_mask_rcnn`
// library. Kernels: cpu/prroi_pool_kernel.cpp, cuda/prroi_pool_kernel.cu,
// autocast/prroi_pool_kernel.cpp; autograd and fake kernels in
// gan_mask_rcnn/ops/prroi_pool.py.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(gan_mask_rcnn, m) {
  // (N, C, H, W), (K, 5) -> (K, C, pooled_height, pooled_width)
  m.def(
      "prroi_pool(Tensor features, Tensor rois, int pooled_height, "
      "int pooled_width, float spatial_scale) -> Tensor");
  // Gradient wrt features, (N, C, H, W).
  m.def(
      "prroi_pool_backward(Tensor grad_output, Tensor rois, SymInt[] "
      "features_shape, int pooled_height, int pooled_width, "
      "float spatial_scale) -> Tensor");
  // Gradient wrt rois, (K, 5); the batch-index column is 0.
  m.def(
      "prroi_pool_coor_backward(Tensor grad_output, Tensor output, "
      "Tensor features, Tensor rois, int pooled_height, int pooled_width, "
      "float spatial_scale) -> Tensor");
}
