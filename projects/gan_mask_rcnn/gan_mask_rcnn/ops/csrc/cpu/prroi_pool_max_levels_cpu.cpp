// CPU kernel of prroi_pool_max_levels: PrRoIPool of every RoI on every pyramid
// level, merged by element-wise maximum in one pass, with the index of the
// winning level. Per (roi, bin) each level's average is taken for all channels
// at once into a small buffer and merged there, so no per-level output tensor
// is ever allocated. The maximum follows torch.maximum: NaN wins (and stays),
// ties keep the first level.
//
// The output (and the level index) is channels-last, (K, C, H, W) with strides
// (H * W * C, 1, W * C, C): the layout the discriminators' convolutions are
// fastest in on CPU, and the one in which a bin's channels are written at once.
// The coordinate backward reads its pooled tensors in either layout, so a
// gradient in either costs no copy.
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

// Element strides of a pooled (K, C, H, W) tensor, contiguous or channels-last:
// element (k, c, bin b = h * W + w) is at k * roi + c * channel + b * bin.
struct PooledStrides {
  int64_t roi, channel, bin;
  explicit PooledStrides(const at::Tensor& t)
      : roi(t.stride(0)), channel(t.stride(1)), bin(t.stride(3)) {}
  int64_t at(int64_t k, int64_t c) const { return k * roi + c * channel; }
};

// ``t`` if it is contiguous or channels-last (both fit PooledStrides), else
// a contiguous copy.
at::Tensor pooled_layout(const at::Tensor& t) {
  return t.is_contiguous() || t.is_contiguous(at::MemoryFormat::ChannelsLast)
             ? t
             : t.contiguous();
}

// Job n of channels * num_rois as (roi, channel): channel fastest for a
// channels-last tensor (its channels are adjacent), roi fastest otherwise.
inline void job_indices(int64_t n, int64_t channels, int64_t num_rois,
                        bool channel_fastest, int64_t* k, int64_t* c) {
  if (channel_fastest) {
    *k = n / channels;
    *c = n % channels;
  } else {
    *c = n / num_rois;
    *k = n % num_rois;
  }
}

// Forward, channels-last output (K, H, W, C in memory). Per RoI and bin, each
// level's bin average sum_ty sum_tx w_y w_x f(y, x) is taken for all channels
// at once from a channels-last copy of the level (the channel loop is the
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
  std::vector<at::Tensor> nhwc;  // (N, H, W, C) copies of the levels
  for (const auto& f : features) nhwc.push_back(f.permute({0, 2, 3, 1}).contiguous());
  scalar_t* out = output.mutable_data_ptr<scalar_t>();
  uint8_t* lvl = level.mutable_data_ptr<uint8_t>();
  at::parallel_for(0, num_rois, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> acc(channels), best(channels);
    std::vector<uint8_t> won(channels);
    for (int64_t k = begin; k < end; ++k)
      for (int ph = 0; ph < pooled_h; ++ph)
        for (int pw = 0; pw < pooled_w; ++pw) {
          for (int l = 0; l < num_levels; ++l) {
            const RoiBins<T>& roi = all[l][k];
            T* __restrict__ a = l == 0 ? best.data() : acc.data();
            if (roi.state != kPrRoIValid) {
              std::fill(a, a + channels, roi.state == kPrRoIEmpty
                                             ? T(0)
                                             : std::numeric_limits<T>::quiet_NaN());
            } else {
              const int height = features[l].size(2), width = features[l].size(3);
              const scalar_t* plane = nhwc[l].const_data_ptr<scalar_t>() +
                                      roi.batch * height * width * channels;
              std::fill(a, a + channels, T(0));
              for (int ty = 0; ty < roi.y.len[ph]; ++ty) {
                const T wy = roi.y.weight[ph * roi.y.stride + ty];
                const int64_t row = roi.y.first[ph] + ty;
                for (int tx = 0; tx < roi.x.len[pw]; ++tx) {
                  const T w = wy * roi.x.weight[pw * roi.x.stride + tx];
                  const scalar_t* __restrict__ src =
                      plane + (row * width + roi.x.first[pw] + tx) * channels;
                  for (int64_t c = 0; c < channels; ++c)
                    a[c] += w * static_cast<T>(src[c]);
                }
              }
            }
            if (l == 0) {
              std::fill(won.begin(), won.end(), uint8_t(0));
              continue;
            }
            for (int64_t c = 0; c < channels; ++c) {
              if (std::isnan(best[c])) continue;
              if (acc[c] > best[c] || std::isnan(acc[c])) {
                best[c] = acc[c];
                won[c] = static_cast<uint8_t>(l);
              }
            }
          }
          const int64_t offset = (k * bins + ph * pooled_w + pw) * channels;
          for (int64_t c = 0; c < channels; ++c)
            out[offset + c] = static_cast<scalar_t>(best[c]);
          std::copy(won.begin(), won.end(), lvl + offset);
        }
  });
}

// partial[(k * C + c) * 4 + e]: channel c's share of the gradient wrt corner e
// of RoI k, each bin taking the coordinate gradient of the level it came from.
template <typename scalar_t>
void max_levels_coor_kernel(const at::Tensor& grad_output,
                            const at::Tensor& output, const at::Tensor& level,
                            const std::vector<at::Tensor>& features,
                            const at::Tensor& rois,
                            const std::vector<double>& scales,
                            at::Tensor& partial, int pooled_h, int pooled_w) {
  using T = at::opmath_type<scalar_t>;
  const int64_t channels = features[0].size(1), num_rois = rois.size(0);
  const int64_t bins = pooled_h * pooled_w;
  const int num_levels = static_cast<int>(features.size());
  const auto all = level_bins<T, scalar_t>(features, rois, scales, pooled_h,
                                           pooled_w);
  const scalar_t* grad = grad_output.const_data_ptr<scalar_t>();
  const scalar_t* out = output.const_data_ptr<scalar_t>();
  const uint8_t* lvl = level.const_data_ptr<uint8_t>();
  const PooledStrides gs(grad_output), os(output), ls(level);
  T* part = partial.mutable_data_ptr<T>();
  at::parallel_for(0, channels * num_rois, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> rows, top, bottom;
    std::vector<scalar_t> g(bins), o(bins);  // this (roi, channel)'s bins, gathered
    std::vector<uint8_t> idx(bins);
    for (int64_t n = begin; n < end; ++n) {
      int64_t k, c;
      job_indices(n, channels, num_rois, gs.channel == 1, &k, &c);
      for (int64_t b = 0; b < bins; ++b) {
        g[b] = grad[gs.at(k, c) + b * gs.bin];
        o[b] = out[os.at(k, c) + b * os.bin];
        idx[b] = lvl[ls.at(k, c) + b * ls.bin];
      }
      T acc[4] = {T(0), T(0), T(0), T(0)};
      for (int l = 0; l < num_levels; ++l) {
        const RoiBins<T>& roi = all[l][k];
        if (roi.state == kPrRoINonFinite) {
          std::fill(acc, acc + 4, std::numeric_limits<T>::quiet_NaN());
          break;
        }
        if (roi.state != kPrRoIValid || roi.x.count == 0 || roi.y.count == 0)
          continue;
        const int height = features[l].size(2), width = features[l].size(3);
        roi.coor_grad(features[l].const_data_ptr<scalar_t>() +
                          (roi.batch * channels + c) * height * width,
                      height, width, g.data(), o.data(), static_cast<T>(scales[l]),
                      [&](int b) { return idx[b] == l && g[b] != scalar_t(0); },
                      rows, top, bottom, acc);
      }
      std::copy(acc, acc + 4, part + (k * channels + c) * 4);
    }
  });
}

std::tuple<at::Tensor, at::Tensor> prroi_pool_max_levels_cpu(
    at::TensorList features, const at::Tensor& rois, int64_t pooled_height,
    int64_t pooled_width, at::ArrayRef<double> spatial_scales) {
  prroi_check_levels(features, rois, pooled_height, pooled_width,
                     spatial_scales);
  std::vector<at::Tensor> feats;
  for (const auto& f : features) feats.push_back(f.contiguous());
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
        max_levels_kernel<scalar_t>(feats, boxes, scales, output, level,
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
  std::vector<at::Tensor> feats;
  for (const auto& f : features) feats.push_back(f.contiguous());
  const std::vector<double> scales(spatial_scales.begin(),
                                   spatial_scales.end());
  auto grad_rois = at::zeros_like(rois, at::MemoryFormat::Contiguous);
  AT_DISPATCH_FLOATING_TYPES(
      features[0].scalar_type(), "prroi_pool_max_levels_coor_backward_cpu", [&] {
        using T = at::opmath_type<scalar_t>;
        auto partial = at::empty(
            {rois.size(0), features[0].size(1), 4},
            features[0].options().dtype(c10::CppTypeToScalarType<T>::value));
        max_levels_coor_kernel<scalar_t>(
            pooled_layout(grad_output), pooled_layout(output), pooled_layout(level),
            feats, rois.contiguous(), scales, partial, pooled_height,
            pooled_width);
        grad_rois.narrow(1, 1, 4).copy_(partial.sum(1));
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
