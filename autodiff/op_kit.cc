#include "autodiff/op_kit.h"

#include <algorithm>
#include <cstring>

#include "autodiff/kernels.h"

namespace anode::op {

namespace detail {
void throw_empty_var(const char* op) {
  throw ValueError(std::string(op) + ": argument is an empty Var (not on any tape)");
}
void throw_other_tape(const char* op) {
  throw ValueError(std::string(op) + ": arguments live on different tapes");
}
}  // namespace detail

template <class T>
Tape<T>& tape_of(const char* op, std::span<const Var<T>> xs) {
  if (xs.empty()) throw ValueError(std::string(op) + ": no inputs");
  Tape<T>& t = tape_of(op, xs[0]);
  for (const Var<T>& x : xs) tape_of(op, xs[0], x);
  return t;
}

std::string shapes(const Shape& a, const Shape& b) { return a.str() + " and " + b.str(); }

Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
  if (a == b) return a;
  const int r = std::max(a.rank(), b.rank());
  Index dims[kMaxRank];
  for (int i = 0; i < r; ++i) {
    // Axis i of the result, counted from the back in each operand.
    const int ia = a.rank() - r + i, ib = b.rank() - r + i;
    const Index da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    if (da != db && da != 1 && db != 1) {
      throw ShapeError(std::string(op) + ": shapes " + shapes(a, b) +
                       " do not broadcast (axis " + std::to_string(i - r) + ": " +
                       std::to_string(da) + " vs " + std::to_string(db) +
                       "; sizes must be equal or 1)");
    }
    dims[i] = da == 1 ? db : da;
  }
  return Shape(std::span<const Index>(dims, r));
}

bool is_periodic(const Shape& in, const Shape& out) {
  if (in == out || in.numel() == 1) return true;
  // in's axes aligned to out's trailing ones: after in's leading 1s (and
  // out's extra leading axes), every axis must match.
  const int off = out.rank() - in.rank();
  if (off < 0) return false;
  int i = 0;
  while (i < in.rank() && in[i] == 1) ++i;
  for (; i < in.rank(); ++i) {
    if (in[i] != out[off + i]) return false;
  }
  return true;
}

int normalize_axis(const char* op, int axis, const Shape& s) {
  const int r = s.rank();
  if (axis < -r || axis >= r) {
    throw ShapeError(std::string(op) + ": axis " + std::to_string(axis) +
                     " out of range for shape " + s.str());
  }
  return axis < 0 ? axis + r : axis;
}

template <class T>
const T* expand(Tape<T>& t, const T* x, const Shape& xs, const Shape& out) {
  if (xs == out) return x;
  T* y = t.scratch(static_cast<std::size_t>(out.numel()));
  kernels::broadcast_to(x, xs, y, out);
  return y;
}

template <class T>
void accumulate(Grad<T>& dst, Index m, const T* g, Index n) {
  if (!dst) return;
  if (m == n) {
    if (dst.fresh) {
      std::memcpy(dst.data, g, sizeof(T) * static_cast<std::size_t>(n));
      dst.fresh = false;
    } else {
      kernels::add_to(g, dst.data, n);
    }
    return;
  }
  kernels::reduce_rows_add(g, n, dst.zeroed(), m);
}

template <class T>
void accumulate(Grad<T>& dst, const Shape& ds, const T* g, const Shape& gs) {
  if (!dst) return;
  if (is_periodic(ds, gs)) {
    accumulate(dst, ds.numel(), g, gs.numel());
  } else {
    kernels::reduce_to_shape_add(g, gs, dst.zeroed(), ds);
  }
}

#define ANODE_INSTANTIATE(T)                                                        \
  template Tape<T>& tape_of(const char*, std::span<const Var<T>>);                   \
  template const T* expand(Tape<T>&, const T*, const Shape&, const Shape&);          \
  template void accumulate(Grad<T>&, Index, const T*, Index);                        \
  template void accumulate(Grad<T>&, const Shape&, const T*, const Shape&);
ANODE_INSTANTIATE(float)
ANODE_INSTANTIATE(double)
#undef ANODE_INSTANTIATE

}  // namespace anode::op
