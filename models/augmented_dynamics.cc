#include "models/augmented_dynamics.h"

#include <string>

#include "autodiff/errors.h"
#include "autodiff/ops.h"

namespace anode::models {

Noise parse_noise(const std::string& name) {
  if (name == "gaussian") return Noise::kGaussian;
  if (name == "rademacher") return Noise::kRademacher;
  throw ValueError("unknown noise '" + name + "' (expected gaussian or rademacher)");
}

const char* noise_name(Noise n) { return n == Noise::kGaussian ? "gaussian" : "rademacher"; }

template <class T>
void sample_noise(Noise kind, Tensor<T>& e, datasets::Rng& rng) {
  for (T& v : e) v = kind == Noise::kGaussian ? static_cast<T>(rng.normal()) : (rng.below(2) ? T(1) : T(-1));
}

namespace {

// While alive: recording on, and `v` made differentiable (a leaf aliasing
// its value if it needs no gradient, e.g. in a flat forward solve), so that
// a VJP with respect to it can be taken. `finish` detaches the result when
// the caller was not recording.
template <class T>
class VjpScope {
 public:
  explicit VjpScope(Tape<T>& t) : tape_(t), was_(t.recording()), on_(t, true) {}
  Var<T> differentiable(Var<T> v) { return v.requires_grad() ? v : tape_.input(v.value()); }
  Var<T> finish(Var<T> out) { return was_ ? out : detach(out); }

 private:
  Tape<T>& tape_;
  bool was_;
  typename Tape<T>::RecordingGuard on_;
};

// e^T df/dz for a constant e, recorded.
template <class T>
Var<T> vjp_of(Var<T> fz, Var<T> z, Var<T> e) {
  const Var<T> ys[] = {fz};
  const Var<T> cot[] = {e};
  const Var<T> wrt[] = {z};
  return z.tape().gradients(ys, cot, wrt)[0];
}

}  // namespace

template <class T>
Var<T> CnfDynamics<T>::operator()(T t, Var<T> h) {
  Tape<T>& tape = h.tape();
  if (h.shape().rank() != 2 || h.shape()[1] != d_ + 1) {
    throw ShapeError("CnfDynamics: state " + h.shape().str() + " is not [batch, " +
                     std::to_string(d_ + 1) + "] (z and the log-density column)");
  }
  const Index batch = h.shape()[0];
  VjpScope<T> scope(tape);
  const Var<T> z = scope.differentiable(slice_last(h, 0, d_));
  const Var<T> fz = f_(t, z);
  Var<T> div;
  if (exact_) {
    // tr(df/dz) = sum_k (e_k^T df/dz)_k with e_k the k-th unit column.
    for (Index k = 0; k < d_; ++k) {
      Tensor<T> ek(Shape{batch, d_}, T(0));
      for (Index b = 0; b < batch; ++b) ek(b, k) = T(1);
      const Var<T> gk = slice_last(vjp_of(fz, z, tape.constant_copy(ek.view())), k, 1);
      div = div.valid() ? add(div, gk) : gk;
    }
  } else {
    if (noise_ == nullptr || noise_->shape() != Shape{batch, d_}) {
      throw ValueError("CnfDynamics: Hutchinson's estimator needs noise of shape [" +
                       std::to_string(batch) + ", " + std::to_string(d_) + "] (use_hutchinson)");
    }
    const Var<T> e = tape.constant(noise_->view());
    div = reshape(sum(mul(vjp_of(fz, z, e), e), 1), Shape{batch, 1});
  }
  return scope.finish(concat_last({fz, div}));
}

template <class T>
Var<T> RegularizedDynamics<T>::state(Var<T> hkj) const {
  std::vector<Index> dims = {hkj.shape()[0]};
  dims.insert(dims.end(), shape_.begin(), shape_.end());
  Index n = 1;
  for (Index s : shape_) n *= s;
  return reshape(slice_last(hkj, 0, n), Shape(std::span<const Index>(dims)));
}

template <class T>
Var<T> RegularizedDynamics<T>::augment(Var<T> h) {
  const Index batch = h.shape()[0];
  return pad_last(reshape(h, Shape{batch, h.size() / batch}), 2);
}

template <class T>
Var<T> RegularizedDynamics<T>::kinetic(Var<T> hkj) {
  return slice_last(hkj, hkj.shape()[1] - 2, 1);
}

template <class T>
Var<T> RegularizedDynamics<T>::jacobian(Var<T> hkj) {
  return slice_last(hkj, hkj.shape()[1] - 1, 1);
}

template <class T>
Var<T> RegularizedDynamics<T>::operator()(T t, Var<T> hkj) {
  Tape<T>& tape = hkj.tape();
  Index n = 1;
  for (Index s : shape_) n *= s;
  if (hkj.shape().rank() != 2 || hkj.shape()[1] != n + 2) {
    throw ShapeError("RegularizedDynamics: state " + hkj.shape().str() + " is not [batch, " +
                     std::to_string(n + 2) + "] (h flattened, kinetic, jacobian)");
  }
  const Index batch = hkj.shape()[0];
  VjpScope<T> scope(tape);
  const Var<T> h = scope.differentiable(state(hkj));
  const Var<T> fh = f_(t, h);
  const Var<T> flat = reshape(fh, Shape{batch, n});
  const Var<T> dk = reshape(sum(square(flat), 1), Shape{batch, 1});
  Var<T> dj;
  if (jacobian_) {
    if (noise_ == nullptr || noise_->shape() != h.shape()) {
      throw ValueError("RegularizedDynamics: the Jacobian term needs noise of shape " +
                       h.shape().str() + " (set_noise)");
    }
    const Var<T> g = vjp_of(fh, h, tape.constant(noise_->view()));
    dj = reshape(sum(square(reshape(g, Shape{batch, n})), 1), Shape{batch, 1});
  } else {
    dj = tape.zeros(Shape{batch, 1});
  }
  return scope.finish(concat_last({flat, dk, dj}));
}

template void sample_noise(Noise, Tensor<float>&, datasets::Rng&);
template void sample_noise(Noise, Tensor<double>&, datasets::Rng&);
template class CnfDynamics<float>;
template class CnfDynamics<double>;
template class RegularizedDynamics<float>;
template class RegularizedDynamics<double>;

}  // namespace anode::models
