// Definitions of the host-side argument checks (prroi_pool_checks.h).
#include "prroi_pool_checks.h"

namespace gan_mask_rcnn {

void prroi_check_inputs(at::IntArrayRef features_shape,
                        const at::TensorOptions& options,
                        const at::Tensor& rois, int64_t pooled_height,
                        int64_t pooled_width) {
  TORCH_CHECK(features_shape.size() == 4,
              "prroi_pool: features must be (N, C, H, W), got shape ",
              features_shape);
  TORCH_CHECK(rois.dim() == 2 && rois.size(1) == 5,
              "prroi_pool: rois must be (K, 5), got shape ", rois.sizes());
  TORCH_CHECK(options.device() == rois.device(),
              "prroi_pool: features and rois must be on one device, got ",
              options.device(), " and ", rois.device());
  const auto dtype = c10::typeMetaToScalarType(options.dtype());
  TORCH_CHECK(dtype == rois.scalar_type(),
              "prroi_pool: features and rois must have one dtype, got ", dtype,
              " and ", rois.scalar_type());
  TORCH_CHECK(at::isFloatingType(dtype),
              "prroi_pool: features must be floating point, got ", dtype);
  TORCH_CHECK(pooled_height > 0 && pooled_width > 0,
              "prroi_pool: output_size must be positive, got (", pooled_height,
              ", ", pooled_width, ")");
  // CUDA RoIs: no host sync here; the kernels pool a bad index to NaN and
  // read nothing for it, and the Python entry points reject it first.
  if (!rois.device().is_cpu()) return;
  const auto index = rois.select(1, 0).to(at::kDouble).contiguous();
  const double* data = index.const_data_ptr<double>();
  for (int64_t k = 0; k < index.numel(); ++k)
    TORCH_CHECK(data[k] > -1 && data[k] < features_shape[0], "prroi_pool: rois[",
                k, ", 0] (batch index) must be in [0, ", features_shape[0],
                "), got ", data[k]);
}

void prroi_check_pooled(const at::Tensor& pooled, const char* name,
                        at::IntArrayRef features_shape,
                        const at::TensorOptions& options,
                        const at::Tensor& rois, int64_t pooled_height,
                        int64_t pooled_width) {
  const int64_t shape[] = {rois.size(0), features_shape[1], pooled_height,
                           pooled_width};
  TORCH_CHECK(pooled.sizes() == at::IntArrayRef(shape), "prroi_pool: ", name,
              " must have shape ", at::IntArrayRef(shape), ", got ",
              pooled.sizes());
  TORCH_CHECK(pooled.scalar_type() == c10::typeMetaToScalarType(options.dtype()) &&
                  pooled.device() == options.device(),
              "prroi_pool: ", name, " must be ", options.dtype(), " on ",
              options.device(), ", got ", pooled.scalar_type(), " on ",
              pooled.device());
}

void prroi_check_levels(at::TensorList features, const at::Tensor& rois,
                        int64_t pooled_height, int64_t pooled_width,
                        at::ArrayRef<double> spatial_scales) {
  TORCH_CHECK(!features.empty() && features.size() <= 255,
              "prroi_pool_max_levels: need 1 to 255 levels, got ",
              features.size());
  TORCH_CHECK(features.size() == spatial_scales.size(),
              "prroi_pool_max_levels: need one spatial scale per level, got ",
              features.size(), " levels and ", spatial_scales.size(),
              " scales");
  prroi_check_inputs(features[0].sizes(), features[0].options(), rois,
                     pooled_height, pooled_width);
  for (const auto& f : features) {
    TORCH_CHECK(f.dim() == 4 && f.size(0) == features[0].size(0) &&
                    f.size(1) == features[0].size(1),
                "prroi_pool_max_levels: every level must be (N, C, H, W) with "
                "the (N, C) of the first, got ",
                features[0].sizes(), " and ", f.sizes());
    TORCH_CHECK(f.scalar_type() == features[0].scalar_type() &&
                    f.device() == features[0].device(),
                "prroi_pool_max_levels: every level must be ",
                features[0].scalar_type(), " on ", features[0].device(),
                ", got ", f.scalar_type(), " on ", f.device());
  }
}

}  // namespace gan_mask_rcnn
