// CPU kernels of PrRoIPool (float, double).
//
// The bin average is separable (see prroi_pool_utils.h), so per (roi, channel)
// the forward runs a vertical pass that reduces the RoI's rows to one row per
// output bin row (contiguous, vectorised), then a short horizontal pass per bin:
// O(PH * (rows per bin) * (RoI width) + PH * PW * (columns per bin)) instead of
// a 2-D loop per bin. The axis weights are computed once per RoI, before the
// loops. Parallelism: over channels x rois, channel-major, so that a thread
// reads one feature plane for many RoIs while it is in cache; the feature
// gradient over channels only, so that RoIs of one image never write one plane
// from two threads (no atomics).
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "prroi_pool_checks.h"
#include "prroi_pool_cpu_bins.h"
#include "prroi_pool_utils.h"

namespace gan_mask_rcnn {
namespace {

template <typename scalar_t>
void forward_kernel(const at::Tensor& features, const at::Tensor& rois,
                    at::Tensor& output, int pooled_h, int pooled_w,
                    double spatial_scale) {
  using T = at::opmath_type<scalar_t>;
  const int64_t channels = features.size(1), num_rois = rois.size(0);
  const int height = features.size(2), width = features.size(3);
  const int64_t bins = pooled_h * pooled_w, plane_size = height * width;
  const scalar_t* feat = features.const_data_ptr<scalar_t>();
  scalar_t* out = output.mutable_data_ptr<scalar_t>();
  const auto all = build_bins<T>(rois.const_data_ptr<scalar_t>(), num_rois,
                                 static_cast<T>(spatial_scale), pooled_h,
                                 pooled_w, height, width);
  at::parallel_for(0, channels * num_rois, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> rows;
    for (int64_t n = begin; n < end; ++n) {
      const int64_t c = n / num_rois, k = n % num_rois;
      const RoiBins<T>& roi = all[k];
      scalar_t* o = out + (k * channels + c) * bins;
      if (roi.state != kPrRoIValid) {
        const scalar_t fill = roi.state == kPrRoIEmpty
                                  ? scalar_t(0)
                                  : std::numeric_limits<scalar_t>::quiet_NaN();
        std::fill(o, o + bins, fill);
        continue;
      }
      roi.pool_rows(feat + (roi.batch * channels + c) * plane_size, width,
                    rows);
      for (int ph = 0; ph < pooled_h; ++ph) {
        const T* r = rows.data() + static_cast<size_t>(ph) * roi.x.count;
        for (int pw = 0; pw < pooled_w; ++pw)
          o[ph * pooled_w + pw] = static_cast<scalar_t>(roi.x.dot(pw, r));
      }
    }
  });
}

template <typename scalar_t>
void backward_kernel(const at::Tensor& grad_output, const at::Tensor& rois,
                     at::Tensor& grad_features, int pooled_h, int pooled_w,
                     double spatial_scale) {
  using T = at::opmath_type<scalar_t>;
  const int64_t channels = grad_features.size(1), num_rois = rois.size(0);
  const int height = grad_features.size(2), width = grad_features.size(3);
  const int64_t bins = pooled_h * pooled_w, plane_size = height * width;
  const scalar_t* grad = grad_output.const_data_ptr<scalar_t>();
  scalar_t* grad_feat = grad_features.mutable_data_ptr<scalar_t>();
  const auto all = build_bins<T>(rois.const_data_ptr<scalar_t>(), num_rois,
                                 static_cast<T>(spatial_scale), pooled_h,
                                 pooled_w, height, width);
  at::parallel_for(0, channels, 1, [&](int64_t c_begin, int64_t c_end) {
    std::vector<T> rows;
    for (int64_t c = c_begin; c < c_end; ++c)
      for (int64_t k = 0; k < num_rois; ++k) {
        const RoiBins<T>& roi = all[k];
        if (roi.state != kPrRoIValid) continue;
        const AxisBins<T>&x = roi.x, &y = roi.y;
        const int nx = x.count;
        // Adjoint of the horizontal pass: spread each bin's gradient on its row.
        const scalar_t* g = grad + (k * channels + c) * bins;
        rows.assign(static_cast<size_t>(pooled_h) * nx, T(0));
        for (int ph = 0; ph < pooled_h; ++ph)
          for (int pw = 0; pw < pooled_w; ++pw) {
            const T gv = static_cast<T>(g[ph * pooled_w + pw]);
            T* r = rows.data() + static_cast<size_t>(ph) * nx +
                   (x.first[pw] - x.lo);
            const T* w = x.weight.data() + static_cast<size_t>(pw) * x.stride;
            for (int t = 0; t < x.len[pw]; ++t) r[t] += w[t] * gv;
          }
        // Adjoint of the vertical pass.
        scalar_t* plane = grad_feat + (roi.batch * channels + c) * plane_size;
        for (int ph = 0; ph < pooled_h; ++ph) {
          const T* __restrict__ r = rows.data() + static_cast<size_t>(ph) * nx;
          for (int t = 0; t < y.len[ph]; ++t) {
            const T w = y.weight[ph * y.stride + t];
            scalar_t* __restrict__ dst =
                plane + static_cast<int64_t>(y.first[ph] + t) * width + x.lo;
            for (int i = 0; i < nx; ++i)
              dst[i] += static_cast<scalar_t>(w * r[i]);
          }
        }
      }
  });
}

// Writes partial[(k * C + c) * 4 + (x1, y1, x2, y2)]: channel c's share of
// the gradient wrt RoI k.
template <typename scalar_t>
void coor_backward_kernel(const at::Tensor& grad_output,
                          const at::Tensor& output, const at::Tensor& features,
                          const at::Tensor& rois, at::Tensor& partial,
                          int pooled_h, int pooled_w, double spatial_scale) {
  using T = at::opmath_type<scalar_t>;
  const int64_t channels = features.size(1), num_rois = rois.size(0);
  const int height = features.size(2), width = features.size(3);
  const int64_t bins = pooled_h * pooled_w, plane_size = height * width;
  const scalar_t* grad = grad_output.const_data_ptr<scalar_t>();
  const scalar_t* out = output.const_data_ptr<scalar_t>();
  const scalar_t* feat = features.const_data_ptr<scalar_t>();
  T* part = partial.mutable_data_ptr<T>();
  const T scale = static_cast<T>(spatial_scale);
  const auto all = build_bins<T>(rois.const_data_ptr<scalar_t>(), num_rois,
                                 scale, pooled_h, pooled_w, height, width);
  at::parallel_for(0, channels * num_rois, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> rows, top, bottom;
    for (int64_t n = begin; n < end; ++n) {
      const int64_t c = n / num_rois, k = n % num_rois;
      const RoiBins<T>& roi = all[k];
      const AxisBins<T>&x = roi.x, &y = roi.y;
      T* grad_roi = part + (k * channels + c) * 4;
      if (roi.state != kPrRoIValid || x.count == 0 || y.count == 0) {
        const T fill = roi.state == kPrRoINonFinite
                           ? std::numeric_limits<T>::quiet_NaN()
                           : T(0);
        std::fill(grad_roi, grad_roi + 4, fill);
        continue;
      }
      const scalar_t* g = grad + (k * channels + c) * bins;
      T acc[4] = {T(0), T(0), T(0), T(0)};
      roi.coor_grad(feat + (roi.batch * channels + c) * plane_size, height,
                    width, g, out + (k * channels + c) * bins, scale,
                    [&](int b) { return g[b] != scalar_t(0); }, rows, top,
                    bottom, acc);
      std::copy(acc, acc + 4, grad_roi);
    }
  });
}

at::Tensor prroi_pool_cpu(const at::Tensor& features, const at::Tensor& rois,
                          int64_t pooled_height, int64_t pooled_width,
                          double spatial_scale) {
  prroi_check_inputs(features.sizes(), features.options(), rois,
                     pooled_height, pooled_width);
  const auto feat = features.contiguous();
  const auto boxes = rois.contiguous();
  auto output = at::empty(
      {rois.size(0), features.size(1), pooled_height, pooled_width},
      features.options());
  AT_DISPATCH_FLOATING_TYPES(features.scalar_type(), "prroi_pool_cpu", [&] {
    forward_kernel<scalar_t>(feat, boxes, output, pooled_height, pooled_width,
                             spatial_scale);
  });
  return output;
}

at::Tensor prroi_pool_backward_cpu(const at::Tensor& grad_output,
                                   const at::Tensor& rois,
                                   at::IntArrayRef features_shape,
                                   int64_t pooled_height, int64_t pooled_width,
                                   double spatial_scale) {
  prroi_check_inputs(features_shape, grad_output.options(), rois,
                     pooled_height, pooled_width);
  prroi_check_pooled(grad_output, "grad_output", features_shape,
                     grad_output.options(), rois, pooled_height, pooled_width);
  auto grad_features = at::zeros(features_shape, grad_output.options());
  const auto grad = grad_output.contiguous();
  const auto boxes = rois.contiguous();
  AT_DISPATCH_FLOATING_TYPES(
      grad_output.scalar_type(), "prroi_pool_backward_cpu", [&] {
        backward_kernel<scalar_t>(grad, boxes, grad_features, pooled_height,
                                  pooled_width, spatial_scale);
      });
  return grad_features;
}

at::Tensor prroi_pool_coor_backward_cpu(const at::Tensor& grad_output,
                                        const at::Tensor& output,
                                        const at::Tensor& features,
                                        const at::Tensor& rois,
                                        int64_t pooled_height,
                                        int64_t pooled_width,
                                        double spatial_scale) {
  prroi_check_inputs(features.sizes(), features.options(), rois,
                     pooled_height, pooled_width);
  prroi_check_pooled(grad_output, "grad_output", features.sizes(),
                     features.options(), rois, pooled_height, pooled_width);
  prroi_check_pooled(output, "output", features.sizes(), features.options(),
                     rois, pooled_height, pooled_width);
  auto grad_rois = at::zeros_like(rois, at::MemoryFormat::Contiguous);
  AT_DISPATCH_FLOATING_TYPES(
      features.scalar_type(), "prroi_pool_coor_backward_cpu", [&] {
        using T = at::opmath_type<scalar_t>;
        auto partial = at::empty(
            {rois.size(0), features.size(1), 4},
            features.options().dtype(c10::CppTypeToScalarType<T>::value));
        coor_backward_kernel<scalar_t>(
            grad_output.contiguous(), output.contiguous(),
            features.contiguous(), rois.contiguous(), partial, pooled_height,
            pooled_width, spatial_scale);
        grad_rois.narrow(1, 1, 4).copy_(partial.sum(1));
      });
  return grad_rois;
}

}  // namespace

TORCH_LIBRARY_IMPL(gan_mask_rcnn, CPU, m) {
  m.impl("prroi_pool", &prroi_pool_cpu);
  m.impl("prroi_pool_backward", &prroi_pool_backward_cpu);
  m.impl("prroi_pool_coor_backward", &prroi_pool_coor_backward_cpu);
}

}  // namespace gan_mask_rcnn
