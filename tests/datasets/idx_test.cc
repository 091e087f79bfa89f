#include "datasets/idx.h"

#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <string>

#include "datasets/errors.h"
#include "tests/datasets/test_files.h"
#include "tests/support/expect_error.h"

namespace anode::datasets {
namespace {

namespace fs = std::filesystem;
using testing::Bytes;
using testing::idx_images;
using testing::idx_labels;
using testing::put_u32;
using testing::temp_dir;
using testing::write_bytes;
using testing::write_gzip;

using anode::testing::expect_error;

class IdxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = temp_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  fs::path path(const std::string& name) const { return dir_ / name; }
  fs::path dir_;
};

void check_pattern(const Tensor<float>& images, Index n, Index pixels, float scale) {
  ASSERT_EQ(images.size(), n * pixels);
  for (Index i = 0; i < n; ++i) {
    for (Index k = 0; k < pixels; ++k) {
      ASSERT_EQ(images[i * pixels + k], static_cast<float>((7 * i + k) % 256) / scale)
          << "image " << i << " pixel " << k;
    }
  }
}

TEST_F(IdxTest, PlainImages) {
  write_bytes(path("images"), idx_images(5, 3, 4));
  const IdxImages im = read_idx_images(path("images"));
  EXPECT_EQ(im.images.shape(), (Shape{5, 12}));
  EXPECT_EQ(im.rows, 3);
  EXPECT_EQ(im.cols, 4);
  check_pattern(im.images, 5, 12, 255.0f);
}

TEST_F(IdxTest, RawScaleAndNchwLayout) {
  write_bytes(path("images"), idx_images(40, 6, 5));  // values reach 255
  const IdxImages im =
      read_idx_images(path("images"), {.scale = PixelScale::kRaw, .layout = ImageLayout::kNCHW});
  EXPECT_EQ(im.images.shape(), (Shape{40, 1, 6, 5}));
  check_pattern(im.images, 40, 30, 1.0f);
  const IdxImages unit = read_idx_images(path("images"));
  float lo = 1, hi = 0;
  for (float v : unit.images) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  EXPECT_EQ(lo, 0.0f);
  EXPECT_EQ(hi, 1.0f);
}

TEST_F(IdxTest, GzipImagesAndLabels) {
  write_gzip(path("images.gz"), idx_images(9, 2, 2));
  write_gzip(path("labels.gz"), idx_labels({0, 1, 2, 3, 4, 5, 6, 7, 9}));
  check_pattern(read_idx_images(path("images.gz")).images, 9, 4, 255.0f);
  EXPECT_EQ(read_idx_labels(path("labels.gz")), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 9}));
}

TEST_F(IdxTest, CompressionIsDetectedFromTheBytesNotTheName) {
  write_gzip(path("looks-plain.idx"), idx_images(3, 2, 2));
  write_bytes(path("looks-gzipped.gz"), idx_images(3, 2, 2));
  check_pattern(read_idx_images(path("looks-plain.idx")).images, 3, 4, 255.0f);
  check_pattern(read_idx_images(path("looks-gzipped.gz")).images, 3, 4, 255.0f);
}

TEST_F(IdxTest, LargeGzipAcrossReadChunks) {
  // More than the reader's 1 MiB slice, to cross slice boundaries.
  write_gzip(path("big.gz"), idx_images(1500, 28, 28));
  check_pattern(read_idx_images(path("big.gz")).images, 1500, 784, 255.0f);
}

TEST_F(IdxTest, EmptySetIsValid) {
  write_bytes(path("images"), idx_images(0, 28, 28));
  write_bytes(path("labels"), idx_labels({}));
  const ImageSet s = load_idx(path("images"), path("labels"));
  EXPECT_EQ(s.size(), 0);
  EXPECT_EQ(s.images.shape(), (Shape{0, 784}));
}

TEST_F(IdxTest, LoadIdxPairsImagesWithLabels) {
  write_bytes(path("images"), idx_images(4, 2, 3));
  write_gzip(path("labels"), idx_labels({3, 1, 4, 1}));
  const ImageSet s = load_idx(path("images"), path("labels"));
  EXPECT_EQ(s.size(), 4);
  EXPECT_EQ(s.rows, 2);
  EXPECT_EQ(s.cols, 3);
  EXPECT_EQ(s.labels, (std::vector<int>{3, 1, 4, 1}));
  check_pattern(s.images, 4, 6, 255.0f);
}

TEST_F(IdxTest, LoadIdxSplitFindsGzipOrPlainNames) {
  write_gzip(path("train-images-idx3-ubyte.gz"), idx_images(3, 2, 2));
  write_gzip(path("train-labels-idx1-ubyte.gz"), idx_labels({0, 1, 2}));
  write_bytes(path("t10k-images-idx3-ubyte"), idx_images(2, 2, 2));
  write_bytes(path("t10k-labels-idx1-ubyte"), idx_labels({5, 6}));
  EXPECT_EQ(load_idx_split(dir_, "train").size(), 3);
  EXPECT_EQ(load_idx_split(dir_, "t10k").labels, (std::vector<int>{5, 6}));
  expect_error<DataError>([&] { load_idx_split(dir_, "valid"); },
                    {"valid-images-idx3-ubyte", "no such file"});
  expect_error<DataError>([&] { load_idx_split(dir_ / "nope", "train"); }, {"folder does not exist"});
}

// ---- Faults ------------------------------------------------------------------------

TEST_F(IdxTest, MissingFile) {
  expect_error<DataError>([&] { read_idx_images(path("absent")); }, {path("absent").string(), "no such file"});
  expect_error<DataError>([&] { read_idx_labels(path("absent")); }, {"read_idx_labels", "no such file"});
  expect_error<DataError>([&] { read_idx_images(dir_); }, {"not a regular file"});
}

TEST_F(IdxTest, CountMismatch) {
  write_bytes(path("images"), idx_images(4, 2, 2));
  write_bytes(path("labels"), idx_labels({1, 2, 3}));
  expect_error<DataError>([&] { load_idx(path("images"), path("labels")); },
                    {path("images").string(), path("labels").string(), "4 images", "3 labels"});
}

TEST_F(IdxTest, LabelOutOfRange) {
  write_bytes(path("images"), idx_images(2, 2, 2));
  write_bytes(path("labels"), idx_labels({1, 12}));
  expect_error<DataError>([&] { load_idx(path("images"), path("labels")); },
                    {path("labels").string(), "label 12 at index 1"});
  EXPECT_EQ(load_idx(path("images"), path("labels"), {}, 0).labels[1], 12);  // check disabled
}

TEST_F(IdxTest, WrongMagic) {
  write_bytes(path("labels"), idx_labels({1, 2}));
  expect_error<DataError>([&] { read_idx_images(path("labels")); },
                    {path("labels").string(), "0x00000801", "a label file", "expected 3"});
  write_bytes(path("images"), idx_images(1, 2, 2));
  expect_error<DataError>([&] { read_idx_labels(path("images")); }, {"0x00000803", "an image file"});
  write_bytes(path("zip"), Bytes{'P', 'K', 3, 4, 0, 0, 0, 0});
  expect_error<DataError>([&] { read_idx_images(path("zip")); }, {"not an IDX file", "0x504b0304"});
  Bytes floats;
  put_u32(floats, 0x00000D03);
  put_u32(floats, 0);
  put_u32(floats, 1);
  put_u32(floats, 1);
  write_bytes(path("floats"), floats);
  expect_error<DataError>([&] { read_idx_images(path("floats")); },
                    {"unsupported IDX element type 0x0d"});
}

TEST_F(IdxTest, TruncatedPlainFiles) {
  Bytes b = idx_images(10, 4, 4);
  b.resize(b.size() - 5);
  write_bytes(path("images"), b);
  expect_error<DataError>([&] { read_idx_images(path("images")); },
                    {path("images").string(), "truncated", "10 images of 4x4", "171 bytes"});
  write_bytes(path("short"), Bytes{0, 0});
  expect_error<DataError>([&] { read_idx_images(path("short")); }, {"truncated", "magic"});
  Bytes header_only = idx_images(3, 2, 2);
  header_only.resize(10);
  write_bytes(path("header"), header_only);
  expect_error<DataError>([&] { read_idx_images(path("header")); }, {"truncated", "dimension 1"});
  write_bytes(path("empty"), Bytes{});
  expect_error<DataError>([&] { read_idx_labels(path("empty")); }, {"truncated"});
  Bytes labels = idx_labels({1, 2, 3});
  labels.pop_back();
  write_bytes(path("labels"), labels);
  expect_error<DataError>([&] { read_idx_labels(path("labels")); }, {"truncated", "3 labels"});
}

TEST_F(IdxTest, TrailingBytes) {
  Bytes b = idx_images(2, 2, 2);
  b.push_back(0);
  b.push_back(0);
  write_bytes(path("plain"), b);
  expect_error<DataError>([&] { read_idx_images(path("plain")); }, {"2 trailing bytes"});
  write_gzip(path("gz"), b);
  expect_error<DataError>([&] { read_idx_images(path("gz")); }, {"2 trailing bytes", "decompression"});
}

TEST_F(IdxTest, TruncatedGzip) {
  write_gzip(path("full.gz"), idx_images(200, 28, 28));
  Bytes z = testing::read_bytes(path("full.gz"));
  Bytes half(z.begin(), z.begin() + static_cast<std::ptrdiff_t>(z.size() / 2));
  write_bytes(path("half.gz"), half);
  expect_error<DataError>([&] { read_idx_images(path("half.gz")); }, {path("half.gz").string(), "truncated"});
  // Cut only the 8-byte trailer (CRC and length): all pixels decompress, the
  // end of the stream is still missing.
  Bytes no_trailer(z.begin(), z.end() - 8);
  write_bytes(path("no-trailer.gz"), no_trailer);
  expect_error<DataError>([&] { read_idx_images(path("no-trailer.gz")); }, {"truncated gzip stream"});
}

TEST_F(IdxTest, CorruptGzip) {
  write_gzip(path("full.gz"), idx_images(200, 28, 28));
  const Bytes z = testing::read_bytes(path("full.gz"));
  Bytes bad_crc = z;
  bad_crc[bad_crc.size() - 6] ^= 0xff;  // inside the CRC-32 of the trailer
  write_bytes(path("crc.gz"), bad_crc);
  expect_error<DataError>([&] { read_idx_images(path("crc.gz")); },
                    {path("crc.gz").string(), "corrupt gzip data"});
  Bytes garbled = z;
  for (std::size_t i = 20; i < 60; ++i) garbled[i] ^= 0x5a;  // inside the deflate stream
  write_bytes(path("garbled.gz"), garbled);
  expect_error<DataError>([&] { read_idx_images(path("garbled.gz")); }, {path("garbled.gz").string()});
}

TEST_F(IdxTest, ImplausibleHeaders) {
  Bytes huge;
  put_u32(huge, 0x00000803);
  put_u32(huge, 0x7fffffff);
  put_u32(huge, 28);
  put_u32(huge, 28);
  write_gzip(path("huge.gz"), huge);
  expect_error<DataError>([&] { read_idx_images(path("huge.gz")); },
                    {"corrupt header", "more than a", "gzip file can hold"});
  write_bytes(path("huge"), huge);
  expect_error<DataError>([&] { read_idx_images(path("huge")); }, {"truncated", "2147483647 images"});
  Bytes negative = huge;
  negative[4] = 0x80;
  write_bytes(path("negative"), negative);
  expect_error<DataError>([&] { read_idx_images(path("negative")); }, {"dimension 0", "not a valid size"});
  write_bytes(path("zero"), idx_images(3, 0, 5));
  expect_error<DataError>([&] { read_idx_images(path("zero")); }, {"images of 0x5 pixels"});
}

// ---- Fashion-MNIST from Debian's dataset-fashion-mnist -------------------------------

TEST(FashionMnistTest, LoadsTheDebianPackage) {
  const fs::path dir(kFashionMnistDir);
  if (!fs::exists(dir / "train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << dir << " not installed (Debian package dataset-fashion-mnist)";
  }
  const auto t0 = std::chrono::steady_clock::now();
  const std::clock_t c0 = std::clock();
  const ImageSet train = load_idx_split(dir, "train");
  const ImageSet test = load_idx_split(dir, "t10k");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
  std::printf("Fashion-MNIST: 60000 + 10000 images loaded in %.3f s (%.3f s CPU)\n", seconds, cpu);
  EXPECT_EQ(train.images.shape(), (Shape{60000, 784}));
  EXPECT_EQ(test.images.shape(), (Shape{10000, 784}));
  EXPECT_EQ(train.rows, 28);
  EXPECT_EQ(train.cols, 28);
  EXPECT_EQ(train.size(), 60000);
  EXPECT_EQ(test.size(), 10000);
  // Fashion-MNIST is balanced: 6000 and 1000 of each of the 10 classes.
  EXPECT_EQ(label_counts(train.labels, 10), std::vector<Index>(10, 6000));
  EXPECT_EQ(label_counts(test.labels, 10), std::vector<Index>(10, 1000));
  float lo = 1, hi = 0;
  for (float v : test.images) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  EXPECT_EQ(lo, 0.0f);
  EXPECT_EQ(hi, 1.0f);
}

}  // namespace
}  // namespace anode::datasets
