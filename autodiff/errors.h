#ifndef ANODE_AUTODIFF_ERRORS_H_
#define ANODE_AUTODIFF_ERRORS_H_

#include <stdexcept>
#include <string>

namespace anode {

/// A tensor of the wrong shape was passed to an op; the message names the op
/// and the shapes involved.
class ShapeError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// A value outside an op's domain (a label out of range, a non-positive
/// hyper-parameter, an empty tensor where one is not allowed).
class ValueError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

}  // namespace anode

#endif  // ANODE_AUTODIFF_ERRORS_H_
