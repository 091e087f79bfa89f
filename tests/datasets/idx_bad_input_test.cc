// The IDX reader against hostile files: sizes a header claims are checked
// against what the file holds before anything is allocated (overflow-safe),
// gzip streams must end the file, non-regular files are refused without
// blocking, and every fault is a DataError naming the file.
#include <sys/stat.h>
#include <zlib.h>

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "datasets/errors.h"
#include "datasets/idx.h"
#include "tests/datasets/test_files.h"
#include "tests/support/expect_error.h"

namespace anode::datasets {
namespace {

namespace fs = std::filesystem;
using anode::testing::expect_error;
using testing::Bytes;
using testing::idx_images;
using testing::idx_labels;
using testing::put_u32;
using testing::read_bytes;
using testing::temp_dir;
using testing::write_bytes;
using testing::write_gzip;

Bytes image_header(std::uint32_t n, std::uint32_t rows, std::uint32_t cols) {
  Bytes b;
  put_u32(b, 0x00000803);
  put_u32(b, n);
  put_u32(b, rows);
  put_u32(b, cols);
  return b;
}

// gzip with stored (uncompressed) blocks: the file is as large as its data.
void write_gzip_stored(const fs::path& path, const Bytes& head, std::size_t zeros) {
  gzFile f = gzopen(path.c_str(), "wb0");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, head.data(), static_cast<unsigned>(head.size())), static_cast<int>(head.size()));
  const Bytes block(std::size_t{1} << 20, 0);
  for (std::size_t done = 0; done < zeros; done += block.size()) {
    const unsigned k = static_cast<unsigned>(std::min(block.size(), zeros - done));
    ASSERT_EQ(gzwrite(f, block.data(), k), static_cast<int>(k));
  }
  ASSERT_EQ(gzclose(f), Z_OK);
}

TEST(IdxBadInput, GzipClaimingMoreThanItHoldsFailsBeforeAllocating) {
  const fs::path dir = temp_dir("claims");
  // 12.8 M images of 28x28 (10 GB of pixels, 40 GB as floats) in a 10 MB
  // file: within deflate's best ratio, so only decompressing tells. The
  // tensor used to be allocated first (std::bad_alloc, or 40 GB reserved).
  write_gzip_stored(dir / "claims.gz", image_header(12800000, 28, 28), std::size_t{10} << 20);
  const auto start = std::chrono::steady_clock::now();
  expect_error<DataError>([&] { read_idx_images(dir / "claims.gz"); },
                          {"read_idx_images", "claims.gz", "truncated", "12800000 images of 28x28",
                           "after decompression"});
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  // A label file likewise.
  Bytes labels;
  put_u32(labels, 0x00000801);
  put_u32(labels, 0x7fffffff);
  write_gzip_stored(dir / "labels.gz", labels, std::size_t{3} << 20);
  expect_error<DataError>([&] { read_idx_labels(dir / "labels.gz"); },
                          {"read_idx_labels", "truncated", "2147483647 labels"});
}

TEST(IdxBadInput, GarbageAfterTheGzipStreamIsRefused) {
  const fs::path dir = temp_dir("garbage");
  write_gzip(dir / "ok.gz", idx_images(3, 4, 4));
  Bytes z = read_bytes(dir / "ok.gz");
  for (unsigned char c : {'j', 'u', 'n', 'k', '\n'}) z.push_back(c);
  write_bytes(dir / "junk.gz", z);
  expect_error<DataError>([&] { read_idx_images(dir / "junk.gz"); },
                          {"junk.gz", "5 bytes of trailing garbage after the gzip stream"});
  // A single stray byte, too.
  z.erase(z.end() - 4, z.end());
  write_bytes(dir / "one.gz", z);
  expect_error<DataError>([&] { read_idx_images(dir / "one.gz"); }, {"1 bytes of trailing garbage"});
}

TEST(IdxBadInput, ConcatenatedGzipMembersAreOneStream) {
  // gzip's format allows several members (cat a.gz b.gz); they decode as one.
  const fs::path dir = temp_dir("members");
  const Bytes whole = idx_labels({1, 2, 3, 4, 5, 6});
  write_gzip(dir / "a.gz", Bytes(whole.begin(), whole.begin() + 10));
  write_gzip(dir / "b.gz", Bytes(whole.begin() + 10, whole.end()));
  Bytes both = read_bytes(dir / "a.gz");
  const Bytes b = read_bytes(dir / "b.gz");
  both.insert(both.end(), b.begin(), b.end());
  write_bytes(dir / "both.gz", both);
  EXPECT_EQ(read_idx_labels(dir / "both.gz"), (std::vector<int>{1, 2, 3, 4, 5, 6}));
}

TEST(IdxBadInput, DimensionsWhoseProductWrapsAreTooLargeNotTrailingBytes) {
  const fs::path dir = temp_dir("wrap");
  // 111711600 * 125002481 * 1321 = 2^64 - 16: with the 16-byte header, the
  // file's expected size wrapped to 0 and the error spoke of trailing bytes.
  write_bytes(dir / "wrap", image_header(111711600, 125002481, 1321));
  const std::string msg = expect_error<DataError>([&] { read_idx_images(dir / "wrap"); },
                                                  {"wrap", "corrupt header", "too large"});
  EXPECT_EQ(msg.find("trailing"), std::string::npos) << msg;
  // A product past 2^64 itself.
  write_bytes(dir / "past", image_header(0x7fffffff, 0x7fffffff, 0x7fffffff));
  expect_error<DataError>([&] { read_idx_images(dir / "past"); }, {"too large"});
  // A product that fits 64 bits but not a tensor of floats.
  write_bytes(dir / "big", image_header(0x7fffffff, 0x7fffffff, 4));
  expect_error<DataError>([&] { read_idx_images(dir / "big"); }, {"too large"});
}

TEST(IdxBadInput, NonRegularFilesAreRefusedWithoutReadingThem) {
  const fs::path dir = temp_dir("special");
  const fs::path fifo = dir / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Opening a FIFO for reading would block until a writer comes: it is opened
  // non-blocking and refused by its type.
  expect_error<DataError>([&] { read_idx_images(fifo); }, {"fifo", "not a regular file"});
  expect_error<DataError>([&] { read_idx_labels("/dev/zero"); }, {"/dev/zero", "not a regular file"});
  expect_error<DataError>([&] { read_idx_labels(dir); }, {"not a regular file"});
}

}  // namespace
}  // namespace anode::datasets
