#include "datasets/idx.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <system_error>

#include "datasets/errors.h"

namespace anode::datasets {
namespace {

namespace fs = std::filesystem;

constexpr std::uint8_t kUnsignedByte = 0x08;
// deflate cannot compress better than about 1032:1; a header promising more
// data than that is corrupt, and is caught before allocating for it.
constexpr std::uintmax_t kMaxDeflateRatio = 1032;

std::string hex32(std::uint32_t v) {
  char buf[11];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

std::string hex8(unsigned v) {
  char buf[5];
  std::snprintf(buf, sizeof buf, "0x%02x", v & 0xffu);
  return buf;
}

// One IDX file opened through zlib, which reads plain files as they are.
class IdxFile {
 public:
  IdxFile(std::string_view loader, const fs::path& path) : loader_(loader), path_(path) {
    std::error_code ec;
    const fs::file_status st = fs::status(path, ec);
    if (ec && ec != std::errc::no_such_file_or_directory) fail("cannot access: " + ec.message());
    if (!fs::exists(st)) fail("no such file");
    if (!fs::is_regular_file(st)) fail("not a regular file");
    bytes_ = fs::file_size(path, ec);
    if (ec) fail("cannot read its size: " + ec.message());
    std::array<unsigned char, 2> head{};
    if (std::FILE* f = std::fopen(path.c_str(), "rb")) {
      gzip_ = std::fread(head.data(), 1, 2, f) == 2 && head[0] == 0x1f && head[1] == 0x8b;
      std::fclose(f);
    } else {
      fail(std::string("cannot open: ") + std::strerror(errno));
    }
    file_ = gzopen(path.c_str(), "rb");
    if (file_ == nullptr) fail(std::string("cannot open: ") + std::strerror(errno));
    gzbuffer(file_, 1 << 17);
  }
  ~IdxFile() {
    if (file_ != nullptr) gzclose_r(file_);
  }
  IdxFile(const IdxFile&) = delete;
  IdxFile& operator=(const IdxFile&) = delete;

  [[noreturn]] void fail(const std::string& fault) const {
    throw DataError(std::string(loader_) + ": " + path_.string() + ": " + fault);
  }

  bool gzip() const { return gzip_; }

  // Reads up to n bytes; returns how many were read (fewer only at the end of
  // the data). Corrupt gzip data throws.
  std::size_t read(void* dst, std::size_t n) {
    std::size_t done = 0;
    while (done < n) {
      const unsigned chunk =
          static_cast<unsigned>(std::min<std::size_t>(n - done, std::size_t{1} << 30));
      const int got = gzread(file_, static_cast<char*>(dst) + done, chunk);
      if (got < 0) corrupt();
      if (got == 0) break;
      done += static_cast<std::size_t>(got);
    }
    pos_ += done;
    if (done < n) check_clean_end();
    return done;
  }

  // Reads exactly n bytes of `what`, or throws saying where the data ended.
  void read_exact(void* dst, std::size_t n, const std::string& what) {
    const std::uintmax_t start = pos_;
    const std::size_t got = read(dst, n);
    if (got < n) {
      fail("truncated: the data ends " + std::to_string(pos_) + " bytes in, inside " + what +
           " (bytes " + std::to_string(start) + ".." + std::to_string(start + n) + ")" +
           (gzip_ ? " after decompression" : ""));
    }
  }

  // Checks the declared payload against what the file can hold, before any
  // allocation sized by the header.
  void check_declared_size(std::uintmax_t payload, const std::string& what) {
    const std::uintmax_t total = pos_ + payload;
    if (!gzip_) {
      if (bytes_ < total) {
        fail("truncated: the header declares " + what + " (" + std::to_string(total) +
             " bytes with the header) but the file has " + std::to_string(bytes_) + " bytes");
      }
      if (bytes_ > total) {
        fail(std::to_string(bytes_ - total) + " trailing bytes after the " + what +
             " the header declares (expected " + std::to_string(total) + " bytes)");
      }
    } else if (payload / kMaxDeflateRatio > bytes_) {
      fail("corrupt header: it declares " + what + " (" + std::to_string(payload) +
           " bytes), more than a " + std::to_string(bytes_) + "-byte gzip file can hold");
    }
  }

  // After the payload: nothing may follow, and a gzip stream must end cleanly
  // (reading on makes zlib verify the CRC and length in the trailer).
  void expect_end(const std::string& what) {
    char extra[64];
    const std::size_t got = read(extra, sizeof extra);
    if (got > 0) {
      std::uintmax_t more = got;
      while (std::size_t g = read(extra, sizeof extra)) more += g;
      fail(std::to_string(more) + " trailing bytes" + (gzip_ ? " (after decompression)" : "") +
           " after the " + what + " the header declares");
    }
  }

 private:
  [[noreturn]] void corrupt() {
    int err = Z_OK;
    const char* msg = gzerror(file_, &err);
    if (err == Z_ERRNO) fail(std::string("read error: ") + std::strerror(errno));
    if (err == Z_BUF_ERROR) {
      fail("truncated gzip stream: " + std::string(msg != nullptr ? msg : "unexpected end") +
           " after " + std::to_string(pos_) + " decompressed bytes");
    }
    fail(std::string("corrupt gzip data: ") + (msg != nullptr ? msg : "unknown zlib error") +
         " (" + std::to_string(pos_) + " bytes decompressed)");
  }

  // gzread returns 0 both at a clean end and when a gzip stream was cut off;
  // gzerror tells them apart.
  void check_clean_end() {
    int err = Z_OK;
    gzerror(file_, &err);
    if (err != Z_OK) corrupt();
  }

  std::string_view loader_;
  fs::path path_;
  gzFile file_ = nullptr;
  std::uintmax_t bytes_ = 0;
  std::uintmax_t pos_ = 0;
  bool gzip_ = false;
};

struct Header {
  std::uint32_t magic = 0;
  std::vector<std::uint32_t> dims;
};

Header read_header(IdxFile& file, int expected_dims, std::string_view kind) {
  std::array<unsigned char, 4> m{};
  file.read_exact(m.data(), 4, "the 4-byte magic number");
  Header h;
  h.magic = (std::uint32_t{m[0]} << 24) | (std::uint32_t{m[1]} << 16) |
            (std::uint32_t{m[2]} << 8) | m[3];
  const std::uint32_t want = 0x0800u | static_cast<std::uint32_t>(expected_dims);
  if (m[0] != 0 || m[1] != 0) {
    file.fail("not an IDX file: magic number " + hex32(h.magic) + " (expected " + hex32(want) +
              " for " + std::string(kind) + ")" +
              (file.gzip() ? "" : "; a gzip file would start with 0x1f8b"));
  }
  if (m[2] != kUnsignedByte) {
    file.fail("unsupported IDX element type " + hex8(m[2]) + " in magic " +
              hex32(h.magic) + " (only unsigned byte, 0x08, is supported)");
  }
  if (m[3] != expected_dims) {
    std::string what = m[3] == 3 ? " (an image file)" : m[3] == 1 ? " (a label file)" : "";
    file.fail("magic " + hex32(h.magic) + " declares " + std::to_string(m[3]) + " dimensions" +
              what + ", expected " + std::to_string(expected_dims) + " for " +
              std::string(kind) + " (magic " + hex32(want) + ")");
  }
  h.dims.resize(static_cast<std::size_t>(expected_dims));
  for (int i = 0; i < expected_dims; ++i) {
    std::array<unsigned char, 4> b{};
    file.read_exact(b.data(), 4, "the size of dimension " + std::to_string(i));
    const std::uint32_t v = (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) |
                            (std::uint32_t{b[2]} << 8) | b[3];
    if (v > static_cast<std::uint32_t>(std::numeric_limits<std::int32_t>::max())) {
      file.fail("corrupt header: dimension " + std::to_string(i) + " is " + hex32(v) +
                ", not a valid size");
    }
    h.dims[i] = v;
  }
  return h;
}

}  // namespace

IdxImages read_idx_images(const fs::path& path, const IdxImageOptions& options) {
  IdxFile file("read_idx_images", path);
  const Header h = read_header(file, 3, "images");
  const Index n = h.dims[0], rows = h.dims[1], cols = h.dims[2];
  if (rows == 0 || cols == 0) {
    file.fail("corrupt header: images of " + std::to_string(rows) + "x" + std::to_string(cols) +
              " pixels");
  }
  const std::string what = std::to_string(n) + " images of " + std::to_string(rows) + "x" +
                           std::to_string(cols);
  // n, rows, cols < 2^31 each: rows * cols fits, and the product with n is
  // checked by division before it is formed.
  const std::uintmax_t pixels = static_cast<std::uintmax_t>(rows) * static_cast<std::uintmax_t>(cols);
  if (n > 0 && pixels > std::numeric_limits<std::uintmax_t>::max() / static_cast<std::uintmax_t>(n)) {
    file.fail("corrupt header: " + what + " is too large");
  }
  file.check_declared_size(pixels * static_cast<std::uintmax_t>(n), what);

  IdxImages out;
  out.rows = rows;
  out.cols = cols;
  out.images = options.layout == ImageLayout::kFlat ? Tensor<float>(Shape{n, rows * cols})
                                                    : Tensor<float>(Shape{n, 1, rows, cols});
  std::array<float, 256> lut{};
  for (int v = 0; v < 256; ++v) {
    lut[v] = options.scale == PixelScale::kUnit ? static_cast<float>(v) / 255.0f
                                                : static_cast<float>(v);
  }
  // Decompress and convert in slices: peak memory is the float tensor plus one
  // slice, not a second copy of the whole file.
  std::vector<unsigned char> chunk(std::size_t{1} << 20);
  const Index total = out.images.size();
  float* dst = out.images.data();
  for (Index done = 0; done < total;) {
    const std::size_t k = static_cast<std::size_t>(
        std::min<Index>(total - done, static_cast<Index>(chunk.size())));
    file.read_exact(chunk.data(), k, "the pixels of " + what);
    for (std::size_t i = 0; i < k; ++i) dst[i] = lut[chunk[i]];
    dst += k;
    done += static_cast<Index>(k);
  }
  file.expect_end(what);
  return out;
}

std::vector<int> read_idx_labels(const fs::path& path) {
  IdxFile file("read_idx_labels", path);
  const Header h = read_header(file, 1, "labels");
  const std::uintmax_t n = h.dims[0];
  const std::string what = std::to_string(n) + " labels";
  file.check_declared_size(n, what);
  std::vector<unsigned char> raw(static_cast<std::size_t>(n));
  file.read_exact(raw.data(), raw.size(), "the " + what);
  file.expect_end(what);
  return std::vector<int>(raw.begin(), raw.end());
}

ImageSet load_idx(const fs::path& images, const fs::path& labels, const IdxImageOptions& options,
                  int num_classes) {
  IdxImages im = read_idx_images(images, options);
  std::vector<int> lab = read_idx_labels(labels);
  const Index n = im.images.shape()[0];
  if (static_cast<Index>(lab.size()) != n) {
    throw DataError("load_idx: " + images.string() + " holds " + std::to_string(n) +
                    " images but " + labels.string() + " holds " + std::to_string(lab.size()) +
                    " labels");
  }
  if (num_classes > 0) {
    for (std::size_t i = 0; i < lab.size(); ++i) {
      if (lab[i] >= num_classes) {
        throw DataError("load_idx: " + labels.string() + ": label " + std::to_string(lab[i]) +
                        " at index " + std::to_string(i) + " is outside [0, " +
                        std::to_string(num_classes) + ")");
      }
    }
  }
  return ImageSet{std::move(im.images), std::move(lab), im.rows, im.cols};
}

ImageSet load_idx_split(const fs::path& dir, std::string_view split,
                        const IdxImageOptions& options, int num_classes) {
  auto find = [&](const std::string& stem) {
    for (const std::string& name : {stem + ".gz", stem}) {
      std::error_code ec;
      if (fs::is_regular_file(dir / name, ec)) return dir / name;
    }
    throw DataError("load_idx_split: " + (dir / stem).string() + "[.gz]: no such file" +
                    (fs::is_directory(dir) ? "" : " (the folder does not exist)"));
  };
  const std::string s(split);
  const fs::path images = find(s + "-images-idx3-ubyte");
  const fs::path labels = find(s + "-labels-idx1-ubyte");
  return load_idx(images, labels, options, num_classes);
}

}  // namespace anode::datasets
