#include "ode/symplectic_partner.h"

namespace anode::ode {

SymplecticPartner symplectic_partner(const Tableau& tab) {
  SymplecticPartner p{};
  p.stages = tab.stages;
  for (int i = 0; i < tab.stages; ++i) {
    const bool weighted = tab.b[i] != 0.0;
    p.b[i] = weighted ? tab.b[i] : 1.0;
    p.carry[i] = weighted ? 1.0 : 0.0;
  }
  for (int i = 0; i < tab.stages; ++i) {
    for (int j = 0; j < tab.stages; ++j) {
      // tab.a[j][i] is zero unless i < j (explicit).
      const double a_ji = j > i ? tab.a[j][i] : 0.0;
      p.a[i][j] = p.b[j] - p.b[j] * a_ji / p.b[i];
    }
  }
  return p;
}

}  // namespace anode::ode
