#ifndef ANODE_TESTS_DATASETS_TEST_FILES_H_
#define ANODE_TESTS_DATASETS_TEST_FILES_H_

// Helpers for tests that write their own data files under $TEST_TMPDIR.

#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace anode::datasets::testing {

/// A fresh folder under $TEST_TMPDIR (or the system temp folder).
inline std::filesystem::path temp_dir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::filesystem::path dir =
      std::filesystem::path(base != nullptr ? base : std::filesystem::temp_directory_path().c_str()) /
      name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

using Bytes = std::vector<unsigned char>;

inline void write_bytes(const std::filesystem::path& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

inline void write_text(const std::filesystem::path& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

inline Bytes read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

/// Writes `bytes` gzip-compressed with zlib's gzwrite.
inline void write_gzip(const std::filesystem::path& path, const Bytes& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  if (f == nullptr) throw std::runtime_error("cannot gzopen " + path.string());
  if (!bytes.empty() &&
      gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) != static_cast<int>(bytes.size())) {
    gzclose(f);
    throw std::runtime_error("gzwrite failed for " + path.string());
  }
  if (gzclose(f) != Z_OK) throw std::runtime_error("gzclose failed for " + path.string());
}

inline void put_u32(Bytes& b, std::uint32_t v) {
  b.push_back(static_cast<unsigned char>(v >> 24));
  b.push_back(static_cast<unsigned char>(v >> 16));
  b.push_back(static_cast<unsigned char>(v >> 8));
  b.push_back(static_cast<unsigned char>(v));
}

/// An IDX image file of n images, rows x cols, pixel k of image i = (7 i + k) mod 256.
inline Bytes idx_images(std::uint32_t n, std::uint32_t rows, std::uint32_t cols) {
  Bytes b;
  put_u32(b, 0x00000803);
  put_u32(b, n);
  put_u32(b, rows);
  put_u32(b, cols);
  for (std::uint32_t i = 0; i < n; ++i) {
    for (std::uint32_t k = 0; k < rows * cols; ++k) {
      b.push_back(static_cast<unsigned char>((7 * i + k) % 256));
    }
  }
  return b;
}

/// An IDX label file with the labels given.
inline Bytes idx_labels(const std::vector<int>& labels) {
  Bytes b;
  put_u32(b, 0x00000801);
  put_u32(b, static_cast<std::uint32_t>(labels.size()));
  for (int l : labels) b.push_back(static_cast<unsigned char>(l));
  return b;
}

}  // namespace anode::datasets::testing

#endif  // ANODE_TESTS_DATASETS_TEST_FILES_H_
