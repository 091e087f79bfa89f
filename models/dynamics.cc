#include "models/dynamics.h"

namespace anode::models {

template <class T>
std::vector<Index> MlpDynamics<T>::widths(Index in, Index out, const std::vector<Index>& hidden,
                                          bool time) {
  std::vector<Index> w = {in + (time ? 1 : 0)};
  w.insert(w.end(), hidden.begin(), hidden.end());
  w.push_back(out);
  return w;
}

template <class T>
std::vector<Activation> MlpDynamics<T>::activations(std::size_t layers, Activation hidden,
                                                    Activation last) {
  std::vector<Activation> a(layers, hidden);
  a.back() = last;
  return a;
}

template <class T>
MlpDynamics<T>::MlpDynamics(Index in, Index out, const std::vector<Index>& hidden,
                            Activation hidden_activation, Activation final_activation,
                            bool time_dependent, datasets::Rng& rng, Init init)
    : time_dependent_(time_dependent),
      mlp_(widths(in, out, hidden, time_dependent),
           activations(hidden.size() + 1, hidden_activation, final_activation), rng, init,
           "dynamics") {
  this->adopt(mlp_);
}

template <class T>
Var<T> MlpDynamics<T>::operator()(T t, Var<T> h) {
  if (time_dependent_) {
    Var<T> parts[2] = {h, full(h.tape(), h.shape().with_last(1), t)};
    return mlp_(concat_last<T>(parts));
  }
  return mlp_(h);
}

template class MlpDynamics<float>;
template class MlpDynamics<double>;

}  // namespace anode::models
