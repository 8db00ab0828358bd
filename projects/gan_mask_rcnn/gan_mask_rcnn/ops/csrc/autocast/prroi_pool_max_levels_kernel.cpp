// Autocast kernel of the max-over-levels PrRoIPool op, as
// autocast/prroi_pool_kernel.cpp: every level and the RoIs are cast to float32,
// the op runs in float32, and the pooled output is cast back to the first
// level's dtype (the level index stays uint8).
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <tuple>
#include <vector>

namespace gan_mask_rcnn {
namespace {

std::tuple<at::Tensor, at::Tensor> prroi_pool_max_levels_call(
    at::TensorList features, const at::Tensor& rois, int64_t pooled_height,
    int64_t pooled_width, at::ArrayRef<double> spatial_scales) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("gan_mask_rcnn::prroi_pool_max_levels", "")
          .typed<std::tuple<at::Tensor, at::Tensor>(
              at::TensorList, const at::Tensor&, int64_t, int64_t,
              at::ArrayRef<double>)>();
  return op.call(features, rois, pooled_height, pooled_width, spatial_scales);
}

template <c10::DispatchKey autocast_key, c10::DeviceType device_type>
std::tuple<at::Tensor, at::Tensor> prroi_pool_max_levels_autocast(
    at::TensorList features, const at::Tensor& rois, int64_t pooled_height,
    int64_t pooled_width, at::ArrayRef<double> spatial_scales) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(autocast_key);
  TORCH_CHECK(!features.empty(),
              "prroi_pool_max_levels: need 1 to 255 levels, got 0");
  const std::vector<at::Tensor> feats =
      at::autocast::cached_cast(at::kFloat, features, device_type);
  auto result = prroi_pool_max_levels_call(
      feats, at::autocast::cached_cast(at::kFloat, rois, device_type),
      pooled_height, pooled_width, spatial_scales);
  return {std::get<0>(result).to(features[0].scalar_type()),
          std::get<1>(result)};
}

}  // namespace

TORCH_LIBRARY_IMPL(gan_mask_rcnn, AutocastCUDA, m) {
  m.impl("prroi_pool_max_levels",
         &prroi_pool_max_levels_autocast<c10::DispatchKey::AutocastCUDA,
                                         c10::DeviceType::CUDA>);
}

TORCH_LIBRARY_IMPL(gan_mask_rcnn, AutocastCPU, m) {
  m.impl("prroi_pool_max_levels",
         &prroi_pool_max_levels_autocast<c10::DispatchKey::AutocastCPU,
                                         c10::DeviceType::CPU>);
}

}  // namespace gan_mask_rcnn
