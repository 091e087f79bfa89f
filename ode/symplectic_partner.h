#ifndef ANODE_ODE_SYMPLECTIC_PARTNER_H_
#define ANODE_ODE_SYMPLECTIC_PARTNER_H_

// The symplectic partner of an explicit Runge-Kutta tableau (Sanz-Serna,
// SIAM Review 2016; Matsubara, Miyatake & Yaguchi, NeurIPS 2021): the
// coefficients with which the adjoint system da/dt = -(df/dy)^T a, integrated
// backward over one forward step, gives exactly the gradient of that step.
// The forward tableau (a, b) and its partner (A, B) form a symplectic
// partitioned RK method,
//   b_i A_ij + B_j a_ji - b_i B_j = 0,  B = b,
// so the pair conserves the bilinear form <a, delta y> of the variational
// equation: the adjoint is the exact discrete gradient. For b_i != 0 this
// gives A_ij = b_j (1 - a_ji / b_i); a stage with b_i = 0 (FSAL stages,
// midpoint's first) has no such row, and its adjoint stage is kept
// unnormalized instead (weight 1 and no carried adjoint, as in the paper's
// treatment of zero weights). One step of the partner, from the adjoint
// a1 at the step's end to a0 at its start, with J_j = df/dy at the
// forward stage j:
//   L_i = carry_i a1 + h sum_{j > i} (B_j - A_ij) J_j^T L_j    (i = s .. 1)
//   a0  = a1 + h sum_j B_j J_j^T L_j
// and the parameters' gradient gains h sum_j B_j (df/dtheta_j)^T L_j. Its
// A_ij = B_j for j <= i: explicit when run from the last stage to the first.

#include "ode/tableau.h"

namespace anode::ode {

struct SymplecticPartner {
  int stages;
  double b[kMaxStages];              // B_i: b_i, or 1 where b_i = 0
  double a[kMaxStages][kMaxStages];  // A_ij (all i, j: the partner is not lower triangular)
  double carry[kMaxStages];          // weight of a1 in L_i: 1, or 0 where b_i = 0
};

/// The partner of an explicit tableau (any of tableau.h's).
SymplecticPartner symplectic_partner(const Tableau& tab);

}  // namespace anode::ode

#endif  // ANODE_ODE_SYMPLECTIC_PARTNER_H_
