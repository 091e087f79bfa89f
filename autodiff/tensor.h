#ifndef ANODE_AUTODIFF_TENSOR_H_
#define ANODE_AUTODIFF_TENSOR_H_

// Shape, Tensor<T> (owning, 64-byte aligned, contiguous row-major) and
// TensorView<T> (non-owning pointer + shape).

#if __cplusplus < 202002L
#error "anode needs C++20: compile with -std=c++20 (Bazel: build --cxxopt=-std=c++20)"
#endif

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "autodiff/errors.h"

namespace anode {

using Index = std::int64_t;

/// Alignment of every tensor and arena buffer (one cache line, one AVX-512 vector).
inline constexpr std::size_t kAlignment = 64;

/// Largest supported rank.
inline constexpr int kMaxRank = 4;

/// The dimensions of a tensor: rank 0 (a scalar) to 4.
class Shape {
 public:
  /// Rank 0: a scalar with one element.
  constexpr Shape() = default;
  /// Throws ShapeError for rank > 4 or a negative dimension.
  Shape(std::initializer_list<Index> dims);
  explicit Shape(std::span<const Index> dims);

  int rank() const { return rank_; }
  /// Dimension i; negative i counts from the back (-1 is the last axis).
  Index operator[](int i) const { return dims_[i < 0 ? i + rank_ : i]; }
  /// Number of elements (1 for rank 0).
  Index numel() const;
  /// Size of the last axis (1 for rank 0).
  Index last() const { return rank_ == 0 ? 1 : dims_[rank_ - 1]; }
  /// numel() / last(): the number of rows when viewed as a matrix.
  Index rows() const { return rank_ <= 1 ? 1 : numel() / last(); }
  /// The same shape with the last axis resized.
  Shape with_last(Index n) const;
  std::span<const Index> dims() const { return {dims_.data(), static_cast<std::size_t>(rank_)}; }
  /// "[100, 784]"
  std::string str() const;

  friend bool operator==(const Shape&, const Shape&) = default;

 private:
  std::array<Index, kMaxRank> dims_{};  // unused trailing entries stay 0
  int rank_ = 0;
};

/// A non-owning view: pointer plus shape. T may be const.
template <class T>
struct TensorView {
  T* data = nullptr;
  Shape shape;

  Index size() const { return shape.numel(); }
  T& operator[](Index i) const { return data[i]; }
  T* begin() const { return data; }
  T* end() const { return data + size(); }
  operator TensorView<const T>() const requires(!std::is_const_v<T>) { return {data, shape}; }
};

/// Aligned allocation helpers (64 bytes; size rounded up to a multiple of 64).
void* aligned_allocate(std::size_t bytes);
void aligned_free(void* p) noexcept;

/// An owning, contiguous, row-major, 64-byte-aligned tensor of rank 0..4.
/// T is float or double. Copying copies the data; moving is free.
template <class T>
class Tensor {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "Tensor<T>: T must be float or double");

 public:
  /// An empty rank-1 tensor of shape [0].
  Tensor() : shape_({0}) {}
  /// Zero-filled tensor of the given shape.
  explicit Tensor(const Shape& shape);
  Tensor(const Shape& shape, T fill);
  /// Tensor of the given shape with the values listed (row-major); throws
  /// ShapeError if the count differs from shape.numel().
  Tensor(const Shape& shape, std::initializer_list<T> values);
  Tensor(const Shape& shape, std::span<const T> values);

  Tensor(const Tensor& other);
  Tensor& operator=(const Tensor& other);
  Tensor(Tensor&& other) noexcept;
  Tensor& operator=(Tensor&& other) noexcept;
  ~Tensor();

  /// Copy of a view's data.
  static Tensor from_view(TensorView<const T> view);

  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  Index size() const { return shape_.numel(); }
  bool empty() const { return size() == 0; }

  T* data() { return data_; }
  const T* data() const { return data_; }
  T* begin() { return data_; }
  T* end() { return data_ + size(); }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size(); }

  T& operator[](Index i) { return data_[i]; }
  const T& operator[](Index i) const { return data_[i]; }
  /// Element (i, j) of a rank-2 tensor (no bounds check).
  T& operator()(Index i, Index j) { return data_[i * shape_[1] + j]; }
  const T& operator()(Index i, Index j) const { return data_[i * shape_[1] + j]; }

  TensorView<T> view() { return {data_, shape_}; }
  TensorView<const T> view() const { return {data_, shape_}; }
  operator TensorView<T>() { return view(); }
  operator TensorView<const T>() const { return view(); }

  /// Same data, new shape with the same number of elements (ShapeError otherwise).
  void reshape(const Shape& shape);
  /// Changes the shape, reallocating only when the element count grows.
  void resize(const Shape& shape);
  void fill(T value);
  /// Copies a view of the same number of elements into this tensor.
  void assign(TensorView<const T> view);

 private:
  Shape shape_;
  T* data_ = nullptr;
  Index capacity_ = 0;
};

extern template class Tensor<float>;
extern template class Tensor<double>;

/// Converts a tensor between float and double.
template <class To, class From>
Tensor<To> cast(const Tensor<From>& x) {
  Tensor<To> y(x.shape());
  for (Index i = 0; i < x.size(); ++i) y[i] = static_cast<To>(x[i]);
  return y;
}

}  // namespace anode

#endif  // ANODE_AUTODIFF_TENSOR_H_
