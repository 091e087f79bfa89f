#ifndef ANODE_AUTODIFF_PARAMETER_H_
#define ANODE_AUTODIFF_PARAMETER_H_

#include <string>
#include <utility>

#include "autodiff/tensor.h"

namespace anode {

/// A trainable tensor with its own gradient buffer. Parameters outlive tapes:
/// Tape::param(p) records a leaf whose adjoint IS p.grad(), so a backward pass
/// accumulates into it. Tapes and optimizers keep pointers to parameters, so
/// a Parameter must not move while they are in use (modules hold them in
/// stable storage). Not copyable.
template <class T>
class Parameter {
 public:
  Parameter(std::string name, Tensor<T> value)
      : name_(std::move(name)), value_(std::move(value)), grad_(value_.shape()) {}
  Parameter(const Parameter&) = delete;
  Parameter& operator=(const Parameter&) = delete;

  const std::string& name() const { return name_; }
  const Shape& shape() const { return value_.shape(); }
  Index size() const { return value_.size(); }

  Tensor<T>& value() { return value_; }
  const Tensor<T>& value() const { return value_; }
  /// d(loss)/d(value), accumulated by every backward pass until zero_grad().
  Tensor<T>& grad() { return grad_; }
  const Tensor<T>& grad() const { return grad_; }
  void zero_grad() { grad_.fill(T(0)); }

 private:
  std::string name_;
  Tensor<T> value_;
  Tensor<T> grad_;
};

}  // namespace anode

#endif  // ANODE_AUTODIFF_PARAMETER_H_
