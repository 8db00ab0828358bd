// Per-RoI bin geometry of the CPU PrRoIPool kernels (prroi_pool_kernel.cpp,
// prroi_pool_max_levels_kernel.cpp): axis weights computed once per RoI, the
// separable vertical pass (see prroi_pool_utils.h for the math), and small
// helpers of the channels-last kernels.
#ifndef PRROI_POOL_CPU_BINS_H
#define PRROI_POOL_CPU_BINS_H

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "prroi_pool_utils.h"

namespace gan_mask_rcnn {

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
  // Adds to acc[0..3] (x1, y1, x2, y2) the gradient wrt the RoI corners of
  // sum_b g[b] * (bin average b) over the bins b with keep(b) (callers keep
  // only nonzero g: a zero gradient contributes nothing). o: the bin averages
  // of this plane; rows, top, bottom: scratch. Needs a valid RoI that overlaps
  // the map (state == kPrRoIValid, x.count > 0, y.count > 0).
  template <typename scalar_t, typename Keep>
  void coor_grad(const scalar_t* plane, int height, int width,
                 const scalar_t* g, const scalar_t* o, T scale, Keep keep,
                 std::vector<T>& rows, std::vector<T>& top,
                 std::vector<T>& bottom, T* acc) const {
    const int nx = x.count, pooled_h = static_cast<int>(y.first.size());
    const int pooled_w = static_cast<int>(x.first.size());
    bool any = false;
    for (int b = 0; b < pooled_h * pooled_w && !any; ++b) any = keep(b);
    if (!any) return;
    pool_rows(plane, width, rows);
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
    const T inv_bw = T(1) / x.bin, inv_bh = T(1) / y.bin;
    for (int ph = 0; ph < pooled_h; ++ph) {
      const size_t row = static_cast<size_t>(ph) * nx;
      for (int pw = 0; pw < pooled_w; ++pw) {
        const int b = ph * pooled_w + pw;
        if (!keep(b)) continue;
        prroi_roi_grad(static_cast<T>(g[b]), static_cast<T>(o[b]),
                       x.edge_value(2 * pw, rows.data() + row),
                       x.edge_value(2 * pw + 1, rows.data() + row),
                       x.dot(pw, top.data() + row),
                       x.dot(pw, bottom.data() + row), inv_bw, inv_bh,
                       x.frac[pw], x.frac[pw + 1], y.frac[ph], y.frac[ph + 1],
                       scale, acc);
      }
    }
  }
};

// sum_c a[c] * b[c] (only over a[c] != 0 with kNonZero: then a NaN or
// infinite b[c] beside a zero a[c] adds nothing) in eight interleaved partial
// sums: the compiler keeps a float sum in order, and scalar, unless the order
// is spelled out like this.
template <bool kNonZero = false, typename T, typename scalar_t>
inline T dot(const T* __restrict__ a, const scalar_t* __restrict__ b, int64_t n) {
  const auto term = [&](int64_t c) {
    const T p = a[c] * static_cast<T>(b[c]);
    return kNonZero && a[c] == T(0) ? T(0) : p;
  };
  T part[8] = {T(0), T(0), T(0), T(0), T(0), T(0), T(0), T(0)};
  int64_t c = 0;
  for (; c + 8 <= n; c += 8)
    for (int u = 0; u < 8; ++u) part[u] += term(c + u);
  T sum = T(0);
  for (; c < n; ++c) sum += term(c);
  for (int u = 0; u < 8; ++u) sum += part[u];
  return sum;
}

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

}  // namespace gan_mask_rcnn

#endif  // PRROI_POOL_CPU_BINS_H
