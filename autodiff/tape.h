#ifndef ANODE_AUTODIFF_TAPE_H_
#define ANODE_AUTODIFF_TAPE_H_

// The tape: an index-based Wengert list. Every op appends one slot (its
// output value, in the tape's arena) and, when a gradient can flow through
// it, one node (its backward rule and the slots it read). Creation order is a
// topological order, so the reverse pass is a single loop from the last node
// to the first: no recursion, no sorting, no reference counts.
//
//   Tape<float> tape;
//   Var<float> x = tape.constant(batch);      // data: no gradient
//   Var<float> w = tape.param(weight);        // leaf: gradient -> weight.grad()
//   Var<float> loss = mean(square(matmul(x, w)));
//   tape.backward(loss);                      // weight.grad() += dloss/dweight
//   tape.clear();                             // keeps all capacity
//
// Tapes are explicit objects; several may exist at once (one per thread).
// Scopes rewind a tape to a mark (nested evaluations, solver steps); a
// NoGradGuard makes ops compute values without recording nodes.

#include <cassert>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>
#include <vector>

#include "autodiff/arena.h"
#include "autodiff/parameter.h"
#include "autodiff/tensor.h"

namespace anode {

template <class T>
class Tape;
template <class T>
struct Node;
template <class T>
class GradSink;

/// A handle to a value recorded on a tape: the tape and a slot index. Cheap
/// to copy. Valid until the tape is cleared or rewound past it.
template <class T>
class Var {
 public:
  Var() = default;
  Var(Tape<T>* tape, std::int32_t id) : tape_(tape), id_(id) {}

  bool valid() const { return tape_ != nullptr; }
  Tape<T>& tape() const { return *tape_; }
  std::int32_t id() const { return id_; }

  /// A copy: the tape's slots move as values are recorded, so a reference
  /// into them would dangle after the next op.
  Shape shape() const;
  Index size() const { return tape_->slot(id_).shape.numel(); }
  const T* data() const;
  TensorView<const T> value() const { return {data(), shape()}; }
  /// The single value of a one-element Var (ShapeError otherwise).
  T item() const;
  /// A copy of the value.
  Tensor<T> to_tensor() const { return Tensor<T>::from_view(value()); }
  /// True if a gradient can flow back from this value to some leaf.
  bool requires_grad() const;

 private:
  Tape<T>* tape_ = nullptr;
  std::int32_t id_ = -1;
};

/// One value on the tape. `adj` is the adjoint (d output / d value): null
/// until the reverse pass reaches it, or a parameter's gradient buffer
/// (`accumulates`: every reverse pass adds to it). `adj_fresh`: adj is
/// allocated but holds nothing yet (the first backward rule to write it
/// assigns instead of adding; see Tape::in_grad). Only during a reverse pass;
/// every other reader sees it zero-filled. `lifted`: a slot below the current
/// scope whose adjoint backward() still writes (Tape::lift).
template <class T>
struct Slot {
  const T* value;
  T* adj;
  Shape shape;
  bool requires_grad;
  bool adj_fresh;
  bool accumulates;
  bool lifted;
  /// Forward mode: the slot of this value's tangent (d value / d t along the
  /// jvp's direction), or -1 for none (a zero tangent).
  std::int32_t tangent;
};

/// An op's higher-order rules, both written with ops (so that what they
/// record can itself be differentiated): the forward-mode rule and the
/// recordable reverse-mode rule. One static instance per op, beside its
/// forward and its numeric backward (see autodiff/op_kit.h). An op without
/// them (rules == nullptr) works to first order; jvp or a gradient with
/// create_graph through it throws a ValueError naming it.
template <class T>
struct OpRules {
  /// The output's tangent J u from the inputs' tangents (`u[i]` is an invalid
  /// Var for an input with a zero tangent; at least one is valid), recorded
  /// with ops. Must return a Var of the output's shape.
  using Tangent = Var<T> (*)(Tape<T>& tape, const Node<T>& node, std::span<const Var<T>> u);
  /// The vector-Jacobian product of the node, recorded with ops: for every
  /// input i with sink.wants(i), sink.add(i, J_i^T gy) (gy: the output's
  /// adjoint, a Var of the output's shape).
  using Backward = void (*)(Tape<T>& tape, const Node<T>& node, Var<T> gy, GradSink<T>& sink);
  Tangent tangent;
  Backward backward;
};

/// One recorded operation: its backward rule, where its inputs are, and the
/// op's own data. Ops are written with the kit in autodiff/op_kit.h.
template <class T>
struct Node {
  /// Adds d(out)/d(inputs)^T * adj(out) into the inputs' adjoints. A rule
  /// fetches each input's adjoint with Tape::in_grad (null for an input that
  /// needs no gradient).
  using Backward = void (*)(Tape<T>& tape, const Node& node);
  /// Capacity of a node's typed attributes (set_attrs / attrs).
  static constexpr std::size_t kAttrBytes = 48;

  Backward backward;
  const char* name;
  std::int32_t out;       // output slot
  std::int32_t in_begin;  // first input in Tape's input list
  std::int32_t in_count;
  std::uint32_t attr_size;  // sizeof the stored attributes (attrs() asserts it)
  void* saved;            // arena data the forward saved, or a custom op's context
  /// The op's jvp and recordable backward rules (null: first order only).
  const OpRules<T>* rules;
  /// The op's attributes (a small trivially copyable struct; see set_attrs).
  alignas(8) unsigned char attr_bytes[kAttrBytes];

  /// Stores an op's attribute struct in the node (copied; no allocation).
  /// A must be trivially copyable, fit in kAttrBytes and need at most
  /// 8-byte alignment: all checked at compile time.
  template <class A>
  void set_attrs(const A& a) {
    static_assert(std::is_trivially_copyable_v<A>, "Node attributes must be trivially copyable");
    static_assert(sizeof(A) <= kAttrBytes, "Node attributes exceed Node::kAttrBytes");
    static_assert(alignof(A) <= 8, "Node attributes need at most 8-byte alignment");
    std::memcpy(attr_bytes, &a, sizeof(A));
    attr_size = sizeof(A);
  }
  /// The attribute struct stored by set_attrs<A> (a copy; same A required).
  template <class A>
  A attrs() const {
    static_assert(std::is_trivially_copyable_v<A> && std::is_default_constructible_v<A>,
                  "Node attributes must be trivially copyable and default constructible");
    static_assert(sizeof(A) <= kAttrBytes, "Node attributes exceed Node::kAttrBytes");
    assert(attr_size == sizeof(A) && "Node::attrs: not the type set_attrs stored");
    A a;
    std::memcpy(&a, attr_bytes, sizeof(A));
    return a;
  }
};

static_assert(std::is_trivially_destructible_v<Slot<float>>);
static_assert(sizeof(Slot<float>) == 64, "a slot is one cache line");
static_assert(std::is_trivially_destructible_v<Node<float>>);
static_assert(std::is_trivially_copyable_v<Node<double>>);

/// Parameter leaves made while a ParamLog is installed get their own adjoint
/// buffer (instead of accumulating into Parameter::grad) and are listed here,
/// so a caller can collect d/d(theta) of a nested computation separately (the
/// adjoint method's a_theta). The caller owns it and reuses it. An entry's
/// slot adjoint is null when no gradient reached the parameter.
template <class T>
struct ParamLog {
  struct Entry {
    Parameter<T>* param;
    std::int32_t slot;
  };
  std::vector<Entry> entries;
};

/// Watches which differentiable values recorded before slot `below` the ops
/// read while it is installed (Tape::set_read_watch): a nested computation
/// that reads a Var captured from outside (the ODE gradient methods re-run
/// the dynamics on a scope, where such a read would otherwise be a silent
/// constant). `found` lists each such slot once, in order of first read.
struct ReadWatch {
  std::int32_t below;
  std::vector<std::int32_t>* found;
};

template <class T>
class Tape {
 public:
  explicit Tape(std::size_t arena_bytes = std::size_t(1) << 20);
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;

  // ---- Leaves ----------------------------------------------------------
  /// Data with no gradient. References x without copying: x must stay alive
  /// and unchanged while the tape uses it.
  Var<T> constant(TensorView<const T> x);
  /// Data with no gradient, copied into the arena.
  Var<T> constant_copy(TensorView<const T> x);
  /// A rank-0 constant.
  Var<T> scalar(T value);
  /// A leaf whose gradient is read with grad() after backward(). References x.
  Var<T> input(TensorView<const T> x);
  /// A leaf whose gradient accumulates into p.grad() (or, with a ParamLog
  /// installed, into a buffer of its own listed in the log).
  Var<T> param(Parameter<T>& p);

  // ---- Reverse pass ------------------------------------------------------
  /// Seeds d y / d y = 1 (y must have one element) and runs the reverse pass
  /// over every node recorded since the innermost open Scope (or the start).
  /// Each pass starts afresh: a second backward() gives the adjoints of its
  /// own seeds (grad() does not add up across passes), while parameters
  /// accumulate every pass into their gradient buffers.
  void backward(Var<T> y);
  /// Seeds adj(y) = cotangent (same number of elements as y).
  void backward(Var<T> y, TensorView<const T> cotangent);
  /// Seeds several outputs at once (adj(ys[i]) += cotangents[i]), then runs
  /// one reverse pass.
  void backward(std::span<const Var<T>> ys, std::span<const TensorView<const T>> cotangents);
  /// The adjoint of v after backward(): zeros if no gradient reached it.
  TensorView<const T> grad(Var<T> v);

  /// Forgets every slot and node; keeps all capacity (no allocation in steady state).
  void clear();

  // ---- Higher order: recorded gradients and forward mode -----------------
  /// Reverse mode recorded as ops (PyTorch's autograd.grad with
  /// create_graph=True): returns d(sum_k <cotangents[k], ys[k]>)/d(wrt[j])
  /// for each j, as Vars on this tape. While recording, those Vars carry
  /// nodes of their own, so a later backward() (or another gradients())
  /// differentiates through them: gradients of gradients, Hessian-vector
  /// products, FFJORD's divergence estimate inside the dynamics. Parameter
  /// buffers are not touched. wrt may be any recorded values (leaves or
  /// intermediates; values that need no gradient get zeros), and the
  /// cotangents may themselves require gradients. Every op on the path needs
  /// its OpRules: ValueError naming the op otherwise (e.g. an adjoint-method
  /// solve, which has only its numeric backward). A wrt value recorded after
  /// every y gets zeros.
  std::vector<Var<T>> gradients(std::span<const Var<T>> ys, std::span<const Var<T>> cotangents,
                                std::span<const Var<T>> wrt);
  /// The same for one scalar y (seed 1).
  std::vector<Var<T>> gradients(Var<T> y, std::span<const Var<T>> wrt);

  /// Forward mode. While a ForwardMode guard is alive, every op recorded
  /// whose inputs carry tangents computes its output's tangent J u beside the
  /// value (with ops, so tangents are differentiable too: reverse-over-
  /// forward). Outside it, record() costs one branch more than before.
  class ForwardMode {
   public:
    explicit ForwardMode(Tape& t) : tape_(t), was_(t.forward_mode_) { t.forward_mode_ = true; }
    ~ForwardMode() { tape_.forward_mode_ = was_; }
    ForwardMode(const ForwardMode&) = delete;
    ForwardMode& operator=(const ForwardMode&) = delete;

   private:
    Tape& tape_;
    bool was_;
  };
  /// Gives x (a value that requires a gradient, e.g. an input() leaf) the
  /// tangent u (same shape; any Var on this tape). ValueError otherwise.
  void set_tangent(Var<T> x, Var<T> u);
  /// The tangent of y, or an invalid Var if y's tangent is zero.
  Var<T> tangent(Var<T> y) const {
    const std::int32_t id = slots_[y.id()].tangent;
    return id < 0 ? Var<T>() : Var<T>(const_cast<Tape*>(this), id);
  }
  /// A constant of zeros (arena memory).
  Var<T> zeros(const Shape& shape);

  // ---- Recording control -----------------------------------------------
  /// While alive, recording is switched on or off; restores it after.
  class RecordingGuard {
   public:
    RecordingGuard(Tape& t, bool on) : tape_(t), was_(t.recording_) { t.recording_ = on; }
    ~RecordingGuard() { tape_.recording_ = was_; }
    RecordingGuard(const RecordingGuard&) = delete;
    RecordingGuard& operator=(const RecordingGuard&) = delete;

   private:
    Tape& tape_;
    bool was_;
  };

  /// While alive, ops compute values but record no nodes (results need no gradient).
  class NoGradGuard : public RecordingGuard {
   public:
    explicit NoGradGuard(Tape& t) : RecordingGuard(t, false) {}
  };

  /// RAII: on destruction, rewinds the tape (slots, nodes, arena) to where it
  /// was at construction. Vars made inside die with it. backward() inside a
  /// scope only walks the scope's nodes and treats older slots as constants.
  class Scope {
   public:
    explicit Scope(Tape& t);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
    /// Keeps everything recorded inside: the destructor then only restores
    /// backward()'s floor (an accepted solver step stays on the tape).
    void commit() { committed_ = true; }

   private:
    bool committed_ = false;
    Tape& tape_;
    std::size_t slots_, nodes_, inputs_;
    std::int32_t floor_;
    std::size_t node_floor_;
    Arena::Mark mark_;
  };

  /// Lets backward() inside the current scope add the adjoint of slot `id`,
  /// recorded before the scope (a value a nested computation captured), into
  /// `buffer` (zero-filled here; id's size), as if the slot were inside.
  /// Undo with unlift(), passing what lift returned, before the scope ends.
  struct Lifted {
    std::int32_t id;
    T* adj;
    bool fresh;
  };
  Lifted lift(std::int32_t id, T* buffer);
  void unlift(const Lifted& l);

  /// Installs (or with nullptr removes) a read watch; returns the previous one.
  ReadWatch* set_read_watch(ReadWatch* w) {
    ReadWatch* old = watch_;
    watch_ = w;
    return old;
  }

  /// Installs (or with nullptr removes) a ParamLog for param() leaves.
  void set_param_log(ParamLog<T>* log) { param_log_ = log; }
  ParamLog<T>* param_log() const { return param_log_; }

  bool recording() const { return recording_; }
  std::size_t num_slots() const { return slots_.size(); }
  std::size_t num_nodes() const { return nodes_.size(); }
  Arena& arena() { return arena_; }
  const Arena& arena() const { return arena_; }

  // ---- For op implementations (the op kit: autodiff/op_kit.h) -------------
  /// A new slot with uninitialized arena storage for `shape`; returns the Var
  /// and the buffer to fill. Call record() after filling it.
  std::pair<Var<T>, T*> make_output(const Shape& shape);
  /// A new slot whose value is existing memory (reshape, detach): no copy.
  Var<T> make_view(const T* data, const Shape& shape) {
    return Var<T>(this, push_slot(data, nullptr, shape, false));
  }
  /// Records `node` for output `out` reading `inputs`, if recording and some
  /// input requires a gradient; marks `out` accordingly. Node::out, in_begin
  /// and in_count are filled in here.
  void record(Var<T> out, std::initializer_list<Var<T>> inputs, Node<T> node);
  void record(Var<T> out, std::span<const Var<T>> inputs, Node<T> node);
  /// True if a node would be recorded for these inputs. Every op calls it
  /// (directly or through record()), recording or not: a ReadWatch sees
  /// the reads here.
  bool will_record(std::span<const Var<T>> inputs) const;

  const Slot<T>& slot(std::int32_t id) const { return slots_[id]; }
  /// The i-th input slot of a node.
  std::int32_t input(const Node<T>& n, int i) const { return inputs_[n.in_begin + i]; }
  /// The value of the i-th input of a node.
  const T* in_value(const Node<T>& n, int i) const { return slots_[input(n, i)].value; }
  const Shape& in_shape(const Node<T>& n, int i) const { return slots_[input(n, i)].shape; }
  /// An input's adjoint, as a backward rule receives it. `data` is null if
  /// the input needs no gradient. If `fresh`, nothing was written to it yet:
  /// the rule either assigns every element (gx = ..., GEMM beta = 0; or
  /// put()), skipping both a zero-fill and reading it back, or calls
  /// zeroed() first and then adds. Fetch it right before writing it: the
  /// slot counts as written from here on.
  struct Grad {
    T* data;
    bool fresh;
    Index size;  // elements (the input's numel)
    explicit operator bool() const { return data != nullptr; }
    /// The buffer to add into (nullptr if none): a fresh one is zero-filled first.
    T* zeroed() {
      if (data != nullptr && fresh) {
        std::memset(data, 0, sizeof(T) * static_cast<std::size_t>(size));
        fresh = false;
      }
      return data;
    }
    /// data[i] = v if fresh, else data[i] += v: for rules that write every
    /// element exactly once in a loop of their own (a rule that adds into an
    /// element several times calls zeroed() instead).
    void put(Index i, T v) const { data[i] = fresh ? v : data[i] + v; }
  };
  /// The adjoint of the i-th input of a node: the one way a rule gets it.
  Grad in_grad(const Node<T>& n, int i) {
    const std::int32_t id = input(n, i);
    T* adj = adj_or_null(id);
    if (adj == nullptr) return {nullptr, false, 0};
    const bool fresh = slots_[id].adj_fresh;
    slots_[id].adj_fresh = false;
    return {adj, fresh, slots_[id].shape.numel()};
  }
  /// Shorthand for in_grad(n, i).zeroed() (nullptr if it needs no gradient),
  /// kept for rules that only ever add.
  T* in_adj(const Node<T>& n, int i) { return in_grad(n, i).zeroed(); }
  /// The adjoint of a node's output.
  const T* out_adj(const Node<T>& n) const { return slots_[n.out].adj; }
  /// Uninitialized scratch memory valid until clear() or the enclosing Scope ends.
  template <class U = T>
  U* scratch(std::size_t n) {
    return arena_.allocate_array<U>(n);
  }

 private:
  std::int32_t push_slot(const T* value, T* adj, const Shape& shape, bool requires_grad,
                         bool accumulates = false);
  T* adj_or_null(std::int32_t id) const {
    const Slot<T>& s = slots_[id];
    return ((id >= floor_ || s.lifted) && s.requires_grad) ? s.adj : nullptr;
  }
  void note_reads(std::span<const Var<T>> inputs) const;
  void check_no_tangents(std::span<const Var<T>> inputs) const;
  void propagate_tangent(std::size_t node_index);
  void run_backward();
  void zero_fresh(Slot<T>& s);

  Arena arena_;
  std::vector<Slot<T>> slots_;
  std::vector<Node<T>> nodes_;
  std::vector<std::int32_t> inputs_;
  std::int32_t floor_ = 0;        // slots below this are constants to backward()
  std::size_t node_floor_ = 0;    // backward() walks nodes from here up
  bool recording_ = true;
  bool forward_mode_ = false;  // a ForwardMode guard is alive
  bool in_tangent_rule_ = false;  // a tangent rule is running: no tangents of tangents
  ParamLog<T>* param_log_ = nullptr;
  ReadWatch* watch_ = nullptr;
};

/// Where a recorded backward rule (OpRules::backward) puts its results.
template <class T>
class GradSink {
 public:
  /// True if input i of the node needs its adjoint (it leads to a wrt value).
  bool wants(int i) const { return need_[tape_.input(node_, i)] != 0; }
  /// Adds g (a Var of input i's shape) to input i's adjoint.
  void add(int i, Var<T> g);

 private:
  friend class Tape<T>;
  GradSink(Tape<T>& t, const Node<T>& n, std::vector<std::int32_t>& adj,
           const std::vector<char>& need)
      : tape_(t), node_(n), adj_(adj), need_(need) {}
  Tape<T>& tape_;
  const Node<T>& node_;
  std::vector<std::int32_t>& adj_;
  const std::vector<char>& need_;
};

extern template class Tape<float>;
extern template class Tape<double>;

// ---- Var inline members ----------------------------------------------------

template <class T>
Shape Var<T>::shape() const {
  return tape_->slot(id_).shape;
}

template <class T>
const T* Var<T>::data() const {
  return tape_->slot(id_).value;
}

template <class T>
bool Var<T>::requires_grad() const {
  return tape_->slot(id_).requires_grad;
}

}  // namespace anode

#endif  // ANODE_AUTODIFF_TAPE_H_
