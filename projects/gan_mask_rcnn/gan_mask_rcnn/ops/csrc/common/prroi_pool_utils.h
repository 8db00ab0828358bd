// Per-bin math of Precise RoI Pooling, shared by the CPU and CUDA kernels.
//
// The feature plane F (H x W) defines a bilinear surface through the grid points
//   f(x, y) = sum_{j, i} F[j, i] * hat(x - i) * hat(y - j),  hat(t) = max(0, 1 - |t|),
// with F = 0 outside the map. The surface is separable, so the integral over a
// bin [x1, x2] x [y1, y2] is sum_{j, i} F[j, i] * wy_j * wx_i with the axis
// weights w_i = integral of hat(x - i) over [x1, x2] (closed form below). A bin's
// output is that integral divided by the bin area (0 for an empty bin).
//
// Coordinate gradients: d(bin average)/d(edge) = +-(edge average - bin average)
// / (bin extent), where the edge average is the mean of f along that edge; bin
// edges depend linearly on the RoI corners (prroi_roi_grad).
#ifndef PRROI_POOL_UTILS_H
#define PRROI_POOL_UTILS_H

#include <cmath>

#if defined(__CUDACC__)
#define PRROI_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define PRROI_HOST_DEVICE inline
#endif

namespace gan_mask_rcnn {

// Integral of hat(s) for s in [-1, t]: 0 below -1, 1 above 1.
template <typename T>
PRROI_HOST_DEVICE T prroi_hat_cdf(T t) {
  if (t <= T(-1)) return T(0);
  if (t >= T(1)) return T(1);
  return t <= T(0) ? T(0.5) * (T(1) + t) * (T(1) + t)
                   : T(1) - T(0.5) * (T(1) - t) * (T(1) - t);
}

// Integral of hat(x - i) over x in [lo, hi] (lo <= hi).
template <typename T>
PRROI_HOST_DEVICE T prroi_axis_weight(T lo, T hi, int i) {
  return prroi_hat_cdf(hi - T(i)) - prroi_hat_cdf(lo - T(i));
}

// v clamped to [-2, size + 1] (NaN -> -2): a coordinate that is safe to
// convert to int and means the same as v for a map of `size` grid points.
template <typename T>
PRROI_HOST_DEVICE T prroi_clamp_coord(T v, int size) {
  const T bound = T(size) + T(1);
  return !(v >= T(-2)) ? T(-2) : (v > bound ? bound : v);
}

// Grid indices in [0, size) whose hat function overlaps [lo, hi]; an empty
// range gives *last < *first.
template <typename T>
PRROI_HOST_DEVICE void prroi_axis_range(T lo, T hi, int size, int* first,
                                        int* last) {
  lo = prroi_clamp_coord(lo, size);
  hi = prroi_clamp_coord(hi, size);
  const int f = static_cast<int>(floor(lo));
  const int l = static_cast<int>(ceil(hi));
  *first = f < 0 ? 0 : f;
  *last = l > size - 1 ? size - 1 : l;
}

enum PrRoIState { kPrRoIValid = 0, kPrRoIEmpty = 1, kPrRoINonFinite = 2 };

// Bin extents of a RoI with corners (x1, y1), (x2, y2) on the feature map,
// split into pooled_h x pooled_w bins. kPrRoINonFinite for a non-finite corner
// or an extent that overflows (the RoI pools to NaN), kPrRoIEmpty for a zero
// bin area (it pools to 0).
template <typename T>
PRROI_HOST_DEVICE int prroi_roi_bins(T x1, T y1, T x2, T y2, int pooled_h,
                                     int pooled_w, T* bw, T* bh) {
  // v - v is 0 exactly for finite v, NaN for inf and NaN.
  if (!((x1 - x1) == T(0) && (y1 - y1) == T(0) && (x2 - x2) == T(0) &&
        (y2 - y2) == T(0)))
    return kPrRoINonFinite;
  *bw = (x2 > x1 ? x2 - x1 : T(0)) / T(pooled_w);
  *bh = (y2 > y1 ? y2 - y1 : T(0)) / T(pooled_h);
  if (!((*bw - *bw) == T(0) && (*bh - *bh) == T(0)))  // extent overflowed
    return kPrRoINonFinite;
  return *bw * *bh == T(0) ? kPrRoIEmpty : kPrRoIValid;
}

// Edges of bin p of an axis that starts at `start` with bins of `bin` pixels
// (mmcv's rounding: lo = start + bin * p, hi = lo + bin).
template <typename T>
PRROI_HOST_DEVICE void prroi_bin_edges(T start, T bin, int p, T* lo, T* hi) {
  *lo = start + bin * T(p);
  *hi = *lo + bin;
}

// Linear-interpolation taps at x: f(x) = w0 * F[i0] + w1 * F[i0 + 1].
template <typename T>
PRROI_HOST_DEVICE void prroi_interp_taps(T x, int size, int* i0, T* w0,
                                         T* w1) {
  x = prroi_clamp_coord(x, size);
  const T fl = floor(x);
  *i0 = static_cast<int>(fl);
  *w1 = x - fl;
  *w0 = T(1) - *w1;
}

// F[j, i] of a row-major (height x width) plane, 0 outside it.
template <typename T, typename scalar_t>
PRROI_HOST_DEVICE T prroi_load(const scalar_t* plane, int height, int width,
                               int j, int i) {
  const bool inside = j >= 0 && j < height && i >= 0 && i < width;
  return inside ? static_cast<T>(plane[j * width + i]) : T(0);
}

// Average of f over [x1, x2] x [y1, y2] (bw = x2 - x1 > 0, bh = y2 - y1 > 0).
template <typename T, typename scalar_t>
PRROI_HOST_DEVICE T prroi_bin_average(const scalar_t* plane, int height,
                                      int width, T x1, T y1, T x2, T y2, T bw,
                                      T bh) {
  int i_first, i_last, j_first, j_last;
  prroi_axis_range(x1, x2, width, &i_first, &i_last);
  prroi_axis_range(y1, y2, height, &j_first, &j_last);
  T sum = T(0);
  for (int j = j_first; j <= j_last; ++j) {
    T row = T(0);
    for (int i = i_first; i <= i_last; ++i)
      row += prroi_axis_weight(x1, x2, i) *
             static_cast<T>(plane[j * width + i]);
    sum += prroi_axis_weight(y1, y2, j) * row;
  }
  return sum / (bw * bh);
}

// Means of f along the two vertical segments x = xa and x = xb, y in [y1, y2],
// and along the two horizontal segments y = ya and y = yb, x in [x1, x2]: each
// pair shares its axis weights, computed once. inv_bh = 1 / (y2 - y1) > 0,
// inv_bw = 1 / (x2 - x1) > 0. mean[0..3] = (x = xa, x = xb, y = ya, y = yb).
template <typename T, typename scalar_t>
PRROI_HOST_DEVICE void prroi_edge_averages(const scalar_t* plane, int height,
                                           int width, T x1, T y1, T x2, T y2,
                                           T inv_bw, T inv_bh, T* mean) {
  int i0[2], j0[2], first, last;
  T w0[2], w1[2];
  prroi_interp_taps(x1, width, &i0[0], &w0[0], &w1[0]);
  prroi_interp_taps(x2, width, &i0[1], &w0[1], &w1[1]);
  prroi_axis_range(y1, y2, height, &first, &last);
  T sum[2] = {T(0), T(0)};
  for (int j = first; j <= last; ++j) {
    const T wy = prroi_axis_weight(y1, y2, j);
    for (int e = 0; e < 2; ++e)
      sum[e] += wy * (w0[e] * prroi_load<T>(plane, height, width, j, i0[e]) +
                      w1[e] * prroi_load<T>(plane, height, width, j, i0[e] + 1));
  }
  mean[0] = sum[0] * inv_bh;
  mean[1] = sum[1] * inv_bh;
  prroi_interp_taps(y1, height, &j0[0], &w0[0], &w1[0]);
  prroi_interp_taps(y2, height, &j0[1], &w0[1], &w1[1]);
  prroi_axis_range(x1, x2, width, &first, &last);
  sum[0] = sum[1] = T(0);
  for (int i = first; i <= last; ++i) {
    const T wx = prroi_axis_weight(x1, x2, i);
    for (int e = 0; e < 2; ++e)
      sum[e] += wx * (w0[e] * prroi_load<T>(plane, height, width, j0[e], i) +
                      w1[e] * prroi_load<T>(plane, height, width, j0[e] + 1, i));
  }
  mean[2] = sum[0] * inv_bw;
  mean[3] = sum[1] * inv_bw;
}

// Adds g * d(bin average)/d(roi corner) to grad[0..3] = (x1, y1, x2, y2) of the
// RoI in input-image pixels. avg: bin average; ex1/ex2: averages of f along the
// bin's left/right edges; ey1/ey2: along its top/bottom edges; inv_bw/inv_bh:
// 1 / bin extent on the feature map. The bin's edges are
//   bx1 = rx1 + (rx2 - rx1) * ax1,  bx2 = rx1 + (rx2 - rx1) * ax2
// with ax1 = pw / pooled_w, ax2 = (pw + 1) / pooled_w (ay1, ay2 alike).
template <typename T>
PRROI_HOST_DEVICE void prroi_roi_grad(T g, T avg, T ex1, T ex2, T ey1, T ey2,
                                      T inv_bw, T inv_bh, T ax1, T ax2, T ay1,
                                      T ay2, T spatial_scale, T* grad) {
  const T sx = g * spatial_scale * inv_bw, sy = g * spatial_scale * inv_bh;
  const T d_bx1 = sx * (avg - ex1), d_bx2 = sx * (ex2 - avg);
  const T d_by1 = sy * (avg - ey1), d_by2 = sy * (ey2 - avg);
  grad[0] += d_bx1 * (T(1) - ax1) + d_bx2 * (T(1) - ax2);
  grad[1] += d_by1 * (T(1) - ay1) + d_by2 * (T(1) - ay2);
  grad[2] += d_bx1 * ax1 + d_bx2 * ax2;
  grad[3] += d_by1 * ay1 + d_by2 * ay2;
}

// A RoI on one feature map, with the reciprocals every bin of it uses: corner
// (rx1, ry1), bin extents (bw, bh) > 0 and 1 / bw, 1 / bh, 1 / pooled_w,
// 1 / pooled_h (an aggregate, so CUDA kernels can keep it in shared memory).
template <typename T>
struct PrRoIGeometry {
  T rx1, ry1, bw, bh, inv_bw, inv_bh, inv_pooled_w, inv_pooled_h;
};

template <typename T>
PRROI_HOST_DEVICE PrRoIGeometry<T> prroi_geometry(T rx1, T ry1, T bw, T bh,
                                                  int pooled_h, int pooled_w) {
  return {rx1,         ry1,         bw,
          bh,          T(1) / bw,   T(1) / bh,
          T(1) / T(pooled_w), T(1) / T(pooled_h)};
}

// Adds to grad[0..3] the gradient g * d(average of bin (ph, pw))/d(roi corner)
// of a RoI `roi` on the (height x width) plane, whose average is avg (the
// per-element form of the CUDA kernels: no division per element).
template <typename T, typename scalar_t>
PRROI_HOST_DEVICE void prroi_bin_coor_grad(const scalar_t* plane, int height,
                                           int width,
                                           const PrRoIGeometry<T>& roi, int ph,
                                           int pw, T g, T avg, T spatial_scale,
                                           T* grad) {
  T x1, x2, y1, y2, edge[4];
  prroi_bin_edges(roi.rx1, roi.bw, pw, &x1, &x2);
  prroi_bin_edges(roi.ry1, roi.bh, ph, &y1, &y2);
  prroi_edge_averages<T>(plane, height, width, x1, y1, x2, y2, roi.inv_bw,
                         roi.inv_bh, edge);
  prroi_roi_grad(g, avg, edge[0], edge[1], edge[2], edge[3], roi.inv_bw,
                 roi.inv_bh, T(pw) * roi.inv_pooled_w,
                 T(pw + 1) * roi.inv_pooled_w, T(ph) * roi.inv_pooled_h,
                 T(ph + 1) * roi.inv_pooled_h, spatial_scale, grad);
}

}  // namespace gan_mask_rcnn

#endif  // PRROI_POOL_UTILS_H
