#ifndef ANODE_AUTODIFF_OP_KIT_H_
#define ANODE_AUTODIFF_OP_KIT_H_

// The op kit: what a differentiable op is written with, for the built-in ops
// (ops.cc, conv.cc) and for your own. An op is one forward function and one
// backward rule, side by side:
//
//   template <class T>
//   void sinh_backward(Tape<T>& t, const Node<T>& nd) {
//     op::Grad<T> gx = t.in_grad(nd, 0);     // null if x needs no gradient
//     if (!gx) return;
//     const T* x = t.in_value(nd, 0);
//     const T* gy = t.out_adj(nd);           // d loss / d y
//     for (Index i = 0; i < gx.size; ++i) gx.put(i, gy[i] * std::cosh(x[i]));
//   }
//
//   template <class T>
//   Var<T> sinh(Var<T> x) {
//     Tape<T>& t = op::tape_of("sinh", x);   // ValueError for an empty Var
//     auto [y, out] = t.make_output(x.shape());
//     for (Index i = 0; i < x.size(); ++i) out[i] = std::sinh(x.data()[i]);
//     t.record(y, {x}, op::make_node<T>("sinh", &sinh_backward<T>));
//     return y;
//   }
//
// The rules of the road:
//  - Forward: check shapes (throw ShapeError/ValueError naming the op and the
//    shapes or values), make_output, fill it, record. record() does nothing
//    when no input needs a gradient or recording is off (NoGradGuard).
//  - Numbers the backward needs (a scale, an axis) go in a small trivially
//    copyable struct stored in the node: make_node<T>(name, rule, Attrs{...})
//    and nd.attrs<Attrs>() (nd.template attrs<Attrs>() in a template; size
//    and copyability checked at compile time).
//    Larger saved data goes in tape scratch, pointed to by Node::saved.
//  - Backward: fetch each input's adjoint with Tape::in_grad right before
//    writing it. A fresh Grad holds garbage: assign every element (put(),
//    overwrite kernels, GEMM beta = 0), or call zeroed() and add.
//  - Never hold a `const Shape&` or a pointer from Tape::slot() across
//    make_output (the slot vector may move); Var::shape() returns a copy.
//  - Broadcasting binary ops: broadcast_shapes() for the result, expand() for
//    an operand's values at the result's shape, accumulate() to sum a
//    gradient back over the broadcast axes.
//  - Higher order (optional): give the op's struct two more static members
//    written with ops, `Var<T> tangent(Tape<T>&, const Node<T>&,
//    std::span<const Var<T>> u)` (J u; u[i] invalid for a zero tangent) and
//    `void vjp(Tape<T>&, const Node<T>&, Var<T> gy, GradSink<T>& sink)`
//    (sink.add(i, J_i^T gy) for each i with sink.wants(i)), and pass
//    rules_of<T, Op>() to make_node. Then jvp, Tape::gradients and hvp work
//    through it; without them they throw a ValueError naming the op.

#include <span>
#include <string>

#include "autodiff/errors.h"
#include "autodiff/tape.h"

namespace anode::op {

/// An input's adjoint as a backward rule receives it (see Tape::in_grad).
template <class T>
using Grad = typename Tape<T>::Grad;

/// A node for op `name` (a string literal: the node keeps the pointer) with
/// backward rule `backward` and no attributes.
template <class T>
Node<T> make_node(const char* name, typename Node<T>::Backward backward) {
  Node<T> n{};
  n.name = name;
  n.backward = backward;
  return n;
}

/// The same with typed attributes, read back in the rule with
/// node.attrs<A>(). A: trivially copyable, at most Node<T>::kAttrBytes.
template <class T, class A>
  requires(!std::is_same_v<A, const OpRules<T>*>)
Node<T> make_node(const char* name, typename Node<T>::Backward backward, const A& attrs) {
  Node<T> n = make_node<T>(name, backward);
  n.set_attrs(attrs);
  return n;
}

/// The same with the op's higher-order rules (rules_of<T, Op>()).
template <class T>
Node<T> make_node(const char* name, typename Node<T>::Backward backward, const OpRules<T>* rules) {
  Node<T> n = make_node<T>(name, backward);
  n.rules = rules;
  return n;
}

/// Rules and attributes.
template <class T, class A>
Node<T> make_node(const char* name, typename Node<T>::Backward backward, const OpRules<T>* rules,
                  const A& attrs) {
  Node<T> n = make_node<T>(name, backward, rules);
  n.set_attrs(attrs);
  return n;
}

/// The OpRules of an op written as a struct with static members
///   Var<T> tangent(Tape<T>&, const Node<T>&, std::span<const Var<T>> u);
///   void vjp(Tape<T>&, const Node<T>&, Var<T> gy, GradSink<T>& sink);
/// (one constant per op; no allocation, no guard).
template <class T, class Op>
const OpRules<T>* rules_of() {
  static constexpr OpRules<T> rules{&Op::tangent, &Op::vjp};
  return &rules;
}

/// Input i of a node as a Var (for the higher-order rules, which are
/// written with ops).
template <class T>
Var<T> in_var(Tape<T>& t, const Node<T>& n, int i) {
  return Var<T>(&t, t.input(n, i));
}
/// A node's output as a Var.
template <class T>
Var<T> out_var(Tape<T>& t, const Node<T>& n) {
  return Var<T>(&t, n.out);
}

/// A constant (no gradient) of shape `s` with element i = f(i): masks and
/// signs in the higher-order rules of piecewise ops.
template <class T, class F>
Var<T> constant_from(Tape<T>& t, const Shape& s, F f) {
  T* d = t.template scratch<T>(static_cast<std::size_t>(s.numel()));
  for (Index i = 0; i < s.numel(); ++i) d[i] = f(i);
  return t.make_view(d, s);
}

/// x + y for two tangents of which either may be invalid (zero), broadcast
/// to `s`; invalid if both are.
template <class T>
Var<T> add_tangents(const Shape& s, Var<T> x, Var<T> y);

namespace detail {
[[noreturn]] void throw_empty_var(const char* op);
[[noreturn]] void throw_other_tape(const char* op);
}  // namespace detail

/// The tape all of an op's arguments live on. ValueError naming the op if
/// one is an empty Var or they live on different tapes.
template <class T, class... Rest>
Tape<T>& tape_of(const char* op, Var<T> first, Rest... rest) {
  static_assert((std::is_same_v<Rest, Var<T>> && ...), "tape_of: all arguments must be Var<T>");
  if (!first.valid()) detail::throw_empty_var(op);
  Tape<T>& t = first.tape();
  ((!rest.valid() ? detail::throw_empty_var(op)
                  : (&rest.tape() != &t ? detail::throw_other_tape(op) : void())),
   ...);
  return t;
}

/// The same for a list of arguments; ValueError if it is empty.
template <class T>
Tape<T>& tape_of(const char* op, std::span<const Var<T>> xs);

/// "[2, 3] and [3]": two shapes for an error message.
std::string shapes(const Shape& a, const Shape& b);

/// NumPy's broadcast of two shapes: trailing axes aligned, a size-1 axis
/// stretches, missing leading axes count as 1. The result never depends on
/// the order. ShapeError naming the op and both shapes otherwise.
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b);

/// True if `in`, broadcast to `out`, repeats with period in.numel(): only
/// leading axes are stretched (equal shapes, one element, a row vector
/// repeated over rows). The kernels' periodic operands handle these directly.
bool is_periodic(const Shape& in, const Shape& out);

/// Axis `axis` of `s` (negative counts from the back) as 0..rank-1;
/// ShapeError naming the op, the axis and the shape if out of range.
int normalize_axis(const char* op, int axis, const Shape& s);

/// x (shape xs, which broadcasts to out) as a contiguous array of shape
/// out: x itself if the shapes are equal, else expanded into tape scratch.
template <class T>
const T* expand(Tape<T>& t, const T* x, const Shape& xs, const Shape& out);

/// dst (an input of shape ds) += g (of shape gs, which ds broadcasts to),
/// summed over the broadcast axes; assigns when dst is fresh. dst may be
/// null (nothing to do). Fast paths for equal shapes and periodic inputs.
template <class T>
void accumulate(Grad<T>& dst, const Shape& ds, const T* g, const Shape& gs);

/// The periodic form: dst (m elements) += sum of the n / m rows of g
/// (m == n: elementwise); assigns when dst is fresh.
template <class T>
void accumulate(Grad<T>& dst, Index m, const T* g, Index n);

/// Scratch taken from the arena while this is alive is given back when it
/// ends: for a forward's or backward rule's temporaries. Nothing that must
/// outlive it (an output, an adjoint) may be allocated meanwhile.
class TransientScratch {
 public:
  explicit TransientScratch(Arena& a) : arena_(a), mark_(a.mark()) {}
  ~TransientScratch() { arena_.rewind(mark_); }
  TransientScratch(const TransientScratch&) = delete;
  TransientScratch& operator=(const TransientScratch&) = delete;

 private:
  Arena& arena_;
  Arena::Mark mark_;
};

}  // namespace anode::op

#endif  // ANODE_AUTODIFF_OP_KIT_H_
