#include "autodiff/tensor.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

namespace anode {

Shape::Shape(std::initializer_list<Index> dims)
    : Shape(std::span<const Index>(dims.begin(), dims.size())) {}

Shape::Shape(std::span<const Index> dims) {
  if (dims.size() > static_cast<std::size_t>(kMaxRank)) {
    throw ShapeError("Shape: rank " + std::to_string(dims.size()) + " exceeds the maximum of 4");
  }
  rank_ = static_cast<int>(dims.size());
  for (int i = 0; i < rank_; ++i) {
    if (dims[i] < 0) {
      throw ShapeError("Shape: negative dimension " + std::to_string(dims[i]));
    }
    dims_[i] = dims[i];
  }
}

Index Shape::numel() const {
  Index n = 1;
  for (int i = 0; i < rank_; ++i) n *= dims_[i];
  return n;
}

Shape Shape::with_last(Index n) const {
  Shape s = *this;
  if (s.rank_ == 0) {
    s.rank_ = 1;
  }
  s.dims_[s.rank_ - 1] = n;
  return s;
}

std::string Shape::str() const {
  std::string s = "[";
  for (int i = 0; i < rank_; ++i) {
    if (i) s += ", ";
    s += std::to_string(dims_[i]);
  }
  return s + "]";
}

// The aligned operator new (not aligned_alloc) so that every allocation goes
// through one replaceable function a test can count.
void* aligned_allocate(std::size_t bytes) {
  std::size_t rounded = (std::max<std::size_t>(bytes, 1) + kAlignment - 1) / kAlignment * kAlignment;
  return ::operator new(rounded, std::align_val_t{kAlignment});
}

void aligned_free(void* p) noexcept {
  if (p != nullptr) ::operator delete(p, std::align_val_t{kAlignment});
}

template <class T>
Tensor<T>::Tensor(const Shape& shape) : shape_(shape), capacity_(shape.numel()) {
  data_ = static_cast<T*>(aligned_allocate(sizeof(T) * capacity_));
  std::memset(data_, 0, sizeof(T) * capacity_);
}

template <class T>
Tensor<T>::Tensor(const Shape& shape, T fill) : Tensor(shape) {
  std::fill(begin(), end(), fill);
}

template <class T>
Tensor<T>::Tensor(const Shape& shape, std::initializer_list<T> values)
    : Tensor(shape, std::span<const T>(values.begin(), values.size())) {}

template <class T>
Tensor<T>::Tensor(const Shape& shape, std::span<const T> values) : Tensor(shape) {
  if (static_cast<Index>(values.size()) != shape.numel()) {
    throw ShapeError("Tensor: " + std::to_string(values.size()) + " values given for shape " +
                     shape.str() + " (" + std::to_string(shape.numel()) + " elements)");
  }
  std::copy(values.begin(), values.end(), data_);
}

template <class T>
Tensor<T>::Tensor(const Tensor& other) : Tensor(other.shape_) {
  std::copy(other.begin(), other.end(), data_);
}

template <class T>
Tensor<T>& Tensor<T>::operator=(const Tensor& other) {
  if (this != &other) {
    resize(other.shape_);
    std::copy(other.begin(), other.end(), data_);
  }
  return *this;
}

template <class T>
Tensor<T>::Tensor(Tensor&& other) noexcept
    : shape_(other.shape_), data_(other.data_), capacity_(other.capacity_) {
  other.data_ = nullptr;
  other.capacity_ = 0;
  other.shape_ = Shape({0});
}

template <class T>
Tensor<T>& Tensor<T>::operator=(Tensor&& other) noexcept {
  if (this != &other) {
    aligned_free(data_);
    shape_ = other.shape_;
    data_ = other.data_;
    capacity_ = other.capacity_;
    other.data_ = nullptr;
    other.capacity_ = 0;
    other.shape_ = Shape({0});
  }
  return *this;
}

template <class T>
Tensor<T>::~Tensor() {
  aligned_free(data_);
}

template <class T>
Tensor<T> Tensor<T>::from_view(TensorView<const T> view) {
  Tensor t(view.shape);
  std::copy(view.data, view.data + view.size(), t.data_);
  return t;
}

template <class T>
void Tensor<T>::reshape(const Shape& shape) {
  if (shape.numel() != shape_.numel()) {
    throw ShapeError("Tensor::reshape: cannot reshape " + shape_.str() + " to " + shape.str());
  }
  shape_ = shape;
}

template <class T>
void Tensor<T>::resize(const Shape& shape) {
  Index n = shape.numel();
  if (n > capacity_) {
    T* fresh = static_cast<T*>(aligned_allocate(sizeof(T) * n));
    aligned_free(data_);
    data_ = fresh;
    capacity_ = n;
  }
  shape_ = shape;
}

template <class T>
void Tensor<T>::fill(T value) {
  std::fill(begin(), end(), value);
}

template <class T>
void Tensor<T>::assign(TensorView<const T> view) {
  if (view.size() != size()) {
    throw ShapeError("Tensor::assign: view of shape " + view.shape.str() +
                     " does not fit tensor of shape " + shape_.str());
  }
  std::copy(view.data, view.data + view.size(), data_);
}

template class Tensor<float>;
template class Tensor<double>;

}  // namespace anode
