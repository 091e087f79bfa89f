// libFuzzer target for the parameter-file reader: any input either loads
// into the parameters (all finite, shapes unchanged) or throws
// ModelFileError and leaves them untouched. Anything else is a finding.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "models/serialize.h"
#include "tests/fuzz/fuzz_input.h"

namespace {

using anode::Parameter;
using anode::Shape;
using anode::Tensor;

struct Params {
  Parameter<float> w{"w", Tensor<float>(Shape{3, 2}, 0.5f)};
  Parameter<float> b{"b", Tensor<float>(Shape{3}, 0.25f)};
  Parameter<float> s{"s", Tensor<float>(Shape{}, 1.0f)};
  std::vector<Parameter<float>*> all{&w, &b, &s};
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Params p;
  const std::string& path = anode::fuzz::input_path("param");
  anode::fuzz::write_input(path, data, size);
  try {
    anode::models::load_parameters<float>(path, p.all);
    for (Parameter<float>* q : p.all) {
      for (float v : q->value()) {
        if (!std::isfinite(v)) std::abort();
      }
    }
  } catch (const anode::models::ModelFileError&) {
  }
  if (p.w.shape() != Shape{3, 2} || p.b.shape() != Shape{3} || p.s.shape() != Shape{}) std::abort();
  return 0;
}
