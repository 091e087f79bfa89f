// The symplectic partner of every tableau: the conditions that define it,
// and the property they buy: one forward step of the variational equation
// and one partner step of the adjoint conserve <a, delta y> (so the partner
// gives the exact gradient of the step), with a different Jacobian at every
// stage.
#include "ode/symplectic_partner.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace anode::ode {
namespace {

constexpr Method kAll[] = {Method::kEuler, Method::kMidpoint, Method::kRk4,
                           Method::kBosh3, Method::kDopri5,   Method::kTsit5};

class Partner : public ::testing::TestWithParam<Method> {};

TEST_P(Partner, DefiningConditions) {
  const Tableau& tab = tableau(GetParam());
  const SymplecticPartner p = symplectic_partner(tab);
  ASSERT_EQ(p.stages, tab.stages);
  const int s = tab.stages;
  int zero_weights = 0;
  for (int i = 0; i < s; ++i) {
    if (tab.b[i] != 0.0) {
      EXPECT_EQ(p.b[i], tab.b[i]) << "B = b, stage " << i;
      EXPECT_EQ(p.carry[i], 1.0);
      // Symplecticity of the pair: b_i A_ij + B_j a_ji - b_i B_j = 0.
      for (int j = 0; j < s; ++j) {
        const double a_ji = j > i ? tab.a[j][i] : 0.0;
        EXPECT_NEAR(tab.b[i] * p.a[i][j] + p.b[j] * a_ji - tab.b[i] * p.b[j], 0.0, 1e-14)
            << tab.name << " i = " << i << " j = " << j;
      }
    } else {
      ++zero_weights;
      EXPECT_EQ(p.carry[i], 0.0) << "a zero-weight stage carries no adjoint";
      EXPECT_EQ(p.b[i], 1.0);
    }
    // Explicit in reverse: L_i depends only on later stages.
    for (int j = 0; j <= i; ++j) EXPECT_EQ(p.a[i][j], p.b[j]) << tab.name << " " << i << "," << j;
  }
  // The tableaus with zero weights exercise the other branch.
  const int expected_zero = GetParam() == Method::kMidpoint ? 1
                            : GetParam() == Method::kDopri5 ? 2
                            : (GetParam() == Method::kBosh3 || GetParam() == Method::kTsit5) ? 1
                                                                                              : 0;
  EXPECT_EQ(zero_weights, expected_zero) << tab.name;
}

// y' = J(t) y in d dimensions, with the stage Jacobians J_1..J_s random and
// distinct (as for nonlinear f, where J depends on the stage value).
TEST_P(Partner, ConservesTheBilinearForm) {
  const Tableau& tab = tableau(GetParam());
  const SymplecticPartner p = symplectic_partner(tab);
  const int s = tab.stages, d = 5;
  std::mt19937 rng(17);
  std::normal_distribution<double> n(0.0, 1.0);
  using Vec = std::vector<double>;
  auto matvec = [&](const Vec& m, const Vec& x, bool transpose) {
    Vec y(d, 0.0);
    for (int r = 0; r < d; ++r) {
      for (int c = 0; c < d; ++c) y[r] += (transpose ? m[c * d + r] : m[r * d + c]) * x[c];
    }
    return y;
  };
  auto dot = [&](const Vec& a, const Vec& b) {
    double v = 0;
    for (int i = 0; i < d; ++i) v += a[i] * b[i];
    return v;
  };
  for (int trial = 0; trial < 20; ++trial) {
    const double h = 0.05 + 0.3 * std::abs(n(rng));
    std::vector<Vec> jac(s, Vec(d * d));
    for (Vec& m : jac) {
      for (double& v : m) v = n(rng);
    }
    Vec dy0(d), a1(d);
    for (int i = 0; i < d; ++i) dy0[i] = n(rng), a1[i] = n(rng);
    // Forward: dY_i = dy0 + h sum_j a_ij J_j dY_j, dy1 = dy0 + h sum_i b_i J_i dY_i.
    std::vector<Vec> jdy(s);
    Vec dy1 = dy0;
    for (int i = 0; i < s; ++i) {
      Vec yi = dy0;
      for (int j = 0; j < i; ++j) {
        for (int k = 0; k < d; ++k) yi[k] += h * tab.a[i][j] * jdy[j][k];
      }
      jdy[i] = matvec(jac[i], yi, false);
      for (int k = 0; k < d; ++k) dy1[k] += h * tab.b[i] * jdy[i][k];
    }
    // Partner, last stage first.
    std::vector<Vec> jl(s);
    Vec a0 = a1;
    for (int i = s - 1; i >= 0; --i) {
      Vec li(d);
      for (int k = 0; k < d; ++k) li[k] = p.carry[i] * a1[k];
      for (int j = i + 1; j < s; ++j) {
        for (int k = 0; k < d; ++k) li[k] += h * (p.b[j] - p.a[i][j]) * jl[j][k];
      }
      jl[i] = matvec(jac[i], li, true);
      for (int k = 0; k < d; ++k) a0[k] += h * p.b[i] * jl[i][k];
    }
    const double before = dot(a0, dy0), after = dot(a1, dy1);
    EXPECT_NEAR(before, after, 1e-12 * std::max(1.0, std::abs(after))) << tab.name << " trial " << trial;
  }
}

INSTANTIATE_TEST_SUITE_P(AllTableaus, Partner, ::testing::ValuesIn(kAll),
                         [](const auto& info) { return std::string(tableau(info.param).name); });

}  // namespace
}  // namespace anode::ode
