#include "models/conv_model.h"

#include <cmath>
#include <sstream>

#include "autodiff/conv.h"
#include "autodiff/ops.h"

namespace anode::models {

template <class T>
Conv2d<T>::Conv2d(Index in, Index out, Index k, datasets::Rng& rng, Init init, std::string name) {
  if (in < 1 || out < 1 || k < 1 || k % 2 == 0) {
    throw ValueError("Conv2d: need channels >= 1 and an odd kernel, got in = " + std::to_string(in) +
                     ", out = " + std::to_string(out) + ", kernel = " + std::to_string(k));
  }
  const double fan_in = static_cast<double>(in * k * k), fan_out = static_cast<double>(out * k * k);
  const double limit = init == Init::kGlorotUniform ? std::sqrt(6.0 / (fan_in + fan_out)) : 1.0 / std::sqrt(fan_in);
  auto u = [&](datasets::Rng& r) { return r.uniform(-limit, limit); };
  Tensor<T> w(Shape{out, in, k, k});
  for (T& v : w) v = static_cast<T>(u(rng));
  Tensor<T> b(Shape{out});
  if (init == Init::kPytorch) {
    for (T& v : b) v = static_cast<T>(u(rng));
  }
  w_ = &this->add_parameter(name + ".weight", std::move(w));
  b_ = &this->add_parameter(name + ".bias", std::move(b));
}

template <class T>
Var<T> Conv2d<T>::operator()(Var<T> x) {
  Tape<T>& t = x.tape();
  return conv2d(x, t.param(*w_), t.param(*b_));
}

template <class T>
ConvDynamics<T>::ConvDynamics(Index channels, Index filters, bool time_dependent, datasets::Rng& rng)
    : time_dependent_(time_dependent) {
  const Index e = time_dependent ? 1 : 0;
  c1_.emplace(channels + e, filters, 1, rng, Init::kPytorch, "dynamics.conv1");
  c2_.emplace(filters + e, filters, 3, rng, Init::kPytorch, "dynamics.conv2");
  c3_.emplace(filters + e, channels, 1, rng, Init::kPytorch, "dynamics.conv3");
  this->adopt(*c1_);
  this->adopt(*c2_);
  this->adopt(*c3_);
}

template <class T>
Var<T> ConvDynamics<T>::with_time(Var<T> x, T t) {
  if (!time_dependent_) return x;
  const Shape& s = x.shape();
  Var<T> parts[2] = {x, full(x.tape(), Shape{s[0], 1, s[2], s[3]}, t)};
  return concat<T>(parts, 1);
}

template <class T>
Var<T> ConvDynamics<T>::operator()(T t, Var<T> h) {
  Var<T> y = relu((*c1_)(with_time(h, t)));
  y = relu((*c2_)(with_time(y, t)));
  return (*c3_)(with_time(y, t));
}

std::string ConvModelConfig::label() const {
  std::ostringstream s;
  s << (augment_channels > 0 ? "conv ANODE" : "conv NODE") << " (" << filters << " filters";
  if (augment_channels > 0) s << ", p = " << augment_channels;
  s << ")";
  return s.str();
}

template <class T>
ConvOdeClassifier<T>::ConvOdeClassifier(const ConvModelConfig& c) : config_(c), rng_(c.seed) {
  if (c.channels < 1 || c.height < 1 || c.width < 1 || c.filters < 1 || c.classes < 1 || c.augment_channels < 0) {
    throw ValueError("ConvOdeClassifier: sizes must be positive and augment_channels >= 0");
  }
  const Index state_channels = c.channels + c.augment_channels;
  dynamics_ = std::make_unique<ConvDynamics<T>>(state_channels, c.filters, c.time_dependent, rng_);
  this->adopt(*dynamics_);
  OdeBlockConfig bc;
  bc.solver = c.solver;
  bc.t_end = c.t_end;
  bc.augment = c.augment_channels;
  block_ = std::make_unique<OdeBlock<T>>(*dynamics_, bc, c.seed + 1);
  head_.emplace(state_channels * c.height * c.width, c.classes, rng_, Init::kPytorch, true, "head");
  this->adopt(*head_);
}

template <class T>
Var<T> ConvOdeClassifier<T>::operator()(Var<T> x, bool training) {
  const ConvModelConfig& c = config_;
  const Index pixels = c.channels * c.height * c.width;
  if (x.shape().rank() != 2 || x.shape()[1] != pixels) {
    throw ShapeError("ConvOdeClassifier: input " + x.shape().str() + " is not [batch, " + std::to_string(pixels) + "]");
  }
  const Index n = x.shape()[0];
  Var<T> img = reshape(x, Shape{n, c.channels, c.height, c.width});
  Var<T> h = (*block_)(img, training);
  return (*head_)(reshape(h, Shape{n, (c.channels + c.augment_channels) * c.height * c.width}));
}

template class Conv2d<float>;
template class Conv2d<double>;
template class ConvDynamics<float>;
template class ConvDynamics<double>;
template class ConvOdeClassifier<float>;
template class ConvOdeClassifier<double>;

}  // namespace anode::models
