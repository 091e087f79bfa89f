#ifndef ANODE_DATASETS_IDX_H_
#define ANODE_DATASETS_IDX_H_

// Reader for the IDX format of MNIST and Fashion-MNIST, plain or gzip. The
// compression is detected from the file's first bytes (0x1f 0x8b), not its
// name. Every fault (missing file, wrong magic, a dimension count or element
// type other than expected, a header that disagrees with the file's length,
// corrupt gzip data, trailing bytes) throws DataError naming the file and the
// fault.

#include <filesystem>
#include <string_view>
#include <vector>

#include "autodiff/tensor.h"
#include "datasets/image_set.h"

namespace anode::datasets {

/// Where Debian's dataset-fashion-mnist package puts the four IDX files.
inline constexpr std::string_view kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

/// Pixel values of loaded images.
enum class PixelScale {
  kUnit,  ///< v / 255 in [0, 1] (what Julia's MLDatasets gives; the report's setup)
  kRaw,   ///< 0 .. 255 as floats
};

/// Shape of loaded images.
enum class ImageLayout {
  kFlat,   ///< [n, rows * cols]
  kNCHW,   ///< [n, 1, rows, cols]
};

/// Options for read_idx_images() and load_idx().
struct IdxImageOptions {
  PixelScale scale = PixelScale::kUnit;
  ImageLayout layout = ImageLayout::kFlat;
};

/// The images of one IDX image file with their size in pixels.
struct IdxImages {
  Tensor<float> images;  ///< [n, rows * cols] or [n, 1, rows, cols]
  Index rows = 0;
  Index cols = 0;
};

/// Reads an IDX image file (magic 0x00000803: unsigned bytes, 3 dimensions
/// n, rows, cols) as floats.
IdxImages read_idx_images(const std::filesystem::path& path, const IdxImageOptions& options = {});

/// Labels of an IDX label file (magic 0x00000801: unsigned bytes, 1 dimension).
std::vector<int> read_idx_labels(const std::filesystem::path& path);

/// An image file and its label file. Throws DataError if their counts differ or
/// (for num_classes > 0) a label is outside [0, num_classes).
ImageSet load_idx(const std::filesystem::path& images, const std::filesystem::path& labels,
                  const IdxImageOptions& options = {}, int num_classes = 10);

/// The split "train" or "t10k" of an MNIST-style folder: the files
/// <split>-images-idx3-ubyte[.gz] and <split>-labels-idx1-ubyte[.gz] (the
/// gzipped name is tried first), e.g. load_idx_split(kFashionMnistDir, "train").
ImageSet load_idx_split(const std::filesystem::path& dir, std::string_view split,
                        const IdxImageOptions& options = {}, int num_classes = 10);

}  // namespace anode::datasets

#endif  // ANODE_DATASETS_IDX_H_
