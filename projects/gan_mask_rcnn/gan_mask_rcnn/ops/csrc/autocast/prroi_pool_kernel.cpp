// Autocast kernel of the PrRoIPool forward op (torchvision's pattern for
// roi_align; autocast/prroi_pool_max_levels_kernel.cpp does the same for the
// max-over-levels op): under torch.autocast (CUDA or CPU) the features and
// RoIs are cast to float32, the op runs in float32, and the pooled output is
// cast back to the features' dtype. The RoI coordinates are therefore never rounded to
// float16 / bfloat16 (steps of 1 px or 8 px between 1024 and 2048 px), and the
// coordinate gradient is taken at the boxes as given. float64 inputs stay
// float64. The backward ops need no autocast kernel: they receive the float32
// tensors that autograd saved.
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

namespace gan_mask_rcnn {
namespace {

at::Tensor prroi_pool_call(const at::Tensor& features, const at::Tensor& rois,
                           int64_t pooled_height, int64_t pooled_width,
                           double spatial_scale) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("gan_mask_rcnn::prroi_pool", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t,
                            int64_t, double)>();
  return op.call(features, rois, pooled_height, pooled_width, spatial_scale);
}

template <c10::DispatchKey autocast_key, c10::DeviceType device_type>
at::Tensor prroi_pool_autocast(const at::Tensor& features,
                               const at::Tensor& rois, int64_t pooled_height,
                               int64_t pooled_width, double spatial_scale) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(autocast_key);
  return prroi_pool_call(
             at::autocast::cached_cast(at::kFloat, features, device_type),
             at::autocast::cached_cast(at::kFloat, rois, device_type),
             pooled_height, pooled_width, spatial_scale)
      .to(features.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(gan_mask_rcnn, AutocastCUDA, m) {
  m.impl("prroi_pool",
         &prroi_pool_autocast<c10::DispatchKey::AutocastCUDA,
                              c10::DeviceType::CUDA>);
}

TORCH_LIBRARY_IMPL(gan_mask_rcnn, AutocastCPU, m) {
  m.impl("prroi_pool",
         &prroi_pool_autocast<c10::DispatchKey::AutocastCPU,
                              c10::DeviceType::CPU>);
}

}  // namespace gan_mask_rcnn
