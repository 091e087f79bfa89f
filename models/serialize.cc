#include "models/serialize.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <new>

namespace anode::models {
namespace {

constexpr char kMagic[8] = {'A', 'N', 'O', 'D', 'E', 'P', 'R', 'M'};
// Limits a reader enforces (and a writer respects) so that a file's size can
// be bounded by the model's before the file is read into memory.
constexpr std::uint64_t kMaxDescription = std::uint64_t{1} << 24;  // 16 MiB of JSON
constexpr std::size_t kMaxName = std::size_t{1} << 20;

class Writer {
 public:
  void bytes(const void* p, std::size_t n) {
    // resize + memcpy: GCC 12 flags vector::insert of a small array here
    // with a false -Wstringop-overflow once inlined.
    const std::size_t at = buf_.size();
    buf_.resize(at + n);
    if (n > 0) std::memcpy(buf_.data() + at, p, n);
  }
  template <class U>
  void value(U v) {
    bytes(&v, sizeof(U));
  }
  void str(const std::string& s) {
    value<std::uint32_t>(static_cast<std::uint32_t>(s.size()));
    bytes(s.data(), s.size());
  }
  std::vector<char>& buffer() { return buf_; }

 private:
  std::vector<char> buf_;
};

class Reader {
 public:
  Reader(const std::string& path, const std::vector<char>& data, std::size_t end)
      : path_(path), data_(data), end_(end) {}
  void bytes(void* p, std::size_t n, const char* what) {
    if (n > end_ - pos_) fail(std::string("truncated while reading ") + what);
    std::memcpy(p, data_.data() + pos_, n);
    pos_ += n;
  }
  template <class U>
  U value(const char* what) {
    U v;
    bytes(&v, sizeof(U), what);
    return v;
  }
  std::string str(const char* what, std::size_t max_len = 1 << 20) {
    auto n = value<std::uint32_t>(what);
    if (n > max_len) fail(std::string("implausible length ") + std::to_string(n) + " for " + what);
    std::string s(n, '\0');
    bytes(s.data(), n, what);
    return s;
  }
  std::size_t pos() const { return pos_; }
  [[noreturn]] void fail(const std::string& what) const {
    throw ModelFileError("parameter file '" + path_ + "': " + what);
  }

 private:
  const std::string& path_;
  const std::vector<char>& data_;
  std::size_t end_;
  std::size_t pos_ = 0;
};

void write_atomically(const std::string& path, const std::vector<char>& data) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw ModelFileError("parameter file '" + path + "': cannot create: " + std::strerror(errno));
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t w = ::write(fd, data.data() + done, data.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw ModelFileError("parameter file '" + path + "': write failed: " + std::strerror(e));
    }
    done += static_cast<std::size_t>(w);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    throw ModelFileError("parameter file '" + path + "': could not flush to disk");
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw ModelFileError("parameter file '" + path + "': rename failed: " + std::strerror(e));
  }
}

}  // namespace

template <class T>
void save_parameters(const std::string& path, const std::vector<Parameter<T>*>& params,
                     const std::string& description) {
  // Nothing is written that load_parameters would refuse.
  auto refuse = [&](const std::string& why) {
    throw ModelFileError("parameter file '" + path + "': cannot save: " + why);
  };
  if (description.size() > kMaxDescription) refuse("the description exceeds 16 MiB");
  for (const Parameter<T>* p : params) {
    if (p->name().size() > kMaxName) refuse("a parameter name exceeds 1 MiB");
    for (Index k = 0; k < p->size(); ++k) {
      if (!std::isfinite(p->value()[k])) {
        refuse("parameter '" + p->name() + "' holds a NaN or infinity at index " + std::to_string(k));
      }
    }
  }
  Writer w;
  w.bytes(kMagic, sizeof(kMagic));
  w.value<std::uint32_t>(kParameterFormatVersion);
  w.value<std::uint32_t>(sizeof(T));
  w.value<std::uint64_t>(description.size());
  w.bytes(description.data(), description.size());
  w.value<std::uint32_t>(static_cast<std::uint32_t>(params.size()));
  for (const Parameter<T>* p : params) {
    w.str(p->name());
    w.value<std::uint32_t>(static_cast<std::uint32_t>(p->shape().rank()));
    for (Index d : p->shape().dims()) w.value<std::uint64_t>(static_cast<std::uint64_t>(d));
    w.bytes(p->value().data(), sizeof(T) * p->size());
  }
  std::vector<char>& buf = w.buffer();
  // crc32_z takes a size_t length (crc32's uInt would cover only the first
  // 4 GiB of a larger file).
  const auto crc = static_cast<std::uint32_t>(::crc32_z(0L, reinterpret_cast<const Bytef*>(buf.data()), buf.size()));
  w.value<std::uint32_t>(crc);
  write_atomically(path, buf);
}

namespace {

[[noreturn]] void file_error(const std::string& path, const std::string& fault) {
  throw ModelFileError("parameter file '" + path + "': " + fault);
}

// The whole file, read through one descriptor: refused unless it is a regular
// file (a FIFO is opened non-blocking and never read; /dev/zero would never
// end), and unless it is at most `max_bytes` long (checked before allocating).
std::vector<char> read_file(const std::string& path, std::uint64_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) file_error(path, std::string("cannot open: ") + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) file_error(path, std::string("cannot stat: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) {
    file_error(path, S_ISDIR(st.st_mode) ? "is a directory, not a file" : "not a regular file");
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size > max_bytes) {
    file_error(path, "is " + std::to_string(size) + " bytes, more than a file of these parameters can be (" +
                         std::to_string(max_bytes) + " bytes)");
  }
  std::vector<char> data(static_cast<std::size_t>(size));
  std::size_t done = 0;
  while (true) {
    // One byte of room past the size tells a file that grew while read.
    char extra;
    char* dst = done < data.size() ? data.data() + done : &extra;
    const std::size_t room = done < data.size() ? data.size() - done : 1;
    const ssize_t got = ::read(fd, dst, room);
    if (got < 0) {
      if (errno == EINTR) continue;
      file_error(path, std::string("read error: ") + std::strerror(errno));
    }
    if (got == 0) break;
    if (done >= data.size()) file_error(path, "changed while it was read");
    done += static_cast<std::size_t>(got);
  }
  data.resize(done);
  return data;
}

template <class T>
std::string load_parameters_unguarded(const std::string& path, const std::vector<Parameter<T>*>& params,
                                      const std::string* expected_description) {
  // The largest file these parameters can come from: the fixed fields, the
  // longest description and names allowed, and the parameters' own data.
  std::uint64_t max_bytes = sizeof(kMagic) + 4 + 4 + 8 + kMaxDescription + 4 + 4;
  for (const Parameter<T>* p : params) {
    max_bytes += 4 + kMaxName + 4 + 8 * static_cast<std::uint64_t>(p->shape().rank()) +
                 sizeof(T) * static_cast<std::uint64_t>(p->size());
  }
  const std::vector<char> data = read_file(path, max_bytes);
  const std::size_t min_size = sizeof(kMagic) + 4 + 4 + 8 + 4 + 4;
  if (data.size() < min_size) file_error(path, "truncated (" + std::to_string(data.size()) + " bytes)");
  if (std::memcmp(data.data(), kMagic, sizeof(kMagic)) != 0) {
    file_error(path, "not an anode parameter file (bad magic)");
  }
  const std::size_t body = data.size() - 4;
  Reader r(path, data, body);
  char magic[8];
  r.bytes(magic, 8, "magic");
  const auto version = r.value<std::uint32_t>("version");
  if (version != kParameterFormatVersion) {
    r.fail("format version " + std::to_string(version) + " (this build reads version " +
           std::to_string(kParameterFormatVersion) + ")");
  }
  std::uint32_t stored_crc;
  std::memcpy(&stored_crc, data.data() + body, 4);
  const auto crc = static_cast<std::uint32_t>(::crc32_z(0L, reinterpret_cast<const Bytef*>(data.data()), body));
  if (crc != stored_crc) r.fail("checksum mismatch (the file is corrupted or truncated)");
  const auto scalar = r.value<std::uint32_t>("scalar type");
  if (scalar != sizeof(T)) {
    r.fail("holds " + std::string(scalar == 4 ? "float" : scalar == 8 ? "double" : "unknown") +
           " parameters, the model uses " + (sizeof(T) == 4 ? "float" : "double"));
  }
  const auto desc_len = r.value<std::uint64_t>("description length");
  if (desc_len > kMaxDescription || desc_len > body - r.pos()) {
    r.fail("implausible description length " + std::to_string(desc_len));
  }
  std::string description(static_cast<std::size_t>(desc_len), '\0');
  r.bytes(description.data(), description.size(), "description");
  if (expected_description != nullptr && description != *expected_description) {
    r.fail("describes another model:\n  file:  " + description + "\n  model: " + *expected_description);
  }
  const auto count = r.value<std::uint32_t>("parameter count");
  if (count != params.size()) {
    r.fail("holds " + std::to_string(count) + " parameters, the model has " + std::to_string(params.size()));
  }
  // Read everything into staging first: the parameters change only if the
  // whole file fits.
  std::vector<Tensor<T>> staged;
  staged.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::string name = r.str("parameter name", kMaxName);
    if (name != params[i]->name()) {
      r.fail("parameter " + std::to_string(i) + " is '" + name + "', the model expects '" +
             params[i]->name() + "'");
    }
    const Shape& want = params[i]->shape();
    const auto rank = r.value<std::uint32_t>("rank");
    if (rank > static_cast<std::uint32_t>(kMaxRank)) r.fail("parameter '" + name + "' has rank " + std::to_string(rank));
    // The stored dimensions are compared as unsigned 64-bit numbers: no
    // Shape is built from them (a value >= 2^63 is no valid size).
    std::uint64_t dims[kMaxRank];
    bool same = static_cast<int>(rank) == want.rank();
    std::string shown = "[";
    for (std::uint32_t d = 0; d < rank; ++d) {
      dims[d] = r.value<std::uint64_t>("dimension");
      shown += (d ? ", " : "") + std::to_string(dims[d]);
      same = same && dims[d] == static_cast<std::uint64_t>(want[static_cast<int>(d)]);
    }
    shown += "]";
    if (!same) {
      r.fail("parameter '" + name + "' has shape " + shown + ", the model expects " + want.str());
    }
    Tensor<T> t(want);
    r.bytes(t.data(), sizeof(T) * static_cast<std::size_t>(t.size()), "parameter values");
    for (Index k = 0; k < t.size(); ++k) {
      if (!std::isfinite(t[k])) {
        r.fail("parameter '" + name + "' holds " + (std::isnan(t[k]) ? "NaN" : "an infinity") + " at index " +
               std::to_string(k));
      }
    }
    staged.push_back(std::move(t));
  }
  if (r.pos() != body) r.fail("has " + std::to_string(body - r.pos()) + " unexpected trailing bytes");
  for (std::uint32_t i = 0; i < count; ++i) params[i]->value().assign(staged[i].view());
  return description;
}

}  // namespace

// Every fault is a ModelFileError naming the file: an allocation or library
// failure too, never a foreign exception.
template <class T>
std::string load_parameters(const std::string& path, const std::vector<Parameter<T>*>& params,
                            const std::string* expected_description) {
  try {
    return load_parameters_unguarded(path, params, expected_description);
  } catch (const ModelFileError&) {
    throw;
  } catch (const std::bad_alloc&) {
    file_error(path, "out of memory while loading it");
  } catch (const std::exception& e) {
    file_error(path, e.what());
  }
}

template void save_parameters<float>(const std::string&, const std::vector<Parameter<float>*>&, const std::string&);
template void save_parameters<double>(const std::string&, const std::vector<Parameter<double>*>&, const std::string&);
template std::string load_parameters<float>(const std::string&, const std::vector<Parameter<float>*>&, const std::string*);
template std::string load_parameters<double>(const std::string&, const std::vector<Parameter<double>*>&, const std::string*);

}  // namespace anode::models
