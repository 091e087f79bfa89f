#ifndef ANODE_DATASETS_ERRORS_H_
#define ANODE_DATASETS_ERRORS_H_

#include <stdexcept>
#include <string>

namespace anode::datasets {

/// A data file or folder is missing, truncated, corrupt or of the wrong kind.
/// The message names the loader, the file and what was wrong with it.
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace anode::datasets

#endif  // ANODE_DATASETS_ERRORS_H_
