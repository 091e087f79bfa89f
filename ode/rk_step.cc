#include "ode/rk_step.h"

#include <array>
#include <sstream>

#include "autodiff/kernels.h"
#include "autodiff/ops.h"

namespace anode::ode::internal {

template <class T>
void solve_failed(const char* what, T t, const std::string& cause) {
  std::ostringstream msg;
  msg.precision(6);
  msg << what << ": solve failed at t = " << t << ": " << cause;
  throw SolverError(msg.str());
}

template <class T>
RkStep<T>::RkStep(RkSystem<T>& system, const Tableau& tab, const char* what, std::int64_t* nfe)
    : sys_(system), tab_(tab), what_(what), nfe_(nfe), pieces_(system.pieces()) {
  if (pieces_ < 1 || pieces_ > kMaxPieces) {
    throw SolverError(std::string(what) + ": a system of " + std::to_string(pieces_) +
                      " tensors is not supported (1 to " + std::to_string(kMaxPieces) + ")");
  }
}

template <class T>
bool RkStep<T>::eval(T t, std::span<const Var<T>> y, std::span<Var<T>> dy) {
  ++*nfe_;
  sys_.eval(t, y, dy);
  // Checked where computed: a NaN in a stage with a zero weight (or one used
  // only for dense output) would otherwise never reach the state.
  bool finite = true;
  for (int p = 0; p < pieces_; ++p) finite = finite && kernels::all_finite(dy[p].data(), dy[p].size());
  return finite;
}

template <class T>
void RkStep<T>::combine(std::span<const Var<T>> y, T h, const double* coeff, int nstages,
                        std::span<const Var<T>> k, std::span<Var<T>> out, const Var<T>* f1,
                        double coeff_f1) {
  const int P = pieces_;
  for (int p = 0; p < P; ++p) {
    std::array<Var<T>, kMaxStages + 2> terms;
    std::array<T, kMaxStages + 2> c;
    int n = 0;
    terms[n] = y[p];
    c[n++] = T(1);
    for (int j = 0; j < nstages; ++j) {
      if (coeff[j] == 0.0) continue;  // sparse tableau rows
      terms[n] = k[j * P + p];
      c[n++] = static_cast<T>(h * static_cast<T>(coeff[j]));
    }
    if (f1 != nullptr && coeff_f1 != 0.0) {
      terms[n] = f1[p];
      c[n++] = static_cast<T>(h * static_cast<T>(coeff_f1));
    }
    out[p] = lincomb<T>(std::span<const Var<T>>(terms.data(), n), std::span<const T>(c.data(), n));
  }
}

template <class T>
bool RkStep<T>::trial(T t, T h, std::span<const Var<T>> y, std::span<Var<T>> k, std::span<Var<T>> y1) {
  const int P = pieces_, S = tab_.stages;
  std::array<Var<T>, kMaxPieces> ys;
  bool finite = true;
  for (int s = 1; s < S; ++s) {
    combine(y, h, tab_.a[s], s, k, std::span<Var<T>>(ys.data(), P));
    if (tab_.fsal && s == S - 1) {
      // The last stage's input is the new state (a[S-1] == b).
      for (int p = 0; p < P; ++p) y1[p] = ys[p];
    }
    finite = eval(t + static_cast<T>(tab_.c[s]) * h, std::span<const Var<T>>(ys.data(), P),
                  k.subspan(s * P, P)) && finite;
  }
  if (!tab_.fsal) combine(y, h, tab_.b, S, k, y1);
  for (int p = 0; p < P; ++p) finite = finite && kernels::all_finite(y1[p].data(), y1[p].size());
  return finite;
}

template <class T>
void RkStep<T>::step(T t, T h, std::span<const Var<T>> y, std::span<Var<T>> k, std::span<Var<T>> y1) {
  const bool finite = eval(t, y, k.subspan(0, pieces_));
  if (!trial(t, h, y, k, y1) || !finite) fail(t, "a stage or the new state is NaN or Inf");
}

template <class T>
void RkStep<T>::interpolate(T t, T h, double theta, std::span<const Var<T>> y, std::span<const Var<T>> k,
                            std::span<const Var<T>> y1, std::span<Var<T>> f1, bool& f1_ready,
                            std::span<Var<T>> out) {
  DenseWeights w = dense_weights(tab_, theta);
  if (w.w_f1 != 0.0 && !f1_ready) {
    if (!eval(t + h, y1, f1)) {
      fail(t + h, "f(t, y) at the end of the step, needed for the dense output, is NaN or Inf");
    }
    f1_ready = true;
  }
  combine(y, h, w.w, tab_.stages, k, out, w.w_f1 != 0.0 ? f1.data() : nullptr, w.w_f1);
  for (int p = 0; p < pieces_; ++p) {
    if (!kernels::all_finite(out[p].data(), out[p].size())) {
      fail(t, "the dense output inside the step is NaN or Inf");
    }
  }
}

template void solve_failed<float>(const char*, float, const std::string&);
template void solve_failed<double>(const char*, double, const std::string&);
template class RkStep<float>;
template class RkStep<double>;

}  // namespace anode::ode::internal
