#ifndef ANODE_AUTODIFF_FUNCTIONAL_H_
#define ANODE_AUTODIFF_FUNCTIONAL_H_

// Function transforms over the tape: vjp and grad of a function written with
// ops, in the style of jax.vjp / jax.grad. Each call records on a fresh tape,
// so these are for tests, tools and one-off derivatives, not for hot loops
// (there, record on a long-lived Tape and call backward()).

#include <span>
#include <vector>

#include "autodiff/errors.h"
#include "autodiff/function_ref.h"
#include "autodiff/tape.h"

namespace anode {

/// A function of tape Vars: receives one leaf per input tensor.
template <class T>
using TapeFn = FunctionRef<Var<T>(Tape<T>& tape, std::span<const Var<T>> inputs)>;

/// The value f(inputs) and, per input, J_i^T * cotangent.
template <class T>
struct VjpResult {
  Tensor<T> value;
  std::vector<Tensor<T>> grads;
};

/// Evaluates f at `inputs` and pulls `cotangent` (shaped like f's output) back
/// to every input. An input f does not depend on gets a zero gradient.
template <class T>
VjpResult<T> vjp(TapeFn<T> f, std::span<const Tensor<T>> inputs, TensorView<const T> cotangent) {
  Tape<T> tape;
  std::vector<Var<T>> leaves;
  leaves.reserve(inputs.size());
  for (const Tensor<T>& x : inputs) leaves.push_back(tape.input(x.view()));
  Var<T> y = f(tape, leaves);
  if (!y.valid() || &y.tape() != &tape) {
    throw ValueError("vjp: the function must return a Var recorded on the tape it was given");
  }
  VjpResult<T> result{y.to_tensor(), {}};
  tape.backward(y, cotangent);
  for (const Var<T>& leaf : leaves) result.grads.push_back(Tensor<T>::from_view(tape.grad(leaf)));
  return result;
}

/// Gradients of a scalar-valued f (one element) with respect to every input.
template <class T>
std::vector<Tensor<T>> grad(TapeFn<T> f, std::span<const Tensor<T>> inputs) {
  T one = 1;
  Tape<T> tape;
  std::vector<Var<T>> leaves;
  leaves.reserve(inputs.size());
  for (const Tensor<T>& x : inputs) leaves.push_back(tape.input(x.view()));
  Var<T> y = f(tape, leaves);
  if (!y.valid() || &y.tape() != &tape) {
    throw ValueError("grad: the function must return a Var recorded on the tape it was given");
  }
  if (y.size() != 1) {
    throw ShapeError("grad: the function must return one element, got shape " + y.shape().str());
  }
  tape.backward(y, TensorView<const T>{&one, y.shape()});
  std::vector<Tensor<T>> grads;
  for (const Var<T>& leaf : leaves) grads.push_back(Tensor<T>::from_view(tape.grad(leaf)));
  return grads;
}

}  // namespace anode

#endif  // ANODE_AUTODIFF_FUNCTIONAL_H_
