// CPU kernel of prroi_pool_max_levels: PrRoIPool of every RoI on every pyramid
// level, merged by element-wise maximum in one pass, with the index of the
// winning level. Per (roi, bin) each level's average is taken for all channels
// at once into a small buffer and merged there, so no per-level output tensor
// is ever allocated. The maximum follows torch.maximum: NaN wins (and stays),
// ties keep the first level.
//
// Both kernels work channels-last, a bin's or a pixel's channels being one
// contiguous, vectorised loop: the levels are read as (N, H, W, C) (in place
// when they come channels-last, else copied), and the output (and the level
// index) is written channels-last, (K, C, H, W) with strides (H * W * C, 1,
// W * C, C): the layout the discriminators' convolutions are fastest in on CPU.
// The coordinate backward reads gradient, output and level in it (a gradient
// in another layout is copied).
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <limits>
#include <vector>

#include "prroi_pool_checks.h"
#include "prroi_pool_cpu_bins.h"
#include "prroi_pool_utils.h"

namespace gan_mask_rcnn {
namespace {

// RoiBins of every RoI on every level: all[level][roi].
template <typename T, typename scalar_t>
std::vector<std::vector<RoiBins<T>>> level_bins(
    const std::vector<at::Tensor>& features, const at::Tensor& rois,
    const std::vector<double>& scales, int pooled_h, int pooled_w) {
  std::vector<std::vector<RoiBins<T>>> all(features.size());
  for (size_t l = 0; l < features.size(); ++l)
    all[l] = build_bins<T>(rois.const_data_ptr<scalar_t>(), rois.size(0),
                           static_cast<T>(scales[l]), pooled_h, pooled_w,
                           features[l].size(2), features[l].size(3));
  return all;
}

// (N, H, W, C) in memory: a view of a channels-last level, else a copy.
at::Tensor nhwc(const at::Tensor& t) { return t.permute({0, 2, 3, 1}).contiguous(); }

// Forward, channels-last output (K, H, W, C in memory). Per RoI and bin, each
// level's bin average sum_ty sum_tx w_y w_x f(y, x) is taken for all channels
// at once from the channels-last level (the channel loop is the
// contiguous, vectorised one), merged by maximum in a C-sized buffer and
// written to the output once.
template <typename scalar_t>
void max_levels_kernel(const std::vector<at::Tensor>& features,
                       const at::Tensor& rois,
                       const std::vector<double>& scales, at::Tensor& output,
                       at::Tensor& level, int pooled_h, int pooled_w) {
  using T = at::opmath_type<scalar_t>;
  const int64_t channels = features[0].size(1), num_rois = rois.size(0);
  const int64_t bins = pooled_h * pooled_w;
  const int num_levels = static_cast<int>(features.size());
  const auto all = level_bins<T, scalar_t>(features, rois, scales, pooled_h,
                                           pooled_w);
  std::vector<at::Tensor> levels;  // (N, H, W, C) in memory
  for (const auto& f : features) levels.push_back(nhwc(f));
  scalar_t* out = output.mutable_data_ptr<scalar_t>();
  uint8_t* lvl = level.mutable_data_ptr<uint8_t>();
  at::parallel_for(0, num_rois, 1, [&](int64_t begin, int64_t end) {
    const int64_t n = channels;  // a local: byte stores may alias a reference
    std::vector<T> acc(n), best(n);
    std::vector<uint8_t> won(n);
    for (int64_t k = begin; k < end; ++k)
      for (int ph = 0; ph < pooled_h; ++ph)
        for (int pw = 0; pw < pooled_w; ++pw) {
          for (int l = 0; l < num_levels; ++l) {
            const RoiBins<T>& roi = all[l][k];
            T* __restrict__ a = l == 0 ? best.data() : acc.data();
            if (roi.state != kPrRoIValid) {
              std::fill(a, a + n, roi.state == kPrRoIEmpty
                                             ? T(0)
                                             : std::numeric_limits<T>::quiet_NaN());
            } else {
              const int height = features[l].size(2), width = features[l].size(3);
              const scalar_t* plane = levels[l].const_data_ptr<scalar_t>() +
                                      roi.batch * height * width * n;
              std::fill(a, a + n, T(0));
              for (int ty = 0; ty < roi.y.len[ph]; ++ty) {
                const T wy = roi.y.weight[ph * roi.y.stride + ty];
                const int64_t row = roi.y.first[ph] + ty;
                for (int tx = 0; tx < roi.x.len[pw]; ++tx) {
                  const T w = wy * roi.x.weight[pw * roi.x.stride + tx];
                  const scalar_t* __restrict__ src =
                      plane + (row * width + roi.x.first[pw] + tx) * n;
                  for (int64_t c = 0; c < n; ++c)
                    a[c] += w * static_cast<T>(src[c]);
                }
              }
            }
            if (l == 0) {
              std::fill(won.begin(), won.end(), uint8_t(0));
              continue;
            }
            const T* __restrict__ cand = acc.data();
            T* __restrict__ top = best.data();
            uint8_t* __restrict__ from = won.data();
            for (int64_t c = 0; c < n; ++c) {  // branch-free: vectorised
              const bool take = (top[c] == top[c]) & !(cand[c] <= top[c]);
              top[c] = take ? cand[c] : top[c];
              from[c] = take ? static_cast<uint8_t>(l) : from[c];
            }
          }
          const int64_t offset = (k * bins + ph * pooled_w + pw) * n;
          for (int64_t c = 0; c < n; ++c)
            out[offset + c] = static_cast<scalar_t>(best[c]);
          std::copy(won.begin(), won.end(), lvl + offset);
        }
  });
}

// grad[k * 4 + e]: gradient wrt corner e of RoI k, each (bin, channel) taking
// the coordinate gradient of the level it came from. Everything per bin is
// linear in the output gradient, so per (RoI, level, bin) the gradient of the
// channels that level won (gm, zero elsewhere) is dotted once with each pixel
// of the bin and its edges, d(j, i) = <gm, f(j, i, :)> (channels-last, the
// vectorised loop), and the bin's edge integrals are then taken on d.
template <typename scalar_t>
void max_levels_coor_kernel(const at::Tensor& grad_output,
                            const at::Tensor& output, const at::Tensor& level,
                            const std::vector<at::Tensor>& features,
                            const at::Tensor& rois,
                            const std::vector<double>& scales, at::Tensor& grad,
                            int pooled_h, int pooled_w) {
  using T = at::opmath_type<scalar_t>;
  const int64_t channels = features[0].size(1), num_rois = rois.size(0);
  const int64_t bins = pooled_h * pooled_w;
  const int num_levels = static_cast<int>(features.size());
  const auto all = level_bins<T, scalar_t>(features, rois, scales, pooled_h,
                                           pooled_w);
  std::vector<at::Tensor> levels;  // (N, H, W, C) in memory
  for (const auto& f : features) levels.push_back(nhwc(f));
  const scalar_t* g = grad_output.const_data_ptr<scalar_t>();
  const scalar_t* out = output.const_data_ptr<scalar_t>();
  const uint8_t* lvl = level.const_data_ptr<uint8_t>();
  T* result = grad.mutable_data_ptr<T>();
  at::parallel_for(0, num_rois, 1, [&](int64_t begin, int64_t end) {
    const int64_t n = channels;  // a local: byte stores may alias a reference
    std::vector<T> gm(n), d;
    for (int64_t k = begin; k < end; ++k) {
      T acc[4] = {T(0), T(0), T(0), T(0)};
      for (int l = 0; l < num_levels; ++l) {
        const RoiBins<T>& roi = all[l][k];
        if (roi.state == kPrRoINonFinite) {
          std::fill(acc, acc + 4, std::numeric_limits<T>::quiet_NaN());
          break;
        }
        if (roi.state != kPrRoIValid || roi.x.count == 0 || roi.y.count == 0)
          continue;
        const AxisBins<T>&ax = roi.x, &ay = roi.y;
        const int height = features[l].size(2), width = features[l].size(3);
        const scalar_t* plane = levels[l].const_data_ptr<scalar_t>() +
                                roi.batch * height * width * channels;
        const T scale = static_cast<T>(scales[l]);
        for (int ph = 0; ph < pooled_h; ++ph) {
          // The rows at the bin row's top and bottom edge (interpolation taps
          // ej, weights ew; 0 outside the map) and all rows it touches, [ya, yb].
          int ej[2][2], ya = ay.first[ph], yb = ay.first[ph] + ay.len[ph] - 1;
          T ew[2][2];
          for (int side = 0; side < 2; ++side) {
            int j0;
            prroi_interp_taps(side ? ay.edge_hi[ph] : ay.edge_lo[ph], height, &j0,
                              &ew[side][0], &ew[side][1]);
            for (int t = 0; t < 2; ++t) {
              const int j = ej[side][t] = j0 + t;
              if (j < 0 || j >= height) ew[side][t] = T(0);
              if (ew[side][t] == T(0)) continue;
              ya = std::min(ya, j);
              yb = std::max(yb, j);
            }
          }
          for (int pw = 0; pw < pooled_w; ++pw) {
            const int64_t offset = (k * bins + ph * pooled_w + pw) * channels;
            const scalar_t* __restrict__ gb = g + offset;
            const uint8_t* __restrict__ lb = lvl + offset;
            const scalar_t* __restrict__ ob = out + offset;
            T* __restrict__ m = gm.data();
            const uint8_t here = static_cast<uint8_t>(l);
            int won = 0;
            for (int64_t c = 0; c < n; ++c) won += lb[c] == here;
            if (won == 0) continue;
            for (int64_t c = 0; c < n; ++c)
              m[c] = (lb[c] == here) & (gb[c] != scalar_t(0))
                         ? static_cast<T>(gb[c]) : T(0);
            // sum_c g * (bin average) over the channels kept.
            const T avg = dot<true>(m, ob, n);
            // Pixels the bin and its edges touch: [ya, yb] x [xa, xb].
            int xa = ax.first[pw], xb = ax.first[pw] + ax.len[pw] - 1;
            for (int e = 2 * pw; e < 2 * pw + 2; ++e)
              for (int t = 0; t < 2; ++t)
                if (ax.tap_w[2 * e + t] != T(0)) {
                  xa = std::min(xa, ax.lo + ax.tap[2 * e + t]);
                  xb = std::max(xb, ax.lo + ax.tap[2 * e + t]);
                }
            const int nx = xb - xa + 1;
            d.resize(static_cast<size_t>(std::max(yb - ya + 1, 0)) * std::max(nx, 0));
            for (int j = ya; j <= yb; ++j)
              for (int i = xa; i <= xb; ++i) {
                const scalar_t* __restrict__ f =
                    plane + (static_cast<int64_t>(j) * width + i) * channels;
                d[(j - ya) * nx + (i - xa)] = dot(m, f, n);
              }
            // x edges: the bin's vertical average, interpolated at x1 and x2.
            T ex[2] = {T(0), T(0)};
            for (int side = 0; side < 2; ++side)
              for (int t = 0; t < 2; ++t) {
                const int e = 2 * (2 * pw + side) + t;
                if (ax.tap_w[e] == T(0)) continue;
                const int i = ax.lo + ax.tap[e] - xa;
                T col = T(0);
                for (int s = 0; s < ay.len[ph]; ++s)
                  col += ay.weight[ph * ay.stride + s] *
                         d[(ay.first[ph] + s - ya) * nx + i];
                ex[side] += ax.tap_w[e] * col;
              }
            // y edges: the bin's horizontal average on the rows at y1 and y2.
            T ey[2] = {T(0), T(0)};
            for (int side = 0; side < 2; ++side)
              for (int t = 0; t < 2; ++t) {
                if (ew[side][t] == T(0)) continue;
                T row = T(0);
                for (int s = 0; s < ax.len[pw]; ++s)
                  row += ax.weight[pw * ax.stride + s] *
                         d[(ej[side][t] - ya) * nx + ax.first[pw] + s - xa];
                ey[side] += ew[side][t] * row;
              }
            prroi_roi_grad(T(1), avg, ex[0], ex[1], ey[0], ey[1], T(1) / ax.bin,
                           T(1) / ay.bin, ax.frac[pw], ax.frac[pw + 1],
                           ay.frac[ph], ay.frac[ph + 1], scale, acc);
          }
        }
      }
      std::copy(acc, acc + 4, result + k * 4);
    }
  });
}

std::tuple<at::Tensor, at::Tensor> prroi_pool_max_levels_cpu(
    at::TensorList features, const at::Tensor& rois, int64_t pooled_height,
    int64_t pooled_width, at::ArrayRef<double> spatial_scales) {
  prroi_check_levels(features, rois, pooled_height, pooled_width,
                     spatial_scales);
  const auto boxes = rois.contiguous();
  const std::vector<double> scales(spatial_scales.begin(),
                                   spatial_scales.end());
  const auto options =
      features[0].options().memory_format(at::MemoryFormat::ChannelsLast);
  auto output = at::empty(
      {rois.size(0), features[0].size(1), pooled_height, pooled_width}, options);
  auto level = at::empty(output.sizes(), options.dtype(at::kByte));
  AT_DISPATCH_FLOATING_TYPES(
      features[0].scalar_type(), "prroi_pool_max_levels_cpu", [&] {
        max_levels_kernel<scalar_t>(features.vec(), boxes, scales, output, level,
                                    pooled_height, pooled_width);
      });
  return {output, level};
}

at::Tensor prroi_pool_max_levels_coor_backward_cpu(
    const at::Tensor& grad_output, const at::Tensor& output,
    const at::Tensor& level, at::TensorList features, const at::Tensor& rois,
    int64_t pooled_height, int64_t pooled_width,
    at::ArrayRef<double> spatial_scales) {
  prroi_check_levels(features, rois, pooled_height, pooled_width,
                     spatial_scales);
  prroi_check_pooled(grad_output, "grad_output", features[0].sizes(),
                     features[0].options(), rois, pooled_height, pooled_width);
  prroi_check_pooled(output, "output", features[0].sizes(),
                     features[0].options(), rois, pooled_height, pooled_width);
  TORCH_CHECK(level.sizes() == output.sizes() && level.scalar_type() == at::kByte,
              "prroi_pool_max_levels: level must be uint8 of the output's shape ",
              output.sizes(), ", got ", level.scalar_type(), " ", level.sizes());
  const std::vector<double> scales(spatial_scales.begin(),
                                   spatial_scales.end());
  const auto cl = at::MemoryFormat::ChannelsLast;
  auto grad_rois = at::zeros_like(rois, at::MemoryFormat::Contiguous);
  AT_DISPATCH_FLOATING_TYPES(
      features[0].scalar_type(), "prroi_pool_max_levels_coor_backward_cpu", [&] {
        using T = at::opmath_type<scalar_t>;
        auto grad = at::empty(
            {rois.size(0), 4},
            rois.options().dtype(c10::CppTypeToScalarType<T>::value));
        max_levels_coor_kernel<scalar_t>(
            grad_output.contiguous(cl), output.contiguous(cl), level.contiguous(cl),
            features.vec(), rois.contiguous(), scales, grad, pooled_height,
            pooled_width);
        grad_rois.narrow(1, 1, 4).copy_(grad);
      });
  return grad_rois;
}

}  // namespace

TORCH_LIBRARY_IMPL(gan_mask_rcnn, CPU, m) {
  m.impl("prroi_pool_max_levels", &prroi_pool_max_levels_cpu);
  m.impl("prroi_pool_max_levels_coor_backward",
         &prroi_pool_max_levels_coor_backward_cpu);
}

}  // namespace gan_mask_rcnn
