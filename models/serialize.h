#ifndef ANODE_MODELS_SERIALIZE_H_
#define ANODE_MODELS_SERIALIZE_H_

// Parameter files: a versioned binary format with a header and a checksum.
//
//   "ANODEPRM"  u32 version  u32 scalar bytes (4: float, 8: double)
//   u64 n + n bytes of description (the model configuration as JSON)
//   u32 count, then per parameter: u32 n + name, u32 rank, u64 dims[rank], data
//   u32 CRC-32 of everything before it
//
// Little-endian. Files are written atomically (temp file, fsync, rename), so
// a crash never leaves a half-written file under the final name.

#include <stdexcept>
#include <string>
#include <vector>

#include "autodiff/parameter.h"
#include "models/model.h"

namespace anode::models {

/// A parameter file that cannot be read or does not fit the model: the
/// message names the file and the fault.
class ModelFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline constexpr unsigned kParameterFormatVersion = 1;

/// Writes the parameters and a description (free text; models use their
/// configuration as JSON) to `path`, atomically.
template <class T>
void save_parameters(const std::string& path, const std::vector<Parameter<T>*>& params,
                     const std::string& description);

/// Reads `path` into the parameters. Fails (ModelFileError, parameters
/// untouched) if the file is missing, truncated, corrupted (checksum), of
/// another version or scalar type, or holds other parameters (count, names,
/// shapes), or — when `expected_description` is non-null — describes another
/// model. Returns the stored description.
template <class T>
std::string load_parameters(const std::string& path, const std::vector<Parameter<T>*>& params,
                            const std::string* expected_description = nullptr);

/// The model configuration as JSON text (stable key order), and back.
std::string config_to_json(const ModelConfig& config);
ModelConfig config_from_json(const std::string& json);

/// Saves / loads a whole model (its configuration is the description).
template <class T>
void save_model(const std::string& path, const AnodeModel<T>& model) {
  save_parameters(path, model.parameters(), config_to_json(model.config()));
}
template <class T>
void load_model(const std::string& path, AnodeModel<T>& model) {
  const std::string expected = config_to_json(model.config());
  load_parameters(path, model.parameters(), &expected);
}

}  // namespace anode::models

#endif  // ANODE_MODELS_SERIALIZE_H_
