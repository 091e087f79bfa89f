#ifndef ANODE_AUTODIFF_FUNCTIONAL_H_
#define ANODE_AUTODIFF_FUNCTIONAL_H_

// Function transforms over the tape: vjp, grad, jvp and hvp of a function
// written with ops, in the style of jax.vjp / jax.grad / jax.jvp. Each call
// records on a fresh tape, so these are for tests, tools and one-off
// derivatives, not for hot loops (there, record on a long-lived Tape and call
// backward(), gradients() or use Tape::ForwardMode).
//
// Higher order: f may itself call Tape::gradients (a gradient recorded as
// ops), so grad(f) is a gradient of a gradient:
//
//   auto f = [](Tape<double>& t, std::span<const Var<double>> x) {
//     Var<double> y = sum(sin(x[0]) * x[0]);
//     Var<double> g = t.gradients(y, x)[0];          // dy/dx, differentiable
//     return sum(square(g));                          // |dy/dx|^2
//   };
//   std::vector<Tensor<double>> d = grad<double>(f, inputs);  // d|dy/dx|^2 / dx

#include <span>
#include <string>
#include <vector>

#include "autodiff/errors.h"
#include "autodiff/function_ref.h"
#include "autodiff/ops.h"
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

namespace functional_detail {
// One input() leaf per tensor, then f on them; ValueError naming `fn` unless
// f returns a Var on this tape (and, if `scalar`, ShapeError unless it has
// one element).
template <class T>
Var<T> call(const char* fn, TapeFn<T> f, Tape<T>& tape, std::span<const Tensor<T>> inputs,
            std::vector<Var<T>>& leaves, bool scalar) {
  leaves.reserve(inputs.size());
  for (const Tensor<T>& x : inputs) leaves.push_back(tape.input(x.view()));
  Var<T> y = f(tape, leaves);
  if (!y.valid() || &y.tape() != &tape) {
    throw ValueError(std::string(fn) + ": the function must return a Var recorded on the tape it was given");
  }
  if (scalar && y.size() != 1) {
    throw ShapeError(std::string(fn) + ": the function must return one element, got shape " + y.shape().str());
  }
  return y;
}
}  // namespace functional_detail

/// Evaluates f at `inputs` and pulls `cotangent` (shaped like f's output) back
/// to every input. An input f does not depend on gets a zero gradient.
template <class T>
VjpResult<T> vjp(TapeFn<T> f, std::span<const Tensor<T>> inputs, TensorView<const T> cotangent) {
  Tape<T> tape;
  std::vector<Var<T>> leaves;
  Var<T> y = functional_detail::call("vjp", f, tape, inputs, leaves, false);
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
  Var<T> y = functional_detail::call("grad", f, tape, inputs, leaves, true);
  tape.backward(y, TensorView<const T>{&one, y.shape()});
  std::vector<Tensor<T>> grads;
  for (const Var<T>& leaf : leaves) grads.push_back(Tensor<T>::from_view(tape.grad(leaf)));
  return grads;
}

namespace functional_detail {
template <class T>
void check_like(const char* fn, const char* what, std::span<const Tensor<T>> inputs,
                std::span<const Tensor<T>> others) {
  if (others.size() != inputs.size()) {
    throw ValueError(std::string(fn) + ": " + std::to_string(inputs.size()) + " inputs but " +
                     std::to_string(others.size()) + " " + what);
  }
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (others[i].shape() != inputs[i].shape()) {
      throw ShapeError(std::string(fn) + ": " + what + " " + std::to_string(i) + " has shape " +
                       others[i].shape().str() + ", input " + std::to_string(i) + " has " +
                       inputs[i].shape().str());
    }
  }
}
}  // namespace functional_detail

/// The value f(inputs) and J u, its directional derivative along the tangents.
template <class T>
struct JvpResult {
  Tensor<T> value;
  Tensor<T> tangent;
};

/// Forward mode: evaluates f at `inputs` and, alongside every op, the
/// tangent J u for the input tangents u (one per input, same shapes).
/// One pass; no reverse sweep. ValueError if f uses an op without a
/// forward-mode rule (naming it) or runs ops under NoGradGuard on values
/// that carry tangents.
template <class T>
JvpResult<T> jvp(TapeFn<T> f, std::span<const Tensor<T>> inputs,
                 std::span<const Tensor<T>> tangents) {
  functional_detail::check_like<T>("jvp", "tangent", inputs, tangents);
  Tape<T> tape;
  typename Tape<T>::ForwardMode forward(tape);
  std::vector<Var<T>> leaves;
  leaves.reserve(inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    leaves.push_back(tape.input(inputs[i].view()));
    tape.set_tangent(leaves.back(), tape.constant(tangents[i].view()));
  }
  Var<T> y = f(tape, leaves);
  if (!y.valid() || &y.tape() != &tape) {
    throw ValueError("jvp: the function must return a Var recorded on the tape it was given");
  }
  JvpResult<T> result{y.to_tensor(), Tensor<T>(y.shape())};
  const Var<T> ty = tape.tangent(y);
  if (ty.valid()) {
    result.tangent = ty.to_tensor();
  } else {
    for (T& e : result.tangent) e = T(0);
  }
  return result;
}

/// The value of a scalar f, its gradients and the Hessian-vector products.
template <class T>
struct HvpResult {
  Tensor<T> value;
  std::vector<Tensor<T>> grads;  // df/dx_i
  std::vector<Tensor<T>> hvps;   // sum_j d2f/(dx_i dx_j) v_j
};

/// Hessian-vector product of a scalar-valued f (one element), by
/// reverse-over-reverse: the gradient recorded as ops (Tape::gradients),
/// then one reverse pass over <grad, v>. Costs about 3 to 4 gradients.
template <class T>
HvpResult<T> hvp(TapeFn<T> f, std::span<const Tensor<T>> inputs, std::span<const Tensor<T>> vs) {
  functional_detail::check_like<T>("hvp", "vector", inputs, vs);
  Tape<T> tape;
  std::vector<Var<T>> leaves;
  Var<T> y = functional_detail::call("hvp", f, tape, inputs, leaves, true);
  std::vector<Var<T>> g = tape.gradients(y, leaves);
  Var<T> dot = tape.scalar(T(0));
  for (std::size_t i = 0; i < g.size(); ++i) dot = dot + sum(g[i] * tape.constant(vs[i].view()));
  HvpResult<T> result{y.to_tensor(), {}, {}};
  for (const Var<T>& gi : g) result.grads.push_back(gi.to_tensor());
  tape.backward(dot);
  for (const Var<T>& leaf : leaves) result.hvps.push_back(Tensor<T>::from_view(tape.grad(leaf)));
  return result;
}

}  // namespace anode

#endif  // ANODE_AUTODIFF_FUNCTIONAL_H_
