#include "models/layers.h"

#include <cmath>

namespace anode::models {

Activation parse_activation(std::string_view name) {
  for (Activation a : {Activation::kIdentity, Activation::kTanh, Activation::kRelu,
                       Activation::kSoftplus, Activation::kSigmoid}) {
    if (name == activation_name(a)) return a;
  }
  throw ValueError("unknown activation '" + std::string(name) +
                   "' (known: identity, tanh, relu, softplus, sigmoid)");
}

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::kIdentity: return "identity";
    case Activation::kTanh: return "tanh";
    case Activation::kRelu: return "relu";
    case Activation::kSoftplus: return "softplus";
    case Activation::kSigmoid: return "sigmoid";
  }
  return "?";
}

template <class T>
Var<T> activate(Var<T> x, Activation a) {
  switch (a) {
    case Activation::kIdentity: return x;
    case Activation::kTanh: return tanh(x);
    case Activation::kRelu: return relu(x);
    case Activation::kSoftplus: return softplus(x);
    case Activation::kSigmoid: return sigmoid(x);
  }
  return x;
}

template <class T>
Index Module<T>::num_scalars() const {
  Index n = 0;
  for (const Parameter<T>* p : params_) n += p->size();
  return n;
}

template <class T>
Parameter<T>& Module<T>::add_parameter(std::string name, Tensor<T> value) {
  Parameter<T>& p = storage_.emplace_back(std::move(name), std::move(value));
  params_.push_back(&p);
  return p;
}

template <class T>
void Module<T>::adopt(const Module& child) {
  params_.insert(params_.end(), child.params_.begin(), child.params_.end());
}

template <class T>
Linear<T>::Linear(Index in, Index out, datasets::Rng& rng, Init init, bool bias, std::string name)
    : in_(in), out_(out) {
  if (in < 1 || out < 1) {
    throw ValueError("Linear: sizes must be >= 1, got in = " + std::to_string(in) +
                     ", out = " + std::to_string(out));
  }
  const double limit = init == Init::kGlorotUniform ? std::sqrt(6.0 / static_cast<double>(in + out))
                                                    : 1.0 / std::sqrt(static_cast<double>(in));
  auto u = [&](datasets::Rng& r) { return r.uniform(-limit, limit); };
  Tensor<T> w(Shape{out, in});
  for (T& v : w) v = static_cast<T>(u(rng));
  w_ = &this->add_parameter(name + ".weight", std::move(w));
  if (bias) {
    Tensor<T> b(Shape{out});
    if (init == Init::kPytorch) {
      for (T& v : b) v = static_cast<T>(u(rng));
    }
    b_ = &this->add_parameter(name + ".bias", std::move(b));
  }
}

template <class T>
Var<T> Linear<T>::operator()(Var<T> x) {
  Tape<T>& t = x.tape();
  return linear(x, t.param(*w_), b_ ? t.param(*b_) : Var<T>());
}

template <class T>
Mlp<T>::Mlp(std::vector<Index> widths, std::vector<Activation> activations, datasets::Rng& rng,
            Init init, std::string name)
    : widths_(std::move(widths)), activations_(std::move(activations)) {
  if (widths_.size() < 2 || activations_.size() != widths_.size() - 1) {
    throw ValueError("Mlp: need at least two widths and one activation per layer (got " +
                     std::to_string(widths_.size()) + " widths, " +
                     std::to_string(activations_.size()) + " activations)");
  }
  for (std::size_t i = 0; i + 1 < widths_.size(); ++i) {
    layers_.emplace_back(widths_[i], widths_[i + 1], rng, init, true, name + "." + std::to_string(i));
    this->adopt(layers_.back());
  }
}

template <class T>
Var<T> Mlp<T>::operator()(Var<T> x) {
  for (std::size_t i = 0; i < layers_.size(); ++i) x = activate(layers_[i](x), activations_[i]);
  return x;
}

template <class T>
Var<T> full(Tape<T>& tape, const Shape& shape, T value) {
  auto [v, buf] = tape.make_output(shape);
  std::fill(buf, buf + shape.numel(), value);
  return v;
}

#define ANODE_INSTANTIATE(T)                                \
  template Var<T> activate<T>(Var<T>, Activation);          \
  template class Module<T>;                                 \
  template class Linear<T>;                                 \
  template class Mlp<T>;                                    \
  template Var<T> full<T>(Tape<T>&, const Shape&, T);
ANODE_INSTANTIATE(float)
ANODE_INSTANTIATE(double)
#undef ANODE_INSTANTIATE

}  // namespace anode::models
