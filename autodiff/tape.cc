#include "autodiff/tape.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "autodiff/errors.h"
#include "autodiff/ops.h"

namespace anode {

template <class T>
T Var<T>::item() const {
  if (size() != 1) {
    throw ShapeError("Var::item: expected one element, got shape " + shape().str());
  }
  return data()[0];
}

template <class T>
Tape<T>::Tape(std::size_t arena_bytes) : arena_(arena_bytes) {
  slots_.reserve(1024);
  nodes_.reserve(1024);
  inputs_.reserve(2048);
}

template <class T>
std::int32_t Tape<T>::push_slot(const T* value, T* adj, const Shape& shape, bool requires_grad,
                                bool accumulates) {
  slots_.push_back(Slot<T>{value, adj, shape, requires_grad, false, accumulates, false, -1});
  return static_cast<std::int32_t>(slots_.size() - 1);
}

template <class T>
Var<T> Tape<T>::constant(TensorView<const T> x) {
  return Var<T>(this, push_slot(x.data, nullptr, x.shape, false));
}

template <class T>
Var<T> Tape<T>::constant_copy(TensorView<const T> x) {
  T* data = arena_.allocate_array<T>(x.size());
  std::copy(x.data, x.data + x.size(), data);
  return Var<T>(this, push_slot(data, nullptr, x.shape, false));
}

template <class T>
Var<T> Tape<T>::scalar(T value) {
  T* data = arena_.allocate_array<T>(1);
  data[0] = value;
  return Var<T>(this, push_slot(data, nullptr, Shape{}, false));
}

template <class T>
Var<T> Tape<T>::input(TensorView<const T> x) {
  return Var<T>(this, push_slot(x.data, nullptr, x.shape, true));
}

template <class T>
Var<T> Tape<T>::param(Parameter<T>& p) {
  if (param_log_ != nullptr) {
    std::int32_t id = push_slot(p.value().data(), nullptr, p.shape(), true);
    param_log_->entries.push_back({&p, id});
    return Var<T>(this, id);
  }
  return Var<T>(this, push_slot(p.value().data(), p.grad().data(), p.shape(), true, true));
}

template <class T>
std::pair<Var<T>, T*> Tape<T>::make_output(const Shape& shape) {
  T* data = arena_.allocate_array<T>(shape.numel());
  return {Var<T>(this, push_slot(data, nullptr, shape, false)), data};
}

template <class T>
void Tape<T>::note_reads(std::span<const Var<T>> inputs) const {
  for (const Var<T>& v : inputs) {
    const std::int32_t id = v.id();
    if (id >= watch_->below || !slots_[id].requires_grad) continue;
    std::vector<std::int32_t>& found = *watch_->found;
    if (std::find(found.begin(), found.end(), id) == found.end()) found.push_back(id);
  }
}

template <class T>
bool Tape<T>::will_record(std::span<const Var<T>> inputs) const {
  if (watch_ != nullptr) note_reads(inputs);
  if (!recording_) {
    if (forward_mode_) check_no_tangents(inputs);
    return false;
  }
  for (const Var<T>& v : inputs) {
    if (slots_[v.id()].requires_grad) return true;
  }
  return false;
}

template <class T>
void Tape<T>::record(Var<T> out, std::initializer_list<Var<T>> inputs, Node<T> node) {
  record(out, std::span<const Var<T>>(inputs.begin(), inputs.size()), node);
}

template <class T>
void Tape<T>::record(Var<T> out, std::span<const Var<T>> inputs, Node<T> node) {
  if (!will_record(inputs)) return;
  node.out = out.id();
  node.in_begin = static_cast<std::int32_t>(inputs_.size());
  node.in_count = static_cast<std::int32_t>(inputs.size());
  for (const Var<T>& v : inputs) inputs_.push_back(v.id());
  nodes_.push_back(node);
  slots_[out.id()].requires_grad = true;
  if (forward_mode_ && !in_tangent_rule_) propagate_tangent(nodes_.size() - 1);
}

template <class T>
void Tape<T>::check_no_tangents(std::span<const Var<T>> inputs) const {
  for (const Var<T>& v : inputs) {
    if (slots_[v.id()].tangent >= 0) {
      throw ValueError(
          "jvp: an op ran with recording off (NoGradGuard) on a value that carries a tangent: its "
          "tangent would be lost; record it (RecordingGuard(tape, true)) or detach() the value");
    }
  }
}

template <class T>
void Tape<T>::propagate_tangent(std::size_t node_index) {
  const Node<T> node = nodes_[node_index];  // a copy: the rule records nodes
  constexpr int kInline = 8;
  Var<T> inline_u[kInline];
  std::vector<Var<T>> heap_u;
  Var<T>* u = inline_u;
  if (node.in_count > kInline) {
    heap_u.resize(static_cast<std::size_t>(node.in_count));
    u = heap_u.data();
  }
  bool any = false;
  for (std::int32_t k = 0; k < node.in_count; ++k) {
    const std::int32_t tid = slots_[inputs_[node.in_begin + k]].tangent;
    u[k] = tid < 0 ? Var<T>() : Var<T>(this, tid);
    any = any || tid >= 0;
  }
  if (!any) return;
  if (node.rules == nullptr || node.rules->tangent == nullptr) {
    throw ValueError(std::string("jvp: op '") + node.name +
                     "' has no forward-mode rule (OpRules); it is differentiable in reverse "
                     "mode only");
  }
  struct Reset {
    bool& flag;
    ~Reset() { flag = false; }
  } reset{in_tangent_rule_};
  in_tangent_rule_ = true;
  const Var<T> r =
      node.rules->tangent(*this, node, std::span<const Var<T>>(u, static_cast<std::size_t>(node.in_count)));
  if (!r.valid() || &r.tape() != this || slots_[r.id()].shape != slots_[node.out].shape) {
    throw std::logic_error(std::string("jvp: the tangent rule of op '") + node.name +
                           "' returned " + (r.valid() ? slots_[r.id()].shape.str() : "nothing") +
                           " for an output of shape " + slots_[node.out].shape.str());
  }
  slots_[node.out].tangent = r.id();
}

template <class T>
void Tape<T>::set_tangent(Var<T> x, Var<T> u) {
  if (!x.valid() || &x.tape() != this || !u.valid() || &u.tape() != this) {
    throw ValueError("Tape::set_tangent: both the value and its tangent must be Vars on this tape");
  }
  if (!slots_[x.id()].requires_grad) {
    throw ValueError("Tape::set_tangent: the value " + x.shape().str() +
                     " needs no gradient (a constant): give tangents to input() or param() leaves "
                     "or values computed from them");
  }
  if (slots_[u.id()].shape != slots_[x.id()].shape) {
    throw ShapeError("Tape::set_tangent: tangent of shape " + u.shape().str() +
                     " for a value of shape " + x.shape().str());
  }
  slots_[x.id()].tangent = u.id();
}

template <class T>
Var<T> Tape<T>::zeros(const Shape& shape) {
  T* data = arena_.allocate_array<T>(shape.numel());
  std::memset(data, 0, sizeof(T) * static_cast<std::size_t>(shape.numel()));
  return Var<T>(this, push_slot(data, nullptr, shape, false));
}

template <class T>
void GradSink<T>::add(int i, Var<T> g) {
  const std::int32_t id = tape_.input(node_, i);
  if (!need_[id]) return;
  const Shape& s = tape_.slot(id).shape;
  if (!g.valid() || &g.tape() != &tape_ || g.shape() != s) {
    throw std::logic_error(std::string("gradients: the recorded backward rule of op '") +
                           node_.name + "' gave " + (g.valid() ? g.shape().str() : "nothing") +
                           " for input " + std::to_string(i) + " of shape " + s.str());
  }
  adj_[id] = adj_[id] < 0 ? g.id() : anode::add(Var<T>(&tape_, adj_[id]), g).id();
}

template <class T>
std::vector<Var<T>> Tape<T>::gradients(Var<T> y, std::span<const Var<T>> wrt) {
  if (!y.valid() || &y.tape() != this) {
    throw ValueError("Tape::gradients: the output is not a Var on this tape");
  }
  if (y.size() != 1) {
    throw ShapeError("Tape::gradients: the output must have one element (got shape " +
                     y.shape().str() + "); pass a cotangent for other shapes");
  }
  const Var<T> one = scalar(T(1));
  return gradients(std::span<const Var<T>>(&y, 1), std::span<const Var<T>>(&one, 1), wrt);
}

template <class T>
std::vector<Var<T>> Tape<T>::gradients(std::span<const Var<T>> ys,
                                       std::span<const Var<T>> cotangents,
                                       std::span<const Var<T>> wrt) {
  if (ys.size() != cotangents.size()) {
    throw ValueError("Tape::gradients: " + std::to_string(ys.size()) + " outputs but " +
                     std::to_string(cotangents.size()) + " cotangents");
  }
  for (std::size_t k = 0; k < ys.size(); ++k) {
    if (!ys[k].valid() || &ys[k].tape() != this || !cotangents[k].valid() ||
        &cotangents[k].tape() != this) {
      throw ValueError("Tape::gradients: output " + std::to_string(k) +
                       " or its cotangent is not a Var on this tape");
    }
    if (cotangents[k].size() != ys[k].size()) {
      throw ShapeError("Tape::gradients: cotangent of shape " + cotangents[k].shape().str() +
                       " does not match output of shape " + ys[k].shape().str());
    }
  }
  std::int32_t min_wrt = static_cast<std::int32_t>(slots_.size());
  for (const Var<T>& w : wrt) {
    if (!w.valid() || &w.tape() != this) {
      throw ValueError("Tape::gradients: a wrt value is not a Var on this tape");
    }
    min_wrt = std::min(min_wrt, w.id());
  }
  const std::size_t nslots = slots_.size();
  std::vector<char> need(nslots, 0);
  for (const Var<T>& w : wrt) {
    if (slots_[w.id()].requires_grad) need[w.id()] = 1;
  }
  // Only nodes whose output was made after the first wrt value can lead from
  // one to an output (ops make their output right before recording it): a
  // suffix of the node list. Mark what depends on a wrt value, forward.
  const std::size_t end = nodes_.size();
  std::size_t start = end;
  while (start > 0 && nodes_[start - 1].out > min_wrt) --start;
  for (std::size_t i = start; i < end; ++i) {
    const Node<T>& n = nodes_[i];
    for (std::int32_t k = 0; k < n.in_count && !need[n.out]; ++k) {
      if (need[inputs_[n.in_begin + k]]) need[n.out] = 1;
    }
  }
  std::vector<std::int32_t> adj(nslots, -1);
  for (std::size_t k = 0; k < ys.size(); ++k) {
    const std::int32_t id = ys[k].id();
    if (!need[id]) continue;
    Var<T> c = cotangents[k];
    if (c.shape() != ys[k].shape()) c = reshape(c, ys[k].shape());
    adj[id] = adj[id] < 0 ? c.id() : anode::add(Var<T>(this, adj[id]), c).id();
  }
  // The reverse pass, recorded: nodes appended meanwhile (the rules' ops)
  // lie above `end` and are not visited.
  for (std::size_t i = end; i-- > start;) {
    const Node<T> node = nodes_[i];  // a copy: the rule records nodes
    if (!need[node.out] || adj[node.out] < 0) continue;
    if (node.rules == nullptr || node.rules->backward == nullptr) {
      throw ValueError(std::string("gradients: op '") + node.name +
                       "' has no recordable backward rule (OpRules): it can be differentiated "
                       "once (backward()), not inside a gradient that is itself differentiated");
    }
    GradSink<T> sink(*this, node, adj, need);
    node.rules->backward(*this, node, Var<T>(this, adj[node.out]), sink);
  }
  std::vector<Var<T>> out;
  out.reserve(wrt.size());
  for (const Var<T>& w : wrt) {
    const std::int32_t id = w.id();
    out.push_back(need[id] && adj[id] >= 0 ? Var<T>(this, adj[id]) : zeros(slots_[id].shape));
  }
  return out;
}

template <class T>
void Tape<T>::backward(Var<T> y) {
  if (y.size() != 1) {
    throw ShapeError("Tape::backward: the output must have one element (got shape " +
                     y.shape().str() + "); pass a cotangent for other shapes");
  }
  T one = 1;
  backward(y, TensorView<const T>{&one, y.shape()});
}

template <class T>
void Tape<T>::backward(Var<T> y, TensorView<const T> cotangent) {
  backward(std::span<const Var<T>>(&y, 1), std::span<const TensorView<const T>>(&cotangent, 1));
}

template <class T>
void Tape<T>::backward(std::span<const Var<T>> ys, std::span<const TensorView<const T>> cotangents) {
  if (ys.size() != cotangents.size()) {
    throw ValueError("Tape::backward: " + std::to_string(ys.size()) + " outputs but " +
                     std::to_string(cotangents.size()) + " cotangents");
  }
  for (std::size_t k = 0; k < ys.size(); ++k) {
    if (!ys[k].valid() || &ys[k].tape() != this) {
      throw ValueError("Tape::backward: the Var belongs to another tape");
    }
    if (cotangents[k].size() != ys[k].size()) {
      throw ShapeError("Tape::backward: cotangent of shape " + cotangents[k].shape.str() +
                       " does not match output of shape " + ys[k].shape().str());
    }
  }
  // Adjoints left by an earlier pass over these slots start over.
  for (std::size_t id = static_cast<std::size_t>(floor_); id < slots_.size(); ++id) {
    Slot<T>& s = slots_[id];
    if (s.adj != nullptr && !s.accumulates) s.adj_fresh = true;
  }
  bool any = false;
  for (std::size_t k = 0; k < ys.size(); ++k) {
    const Var<T>& y = ys[k];
    const TensorView<const T>& cot = cotangents[k];
    Slot<T>& s = slots_[y.id()];
    if (!s.requires_grad || y.id() < floor_) continue;  // nothing to differentiate
    const Index n = y.size();
    if (s.adj == nullptr || s.adj_fresh) {
      if (s.adj == nullptr) s.adj = arena_.allocate_array<T>(n);
      std::memcpy(s.adj, cot.data, sizeof(T) * n);
      s.adj_fresh = false;
    } else {
      for (Index i = 0; i < n; ++i) s.adj[i] += cot.data[i];
    }
    any = true;
  }
  if (any) run_backward();
}

template <class T>
void Tape<T>::zero_fresh(Slot<T>& s) {
  std::memset(s.adj, 0, sizeof(T) * s.shape.numel());
  s.adj_fresh = false;
}

template <class T>
void Tape<T>::run_backward() {
  // One loop from the last node to the first of the current scope. A node's
  // backward may itself open a Scope on this tape (custom ops: the adjoint
  // method's nested VJPs), which pushes and then pops nodes above index i;
  // so copy the node and index by position.
  for (std::size_t i = nodes_.size(); i-- > node_floor_;) {
    const Node<T> node = nodes_[i];
    // Every consumer of this value has run: if none wrote its adjoint (or
    // none exists in this pass), it is zero and so is what the rule would
    // add; the loop after this one zero-fills it for readers.
    const Slot<T>& out = slots_[node.out];
    if (out.adj == nullptr || out.adj_fresh) continue;
    // Give every input that needs one an adjoint now, before the rule runs
    // (a rule that opens a Scope must not allocate outer adjoints inside
    // it), but leave it unwritten ("fresh"): the rule's first write assigns
    // (in_grad), or in_adj zero-fills it for rules that only add. A fresh
    // input listed twice (mul(x, x)) is zero-filled here, so that no rule
    // sees two fresh aliases of one buffer; so is every fresh input of a
    // node with very many inputs, where that check would be quadratic.
    constexpr std::int32_t kMaxAliasCheck = 64;
    const std::int32_t* ins = inputs_.data() + node.in_begin;
    for (std::int32_t k = 0; k < node.in_count; ++k) {
      const std::int32_t id = ins[k];
      Slot<T>& in = slots_[id];
      if (!in.requires_grad || (id < floor_ && !in.lifted)) continue;
      if (in.adj == nullptr) {
        in.adj = arena_.allocate_array<T>(in.shape.numel());
        in.adj_fresh = true;
      }
      if (in.adj_fresh) {
        bool alias = node.in_count > kMaxAliasCheck;
        for (std::int32_t j = k + 1; j < node.in_count && !alias; ++j) alias = ins[j] == id;
        if (alias) zero_fresh(in);
      }
    }
    node.backward(*this, node);
  }
  // Adjoints that no rule wrote (a rule that skipped an input) read as zero.
  for (std::size_t id = static_cast<std::size_t>(floor_); id < slots_.size(); ++id) {
    if (slots_[id].adj_fresh) zero_fresh(slots_[id]);
  }
}

template <class T>
typename Tape<T>::Lifted Tape<T>::lift(std::int32_t id, T* buffer) {
  Slot<T>& s = slots_[id];
  Lifted old{id, s.adj, s.adj_fresh};
  std::memset(buffer, 0, sizeof(T) * s.shape.numel());
  s.adj = buffer;
  s.adj_fresh = false;
  s.lifted = true;
  return old;
}

template <class T>
void Tape<T>::unlift(const Lifted& l) {
  Slot<T>& s = slots_[l.id];
  s.adj = l.adj;
  s.adj_fresh = l.fresh;
  s.lifted = false;
}

template <class T>
TensorView<const T> Tape<T>::grad(Var<T> v) {
  Slot<T>& s = slots_[v.id()];
  if (s.adj == nullptr) {
    s.adj = arena_.allocate_array<T>(s.shape.numel());
    std::memset(s.adj, 0, sizeof(T) * s.shape.numel());
  } else if (s.adj_fresh) {
    zero_fresh(s);
  }
  return {s.adj, s.shape};
}

template <class T>
void Tape<T>::clear() {
  slots_.clear();
  nodes_.clear();
  inputs_.clear();
  arena_.clear();
  floor_ = 0;
  node_floor_ = 0;
}

template <class T>
Tape<T>::Scope::Scope(Tape& t)
    : tape_(t),
      slots_(t.slots_.size()),
      nodes_(t.nodes_.size()),
      inputs_(t.inputs_.size()),
      floor_(t.floor_),
      node_floor_(t.node_floor_),
      mark_(t.arena_.mark()) {
  t.floor_ = static_cast<std::int32_t>(slots_);
  t.node_floor_ = nodes_;
}

template <class T>
Tape<T>::Scope::~Scope() {
  if (!committed_) {
    tape_.slots_.resize(slots_);
    tape_.nodes_.resize(nodes_);
    tape_.inputs_.resize(inputs_);
    tape_.arena_.rewind(mark_);
  }
  tape_.floor_ = floor_;
  tape_.node_floor_ = node_floor_;
}

template class Var<float>;
template class Var<double>;
template class Tape<float>;
template class Tape<double>;
template class GradSink<float>;
template class GradSink<double>;

}  // namespace anode
