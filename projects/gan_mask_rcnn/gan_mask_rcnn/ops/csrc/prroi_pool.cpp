// Schemas of the PrRoIPool ops in the `gan_mask_rcnn` library, and the Python
// module init that makes `import gan_mask_rcnn.ops._C` load them. The kernels
// are registered per backend in cpu/prroi_pool_cpu.cpp and
// cuda/prroi_pool_cuda.cu; autograd and the fake (meta) kernels are registered
// in Python (gan_mask_rcnn/ops/prroi_pool.py).
#include <Python.h>
#include <torch/library.h>

extern "C" {
// A module with no functions: importing it runs the static registrations.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr,
                                          -1, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(gan_mask_rcnn, m) {
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
