#include "datasets/idx.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <new>
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

// One IDX file, plain or gzip (decoded with zlib's inflate directly: gzread
// silently ignores whatever follows a gzip stream). The file is opened first
// and checked through its descriptor, so a FIFO or device is refused without
// blocking or reading it.
class IdxFile {
 public:
  IdxFile(std::string_view loader, const fs::path& path) : loader_(loader), path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd_ < 0) {
      if (errno == ENOENT) fail("no such file");
      fail(std::string("cannot open: ") + std::strerror(errno));
    }
    struct stat st {};
    if (::fstat(fd_, &st) != 0) fail(std::string("cannot read its size: ") + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) fail("not a regular file");
    bytes_ = static_cast<std::uintmax_t>(st.st_size);
    unsigned char head[2] = {0, 0};
    gzip_ = ::pread(fd_, head, 2, 0) == 2 && head[0] == 0x1f && head[1] == 0x8b;
    if (gzip_) {
      in_.resize(static_cast<std::size_t>(std::min<std::uintmax_t>(bytes_ + 1, std::uintmax_t{1} << 17)));
      // 16 + MAX_WBITS: a gzip wrapper, whose CRC-32 and length inflate checks.
      if (inflateInit2(&z_, 16 + MAX_WBITS) != Z_OK) fail("cannot initialize zlib");
      z_ready_ = true;
    }
  }
  ~IdxFile() {
    if (z_ready_) inflateEnd(&z_);
    if (fd_ >= 0) ::close(fd_);
  }
  IdxFile(const IdxFile&) = delete;
  IdxFile& operator=(const IdxFile&) = delete;

  [[noreturn]] void fail(const std::string& fault) const {
    throw DataError(std::string(loader_) + ": " + path_.string() + ": " + fault);
  }

  bool gzip() const { return gzip_; }

  // Reads up to n bytes; returns how many were read (fewer only at the end of
  // the data). Corrupt or truncated gzip data, and anything but another gzip
  // member after a gzip member, throw.
  std::size_t read(void* dst, std::size_t n) {
    const std::size_t done = gzip_ ? inflate_some(static_cast<unsigned char*>(dst), n)
                                   : raw_read(static_cast<unsigned char*>(dst), n);
    pos_ += done;
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

  // Checks the declared payload against what the file holds, before any
  // allocation sized by the header: a plain file by its size; a gzip file
  // first by deflate's best ratio, then by decompressing it once, counting
  // (and checking the stream), then rewinding.
  void check_declared_size(std::uintmax_t payload, const std::string& what) {
    const std::uintmax_t header = pos_;
    std::uintmax_t have;  // bytes after the header
    if (!gzip_) {
      have = bytes_ >= header ? bytes_ - header : 0;
    } else {
      if (payload / kMaxDeflateRatio > bytes_) {
        fail("corrupt header: it declares " + what + " (" + std::to_string(payload) +
             " bytes), more than a " + std::to_string(bytes_) + "-byte gzip file can hold");
      }
      have = 0;
      std::vector<unsigned char> sink(static_cast<std::size_t>(std::min<std::uintmax_t>(payload + header + 1, std::uintmax_t{1} << 16)));
      while (std::size_t got = inflate_some(sink.data(), sink.size())) have += got;
      rewind();
      std::uintmax_t skipped = 0;
      while (skipped < header) {
        const std::size_t k = static_cast<std::size_t>(std::min<std::uintmax_t>(header - skipped, sink.size()));
        if (inflate_some(sink.data(), k) != k) fail("the file changed while it was read");
        skipped += k;
      }
      pos_ = header;
    }
    const char* where = gzip_ ? " after decompression" : "";
    // Written without forming header + payload, which may wrap.
    if (have < payload) {
      fail("truncated: the header declares " + what + " (" + std::to_string(payload) +
           " bytes after the " + std::to_string(header) + "-byte header) but the file has " +
           std::to_string(header + have) + " bytes" + where);
    }
    if (have > payload) {
      fail(std::to_string(have - payload) + " trailing bytes" + (gzip_ ? " (after decompression)" : "") +
           " after the " + what + " the header declares (expected " + std::to_string(payload) +
           " bytes after the header)");
    }
  }

  // After the payload: nothing may follow, and a gzip stream must end cleanly
  // (reading on makes inflate verify the CRC and length in the trailer).
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
  std::size_t raw_read(unsigned char* dst, std::size_t n) {
    std::size_t done = 0;
    while (done < n) {
      const ssize_t got = ::read(fd_, dst + done, std::min<std::size_t>(n - done, std::size_t{1} << 30));
      if (got < 0) {
        if (errno == EINTR) continue;
        fail(std::string("read error: ") + std::strerror(errno));
      }
      if (got == 0) break;
      done += static_cast<std::size_t>(got);
      raw_pos_ += static_cast<std::uintmax_t>(got);
    }
    return done;
  }

  // Makes at least k compressed bytes available (fewer only at the end of the file).
  std::size_t fill(std::size_t k) {
    if (z_.avail_in >= k) return z_.avail_in;
    std::size_t have = z_.avail_in;
    if (have > 0) std::memmove(in_.data(), z_.next_in, have);
    while (have < k) {
      const std::size_t got = raw_read(in_.data() + have, in_.size() - have);
      if (got == 0) break;
      have += got;
    }
    z_.next_in = in_.data();
    z_.avail_in = static_cast<uInt>(have);
    return have;
  }

  std::size_t inflate_some(unsigned char* dst, std::size_t n) {
    std::size_t done = 0;
    while (done < n) {
      if (member_end_) {
        // After a gzip member: the end of the file, or another member.
        if (fill(2) == 0) break;
        if (z_.avail_in < 2 || z_.next_in[0] != 0x1f || z_.next_in[1] != 0x8b) {
          const std::uintmax_t rest = z_.avail_in + (bytes_ > raw_pos_ ? bytes_ - raw_pos_ : 0);
          fail(std::to_string(rest) + " bytes of trailing garbage after the gzip stream (" +
               std::to_string(pos_ + done) + " bytes decompressed)");
        }
        if (inflateReset(&z_) != Z_OK) fail("cannot reset zlib");
        member_end_ = false;
      }
      if (z_.avail_in == 0) fill(1);
      const uInt room = static_cast<uInt>(std::min<std::size_t>(n - done, std::size_t{1} << 30));
      z_.next_out = dst + done;
      z_.avail_out = room;
      const int r = inflate(&z_, Z_NO_FLUSH);
      done += room - z_.avail_out;
      if (r == Z_STREAM_END) {
        member_end_ = true;
      } else if (r == Z_BUF_ERROR && z_.avail_in == 0) {
        // No progress and no more input: the stream was cut off.
        fail("truncated gzip stream: unexpected end of file after " + std::to_string(pos_ + done) +
             " decompressed bytes");
      } else if (r != Z_OK) {
        fail(std::string("corrupt gzip data: ") + (z_.msg != nullptr ? z_.msg : "unknown zlib error") +
             " (" + std::to_string(pos_ + done) + " bytes decompressed)");
      }
    }
    return done;
  }

  void rewind() {
    if (::lseek(fd_, 0, SEEK_SET) != 0) fail(std::string("cannot rewind: ") + std::strerror(errno));
    raw_pos_ = 0;
    pos_ = 0;
    z_.avail_in = 0;
    member_end_ = false;
    if (inflateReset(&z_) != Z_OK) fail("cannot reset zlib");
  }

  std::string_view loader_;
  fs::path path_;
  int fd_ = -1;
  z_stream z_{};
  bool z_ready_ = false;
  std::vector<unsigned char> in_;
  bool member_end_ = false;
  std::uintmax_t bytes_ = 0;    // the file's size
  std::uintmax_t raw_pos_ = 0;  // bytes read from the file
  std::uintmax_t pos_ = 0;      // bytes of IDX data read (after decompression)
  bool gzip_ = false;
};

// Every fault of a loader is a DataError naming the loader and the file: an
// allocation or library failure too, never a foreign exception.
template <class F>
auto guarded(std::string_view loader, const fs::path& path, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const DataError&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw DataError(std::string(loader) + ": " + path.string() + ": out of memory while loading it");
  } catch (const std::exception& e) {
    throw DataError(std::string(loader) + ": " + path.string() + ": " + e.what());
  }
}

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

IdxImages read_images(const fs::path& path, const IdxImageOptions& options) {
  IdxFile file("read_idx_images", path);
  const Header h = read_header(file, 3, "images");
  const Index n = h.dims[0], rows = h.dims[1], cols = h.dims[2];
  if (rows == 0 || cols == 0) {
    file.fail("corrupt header: images of " + std::to_string(rows) + "x" + std::to_string(cols) +
              " pixels");
  }
  const std::string what = std::to_string(n) + " images of " + std::to_string(rows) + "x" +
                           std::to_string(cols);
  // n, rows, cols < 2^31 each; their product is formed with overflow checks
  // and must fit a tensor (Index) as well as the file.
  std::uint64_t pixels = 0, payload = 0;
  if (__builtin_mul_overflow(static_cast<std::uint64_t>(rows), static_cast<std::uint64_t>(cols), &pixels) ||
      __builtin_mul_overflow(pixels, static_cast<std::uint64_t>(n), &payload) ||
      payload > static_cast<std::uint64_t>(std::numeric_limits<Index>::max()) / sizeof(float)) {
    file.fail("corrupt header: " + what + " is too large (more than 2^61 pixels)");
  }
  file.check_declared_size(payload, what);

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
  const Index total = out.images.size();
  std::vector<unsigned char> chunk(static_cast<std::size_t>(std::min<Index>(total, Index{1} << 20)));
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

std::vector<int> read_labels(const fs::path& path) {
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

}  // namespace

IdxImages read_idx_images(const fs::path& path, const IdxImageOptions& options) {
  return guarded("read_idx_images", path, [&] { return read_images(path, options); });
}

std::vector<int> read_idx_labels(const fs::path& path) {
  return guarded("read_idx_labels", path, [&] { return read_labels(path); });
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
    std::error_code ec;
    throw DataError("load_idx_split: " + (dir / stem).string() + "[.gz]: no such file" +
                    (fs::is_directory(dir, ec) ? "" : " (the folder does not exist)"));
  };
  const std::string s(split);
  const fs::path images = find(s + "-images-idx3-ubyte");
  const fs::path labels = find(s + "-labels-idx1-ubyte");
  return load_idx(images, labels, options, num_classes);
}

}  // namespace anode::datasets
