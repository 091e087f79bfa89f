// libFuzzer target for the IDX reader (plain and gzip): any input either
// loads, with a tensor of the size its header declares, or throws DataError.
// Anything else (a crash, a sanitizer report, another exception, a hang or
// an allocation beyond -rss_limit_mb) is a finding.
#include <cstdint>
#include <cstdlib>

#include "datasets/errors.h"
#include "datasets/idx.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace anode::datasets;
  const std::string& path = anode::fuzz::input_path("idx");
  anode::fuzz::write_input(path, data, size);
  try {
    IdxImages im = read_idx_images(path, {.layout = (size & 1) ? ImageLayout::kNCHW : ImageLayout::kFlat});
    if (im.images.size() != im.images.shape()[0] * im.rows * im.cols) std::abort();
  } catch (const DataError&) {
  }
  try {
    std::vector<int> labels = read_idx_labels(path);
    for (int l : labels) {
      if (l < 0 || l > 255) std::abort();
    }
  } catch (const DataError&) {
  }
  return 0;
}
