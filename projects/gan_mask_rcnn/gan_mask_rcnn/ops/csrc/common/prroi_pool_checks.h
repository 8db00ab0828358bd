// Host-side argument checks of the PrRoIPool ops, shared by every backend.
// Defined once, in prroi_pool_checks.cpp (compiled by the host compiler only):
// inline definitions here would be compiled by both g++ and nvcc's host pass,
// two copies of code that throws, of which the linker keeps one.
#ifndef PRROI_POOL_CHECKS_H
#define PRROI_POOL_CHECKS_H

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

namespace gan_mask_rcnn {

// features of `features_shape` (N, C, H, W) with `options` (dtype, device),
// rois (K, 5) of that dtype and device, a positive output size, and, for CPU
// rois, every rois[k, 0] (batch index) truncating to [0, N), as the kernels
// read it. CUDA rois are not copied to the host for it: the CUDA kernels pool
// a RoI with a bad index to NaN (and give it NaN coordinate gradients) without
// reading the features, and the Python entry points raise on it before.
void prroi_check_inputs(at::IntArrayRef features_shape,
                        const at::TensorOptions& options, const at::Tensor& rois,
                        int64_t pooled_height, int64_t pooled_width);

// `name` is (K, C, pooled_height, pooled_width) with the features' options.
void prroi_check_pooled(const at::Tensor& pooled, const char* name,
                        at::IntArrayRef features_shape,
                        const at::TensorOptions& options, const at::Tensor& rois,
                        int64_t pooled_height, int64_t pooled_width);

// Pyramid levels for prroi_pool_max_levels: 1 to 255 levels (the level index
// is one byte), one spatial scale each, one (N, C), dtype and device, each
// level and rois as prroi_check_inputs wants them (batch indices checked once).
void prroi_check_levels(at::TensorList features, const at::Tensor& rois,
                        int64_t pooled_height, int64_t pooled_width,
                        at::ArrayRef<double> spatial_scales);

}  // namespace gan_mask_rcnn

#endif  // PRROI_POOL_CHECKS_H
