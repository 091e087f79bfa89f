#ifndef ANODE_MODELS_DYNAMICS_H_
#define ANODE_MODELS_DYNAMICS_H_

// Neural ODE right-hand sides: MLP dynamics (optionally time-dependent).

#include <vector>

#include "models/layers.h"
#include "ode/dynamics.h"

namespace anode::models {

/// f(t, h) = MLP([h, t]) (or MLP(h)): widths {in, hidden..., out}; the
/// hidden layers use `hidden_activation`, the last layer `final_activation`.
/// With time_dependent, t enters as one extra input column.
template <class T>
class MlpDynamics : public ode::Dynamics<T>, public Module<T> {
 public:
  MlpDynamics(Index in, Index out, const std::vector<Index>& hidden, Activation hidden_activation,
              Activation final_activation, bool time_dependent, datasets::Rng& rng,
              Init init = Init::kGlorotUniform);

  Var<T> operator()(T t, Var<T> h) override;
  const std::vector<Parameter<T>*>& parameters() const override { return Module<T>::parameters(); }

 private:
  static std::vector<Index> widths(Index in, Index out, const std::vector<Index>& hidden, bool time);
  static std::vector<Activation> activations(std::size_t layers, Activation hidden, Activation last);
  bool time_dependent_;
  Mlp<T> mlp_;
};

}  // namespace anode::models

#endif  // ANODE_MODELS_DYNAMICS_H_
