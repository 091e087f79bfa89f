#include "ode/tableau.h"

#include <stdexcept>

namespace anode::ode {
namespace {

// Coefficients are the published ones: Dormand & Prince (1980) with
// Shampine's (1986) dense output; Tsitouras (2011) with its interpolant;
// Bogacki & Shampine (1989).

constexpr Tableau kEuler{Method::kEuler, "euler", 1, 1, 0, false, DenseOutput::kHermite,
                         {0}, {{0}}, {1}, {0}};

constexpr Tableau kMidpoint{Method::kMidpoint, "midpoint", 2, 2, 0, false, DenseOutput::kHermite,
                            {0, 0.5}, {{0}, {0.5}}, {0, 1}, {0}};

constexpr Tableau kRk4{Method::kRk4, "rk4", 4, 4, 0, false, DenseOutput::kHermite,
                       {0, 0.5, 0.5, 1},
                       {{0}, {0.5}, {0, 0.5}, {0, 0, 1}},
                       {1.0 / 6, 1.0 / 3, 1.0 / 3, 1.0 / 6},
                       {0}};

constexpr Tableau kBosh3{Method::kBosh3, "bosh3", 4, 3, 2, true, DenseOutput::kHermite,
                         {0, 0.5, 0.75, 1},
                         {{0}, {0.5}, {0, 0.75}, {2.0 / 9, 1.0 / 3, 4.0 / 9}},
                         {2.0 / 9, 1.0 / 3, 4.0 / 9, 0},
                         {5.0 / 72, -1.0 / 12, -1.0 / 9, 1.0 / 8}};

constexpr Tableau kDopri5{
    Method::kDopri5, "dopri5", 7, 5, 4, true, DenseOutput::kDopri5,
    {0, 0.2, 0.3, 0.8, 8.0 / 9, 1, 1},
    {{0},
     {0.2},
     {3.0 / 40, 9.0 / 40},
     {44.0 / 45, -56.0 / 15, 32.0 / 9},
     {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729},
     {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656},
     {35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84}},
    {35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84, 0},
    {71.0 / 57600, 0, -71.0 / 16695, 71.0 / 1920, -17253.0 / 339200, 22.0 / 525, -1.0 / 40}};

constexpr Tableau kTsit5{
    Method::kTsit5, "tsit5", 7, 5, 4, true, DenseOutput::kTsit5,
    {0, 0.161, 0.327, 0.9, 0.9800255409045097, 1, 1},
    {{0},
     {0.161},
     {-0.008480655492356989, 0.335480655492357},
     {2.897153057105493, -6.359448489975075, 4.3622954328695815},
     {5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525},
     {5.86145544294642, -12.92096931784711, 8.159367898576159, -0.071584973281401,
      -0.028269050394068383},
     {0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081,
      2.324710524099774}},
    {0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081,
     2.324710524099774, 0},
    {-0.00178001105222577714, -0.0008164344596567469, 0.007880878010261995, -0.1447110071732629,
     0.5823571654525552, -0.45808210592918697, 0.015151515151515152}};

// Shampine's dense output of Dormand-Prince.
constexpr double kDopri5D[7] = {-12715105075.0 / 11282082432.0, 0, 87487479700.0 / 32700410799.0,
                                -10690763975.0 / 1880347072.0, 701980252875.0 / 199316789632.0,
                                -1453857185.0 / 822651844.0, 69997945.0 / 29380423.0};

// Tsitouras' interpolant: b_i(theta) = sum_j r[i][j] theta^(j+1).
constexpr double kTsit5R[7][4] = {
    {1.0, -2.763706197274826, 2.9132554618219126, -1.0530884977290216},
    {0, 0.13169999999999998, -0.2234, 0.1017},
    {0, 3.9302962368947516, -5.941033872131505, 2.490627285651253},
    {0, -12.411077166933676, 30.33818863028232, -16.548102889244902},
    {0, 37.50931341651104, -88.1789048947664, 47.37952196281928},
    {0, -27.896526289197286, 65.09189467479366, -34.87065786149661},
    {0, 1.5, -4.0, 2.5}};

}  // namespace

const Tableau& tableau(Method method) {
  switch (method) {
    case Method::kEuler: return kEuler;
    case Method::kMidpoint: return kMidpoint;
    case Method::kRk4: return kRk4;
    case Method::kBosh3: return kBosh3;
    case Method::kDopri5: return kDopri5;
    case Method::kTsit5: return kTsit5;
  }
  throw std::invalid_argument("tableau: unknown method");
}

Method parse_method(std::string_view name) {
  for (Method m : {Method::kEuler, Method::kMidpoint, Method::kRk4, Method::kBosh3, Method::kDopri5,
                   Method::kTsit5}) {
    if (name == tableau(m).name) return m;
  }
  throw std::invalid_argument("unknown solver '" + std::string(name) +
                              "' (known: euler, midpoint, rk4, bosh3, dopri5, tsit5)");
}

const char* method_name(Method method) { return tableau(method).name; }

DenseWeights dense_weights(const Tableau& tab, double theta) {
  DenseWeights d{};
  const double t = theta, t2 = t * t, t3 = t2 * t;
  switch (tab.dense) {
    case DenseOutput::kHermite: {
      // y(t) = y0 + h[(t - 2t^2 + t^3) f0 + (3t^2 - 2t^3) sum b_i k_i + (t^3 - t^2) f1]
      const double h_f0 = t - 2 * t2 + t3, h_y1 = 3 * t2 - 2 * t3, h_f1 = t3 - t2;
      for (int i = 0; i < tab.stages; ++i) d.w[i] = h_y1 * tab.b[i];
      d.w[0] += h_f0;
      if (tab.fsal) {
        d.w[tab.stages - 1] += h_f1;  // the last stage is f(t1, y1)
      } else {
        d.w_f1 = h_f1;
      }
      break;
    }
    case DenseOutput::kDopri5: {
      // Hairer's contd5 in terms of the stages:
      // y = y0 + t r2 + t(1-t) r3 + t^2(1-t) r4 + t^2(1-t)^2 r5, with
      // r2 = h sum b k, r3 = h k1 - r2, r4 = 2 r2 - h k1 - h k7, r5 = h sum d k.
      const double s = 1 - t;
      for (int i = 0; i < 7; ++i) {
        const double k1 = (i == 0) ? 1 : 0, k7 = (i == 6) ? 1 : 0;
        d.w[i] = t * tab.b[i] + t * s * (k1 - tab.b[i]) + t2 * s * (2 * tab.b[i] - k1 - k7) +
                 t2 * s * s * kDopri5D[i];
      }
      break;
    }
    case DenseOutput::kTsit5: {
      const double p[4] = {t, t2, t3, t2 * t2};
      for (int i = 0; i < 7; ++i) {
        d.w[i] = 0;
        for (int j = 0; j < 4; ++j) d.w[i] += kTsit5R[i][j] * p[j];
      }
      break;
    }
  }
  return d;
}

}  // namespace anode::ode
