#ifndef ANODE_TESTS_FUZZ_FUZZ_INPUT_H_
#define ANODE_TESTS_FUZZ_FUZZ_INPUT_H_

// The readers take paths: each fuzz input is written to one file per process
// (on tmpfs when $TMPDIR points there) and read back from it.

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace anode::fuzz {

inline const std::string& input_path(const char* name) {
  static const std::string path = [&] {
    const char* dir = std::getenv("TMPDIR");
    return std::string(dir && *dir ? dir : "/tmp") + "/anode-fuzz-" + name + "-" + std::to_string(::getpid());
  }();
  return path;
}

inline void write_input(const std::string& path, const std::uint8_t* data, std::size_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) std::abort();
  for (std::size_t done = 0; done < size;) {
    const ssize_t w = ::write(fd, data + done, size - done);
    if (w <= 0) std::abort();
    done += static_cast<std::size_t>(w);
  }
  ::close(fd);
}

}  // namespace anode::fuzz

#endif  // ANODE_TESTS_FUZZ_FUZZ_INPUT_H_
