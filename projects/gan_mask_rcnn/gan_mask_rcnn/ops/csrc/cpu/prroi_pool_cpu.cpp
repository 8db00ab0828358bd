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
#include "prroi_pool_utils.h"

namespace gan_mask_rcnn {
namespace {

// The bins of one RoI along one axis. Bin p covers grid indices
// first[p] .. first[p] + len[p] - 1 with weights (axis integral / bin extent)
// weight[p * stride + t]; all bins lie in lo .. lo + count - 1.
template <typename T>
struct AxisBins {
  std::vector<int> first, len;
  std::vector<T> weight, edge_lo, edge_hi;
  // Bin p spans fractions frac[p] .. frac[p + 1] of the RoI.
  std::vector<T> frac;
  // Interpolation taps (relative to lo) and weights of the bin edges.
  std::vector<int> tap;
  std::vector<T> tap_w;
  int stride = 0, lo = 0, count = 0;
  T bin = 0;

  void build(T start, T bin_size, int bins, int size) {
    bin = bin_size;
    first.resize(bins);
    len.resize(bins);
    edge_lo.resize(bins);
    edge_hi.resize(bins);
    stride = 0;
    for (int p = 0; p < bins; ++p) {
      int f, l;
      prroi_bin_edges(start, bin, p, &edge_lo[p], &edge_hi[p]);
      prroi_axis_range(edge_lo[p], edge_hi[p], size, &f, &l);
      first[p] = f;
      len[p] = std::max(l - f + 1, 0);
      stride = std::max(stride, len[p]);
    }
    weight.assign(static_cast<size_t>(bins) * stride, T(0));
    for (int p = 0; p < bins; ++p)
      for (int t = 0; t < len[p]; ++t)
        weight[p * stride + t] =
            prroi_axis_weight(edge_lo[p], edge_hi[p], first[p] + t) / bin;
    int f, l;
    prroi_axis_range(edge_lo[0], edge_hi[bins - 1], size, &f, &l);
    lo = f;
    count = std::max(l - f + 1, 0);
    frac.resize(bins + 1);
    for (int p = 0; p <= bins; ++p) frac[p] = T(p) / T(bins);
    tap.resize(4 * bins);
    tap_w.resize(4 * bins);
    for (int e = 0; e < 2 * bins; ++e) {
      int i0;
      T w[2];
      prroi_interp_taps(e % 2 ? edge_hi[e / 2] : edge_lo[e / 2], size, &i0,
                        &w[0], &w[1]);
      for (int t = 0; t < 2; ++t) {
        const int rel = i0 + t - lo;
        const bool inside = rel >= 0 && rel < count;
        tap[2 * e + t] = inside ? rel : 0;
        tap_w[2 * e + t] = inside ? w[t] : T(0);
      }
    }
  }

  // Value on edge e (2 p: bin p's low edge, 2 p + 1: its high edge) of a row
  // sampled at grid indices lo .. lo + count - 1 (count > 0): linear
  // interpolation between two taps, 0 outside the sampled range.
  T edge_value(int e, const T* row) const {
    return tap_w[2 * e] * row[tap[2 * e]] +
           tap_w[2 * e + 1] * row[tap[2 * e + 1]];
  }

  // Weighted sum over bin p of a row sampled at grid indices lo .. lo+count-1.
  T dot(int p, const T* row) const {
    const T* w = weight.data() + static_cast<size_t>(p) * stride;
    const T* src = row + (first[p] - lo);
    T sum = T(0);
    for (int t = 0; t < len[p]; ++t) sum += w[t] * src[t];
    return sum;
  }
};

// Geometry of one RoI on the feature map and its per-axis bins.
template <typename T>
struct RoiBins {
  AxisBins<T> x, y;
  int64_t batch = 0;
  int state = kPrRoIEmpty;

  template <typename scalar_t>
  void build(const scalar_t* roi, T scale, int pooled_h, int pooled_w,
             int height, int width) {
    batch = static_cast<int64_t>(roi[0]);
    const T x1 = static_cast<T>(roi[1]) * scale;
    const T y1 = static_cast<T>(roi[2]) * scale;
    T bw, bh;
    state = prroi_roi_bins(x1, y1, static_cast<T>(roi[3]) * scale,
                           static_cast<T>(roi[4]) * scale, pooled_h, pooled_w,
                           &bw, &bh);
    if (state != kPrRoIValid) return;
    x.build(x1, bw, pooled_w, width);
    y.build(y1, bh, pooled_h, height);
  }

  // rows[ph * x.count + i] = mean over bin row ph of f(x.lo + i, y): the
  // vertical pass, (pooled_h, x.count).
  template <typename scalar_t>
  void pool_rows(const scalar_t* plane, int width, std::vector<T>& rows) const {
    const int nx = x.count, pooled_h = static_cast<int>(y.first.size());
    rows.assign(static_cast<size_t>(pooled_h) * nx, T(0));
    for (int ph = 0; ph < pooled_h; ++ph) {
      T* __restrict__ r = rows.data() + static_cast<size_t>(ph) * nx;
      for (int t = 0; t < y.len[ph]; ++t) {
        const T w = y.weight[ph * y.stride + t];
        const scalar_t* __restrict__ src =
            plane + static_cast<int64_t>(y.first[ph] + t) * width + x.lo;
        for (int i = 0; i < nx; ++i) r[i] += w * static_cast<T>(src[i]);
      }
    }
  }
};

// RoiBins of every RoI, built in parallel.
template <typename T, typename scalar_t>
std::vector<RoiBins<T>> build_bins(const scalar_t* rois, int64_t num_rois,
                                   T scale, int pooled_h, int pooled_w,
                                   int height, int width) {
  std::vector<RoiBins<T>> bins(num_rois);
  at::parallel_for(0, num_rois, 16, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k)
      bins[k].build(rois + k * 5, scale, pooled_h, pooled_w, height, width);
  });
  return bins;
}

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
      const int nx = x.count;
      const scalar_t* plane = feat + (roi.batch * channels + c) * plane_size;
      roi.pool_rows(plane, width, rows);
      // f(x.lo + i, y) on each bin row's top and bottom edge.
      top.assign(static_cast<size_t>(pooled_h) * nx, T(0));
      bottom.assign(static_cast<size_t>(pooled_h) * nx, T(0));
      for (int ph = 0; ph < pooled_h; ++ph)
        for (int side = 0; side < 2; ++side) {
          int j0;
          T w[2];
          prroi_interp_taps(side ? y.edge_hi[ph] : y.edge_lo[ph], height, &j0,
                            &w[0], &w[1]);
          T* __restrict__ dst =
              (side ? bottom : top).data() + static_cast<size_t>(ph) * nx;
          for (int tap = 0; tap < 2; ++tap) {
            const int j = j0 + tap;
            if (j < 0 || j >= height || w[tap] == T(0)) continue;
            const scalar_t* __restrict__ src =
                plane + static_cast<int64_t>(j) * width + x.lo;
            for (int i = 0; i < nx; ++i)
              dst[i] += w[tap] * static_cast<T>(src[i]);
          }
        }
      T acc[4] = {T(0), T(0), T(0), T(0)};
      const scalar_t* g = grad + (k * channels + c) * bins;
      const scalar_t* o = out + (k * channels + c) * bins;
      const T inv_bw = T(1) / x.bin, inv_bh = T(1) / y.bin;
      for (int ph = 0; ph < pooled_h; ++ph) {
        const size_t row = static_cast<size_t>(ph) * nx;
        for (int pw = 0; pw < pooled_w; ++pw) {
          const int b = ph * pooled_w + pw;
          prroi_roi_grad(static_cast<T>(g[b]), static_cast<T>(o[b]),
                         x.edge_value(2 * pw, rows.data() + row),
                         x.edge_value(2 * pw + 1, rows.data() + row),
                         x.dot(pw, top.data() + row),
                         x.dot(pw, bottom.data() + row), inv_bw, inv_bh,
                         x.frac[pw], x.frac[pw + 1], y.frac[ph],
                         y.frac[ph + 1], scale, acc);
        }
      }
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
