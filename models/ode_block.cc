#include "models/ode_block.h"

#include "autodiff/ops.h"
#include "models/layers.h"

namespace anode::models {

template <class T>
OdeBlock<T>::OdeBlock(ode::Dynamics<T>& f, const OdeBlockConfig& config, std::uint64_t seed)
    : f_(f), config_(config), rng_(seed) {
  if (config.order < 1) throw ValueError("OdeBlock: order must be >= 1, got " + std::to_string(config.order));
  if (config.augment < 0) throw ValueError("OdeBlock: augmentation p must be >= 0, got " + std::to_string(config.augment));
  if (!(config.t_end > 0)) throw ValueError("OdeBlock: t_end must be > 0, got " + std::to_string(config.t_end));
  if (!(config.kinetic >= 0 && config.jacobian >= 0)) {
    throw ValueError("OdeBlock: RNODE weights must be >= 0, got kinetic " + std::to_string(config.kinetic) +
                     ", jacobian " + std::to_string(config.jacobian));
  }
  if (!(config.time_noise >= 0 && config.time_noise < config.t_end)) {
    throw ValueError("OdeBlock: time noise b must be in [0, t_end), got " + std::to_string(config.time_noise));
  }
}

template <class T>
Var<T> OdeBlock<T>::operator()(Var<T> x, bool training) {
  Tape<T>& tape = x.tape();
  const Shape& s = x.shape();
  const Index p = config_.augment;
  const int n = config_.order;
  Var<T> h0 = x;
  if (s.rank() == 4) {
    if (n != 1) throw ShapeError("OdeBlock: image states " + s.str() + " support order 1 only");
    if (p > 0) {
      Var<T> parts[2] = {x, full(tape, Shape{s[0], p, s[2], s[3]}, T(0))};
      h0 = concat<T>(parts, 1);
    }
  } else if (s.rank() == 2) {
    if (s[1] % n != 0) {
      throw ShapeError("OdeBlock: input " + s.str() + " does not split into " + std::to_string(n) + " blocks");
    }
    const Index d = s[1] / n;
    if (p > 0) {
      if (n == 1) {
        h0 = pad_last(x, p);
      } else {
        Var<T> blocks[16];
        if (n > 16) throw ValueError("OdeBlock: order above 16 is not supported");
        for (int b = 0; b < n; ++b) blocks[b] = pad_last(slice_last(x, b * d, d), p);
        h0 = concat_last<T>(std::span<const Var<T>>(blocks, n));
      }
    }
    if (n > 1 && (!higher_ || block_ != d + p)) {
      block_ = d + p;
      higher_.emplace(f_, n, block_, config_.position_only);
    }
  } else {
    throw ShapeError("OdeBlock: input must be [batch, features] or [N, C, H, W], got " + s.str());
  }
  double t_end = config_.t_end;
  if (config_.time_noise > 0 && (training || config_.noise_at_eval)) {
    t_end = rng_.uniform(t_end - config_.time_noise, t_end + config_.time_noise);
  }
  last_t_end_ = t_end;
  const T times[2] = {T(0), static_cast<T>(t_end)};
  ode::Dynamics<T>& f = n > 1 ? static_cast<ode::Dynamics<T>&>(*higher_) : f_;
  regularization_ = Var<T>();
  if (!training || (config_.kinetic == 0 && config_.jacobian == 0)) {
    return ode::odeint<T>(f, h0, times, config_.solver, &stats_);
  }
  // RNODE: solve [h, k, j] (h flattened) and keep the weighted integrals.
  const Shape hs = h0.shape();
  std::vector<Index> per_sample(hs.dims().begin() + 1, hs.dims().end());
  regularized_.emplace(f, per_sample, config_.jacobian > 0);
  if (config_.jacobian > 0) {
    if (noise_.shape() != hs) noise_ = Tensor<T>(hs);
    sample_noise(config_.noise, noise_, rng_);
    regularized_->set_noise(&noise_);
  }
  const Var<T> hkj = ode::odeint<T>(*regularized_, RegularizedDynamics<T>::augment(h0), times, config_.solver, &stats_);
  const Var<T> k = mean(RegularizedDynamics<T>::kinetic(hkj));
  const Var<T> j = mean(RegularizedDynamics<T>::jacobian(hkj));
  last_kinetic_ = k.item();
  last_jacobian_ = j.item();
  regularization_ = add(scale(k, static_cast<T>(config_.kinetic)), scale(j, static_cast<T>(config_.jacobian)));
  return regularized_->state(hkj);
}

template class OdeBlock<float>;
template class OdeBlock<double>;

}  // namespace anode::models
