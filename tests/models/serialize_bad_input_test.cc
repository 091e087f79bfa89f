// Parameter files against hostile input: every fault is a ModelFileError
// naming the file (never ShapeError, std::ios_base::failure or bad_alloc),
// non-regular files are refused without reading them, a file's size is
// bounded by the model's before it is read, and non-finite values are refused.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "models/serialize.h"
#include "tests/support/expect_error.h"

namespace anode::models {
namespace {

namespace fs = std::filesystem;
using anode::testing::expect_error;

fs::path tmp(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return fs::path(dir ? dir : "/tmp") / name;
}

ModelConfig small() {
  ModelConfig c;
  c.input_dim = 2;
  c.hidden = {5};
  c.block.solver.method = ode::Method::kRk4;
  c.block.solver.steps = 3;
  c.seed = 7;
  return c;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_all(const fs::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << data;
}

// Offset of the first parameter's first dimension and of its values.
struct Layout {
  std::size_t first_dim, first_value;
};
Layout layout(const std::string& b) {
  std::uint64_t desc;
  std::memcpy(&desc, b.data() + 16, 8);
  std::size_t at = 24 + desc + 4;  // past the parameter count
  std::uint32_t name;
  std::memcpy(&name, b.data() + at, 4);
  at += 4 + name;
  std::uint32_t rank;
  std::memcpy(&rank, b.data() + at, 4);
  at += 4;
  return {at, at + 8 * rank};
}

// Rewrites the trailing CRC-32 so that only the edit itself is wrong.
void fix_crc(std::string& b) {
  const auto crc = static_cast<std::uint32_t>(
      ::crc32(0L, reinterpret_cast<const Bytef*>(b.data()), static_cast<uInt>(b.size() - 4)));
  std::memcpy(b.data() + b.size() - 4, &crc, 4);
}

TEST(SerializeBadInput, HugeDimensionWithAValidChecksumIsAModelFileError) {
  AnodeModel<float> m(small());
  const fs::path path = tmp("huge_dim.anode");
  save_model(path.string(), m);
  std::string b = read_all(path);
  const std::uint64_t huge = std::uint64_t{1} << 63;
  std::memcpy(b.data() + layout(b).first_dim, &huge, 8);
  fix_crc(b);
  write_all(path, b);
  expect_error<ModelFileError>([&] { load_model(path.string(), m); },
                               {path.string(), "has shape [9223372036854775808", "the model expects"});
}

TEST(SerializeBadInput, NonFiniteValueWithAValidChecksumIsRefused) {
  AnodeModel<float> m(small());
  const fs::path path = tmp("nan.anode");
  save_model(path.string(), m);
  const std::vector<float> before(m.parameters()[0]->value().begin(), m.parameters()[0]->value().end());
  std::string b = read_all(path);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(b.data() + layout(b).first_value + 4 * 3, &nan, 4);
  fix_crc(b);
  write_all(path, b);
  expect_error<ModelFileError>([&] { load_model(path.string(), m); }, {path.string(), "NaN", "index 3"});
  // The parameters are untouched.
  EXPECT_EQ(std::vector<float>(m.parameters()[0]->value().begin(), m.parameters()[0]->value().end()), before);
}

TEST(SerializeBadInput, SavingNonFiniteValuesIsRefused) {
  AnodeModel<float> m(small());
  m.parameters()[1]->value()[0] = std::numeric_limits<float>::infinity();
  const fs::path path = tmp("inf.anode");
  expect_error<ModelFileError>([&] { save_model(path.string(), m); }, {"cannot save", "index 0"});
  EXPECT_FALSE(fs::exists(path));
}

TEST(SerializeBadInput, DirectoryIsAModelFileError) {
  AnodeModel<float> m(small());
  const fs::path dir = tmp("a_directory.anode");
  fs::create_directories(dir);
  expect_error<ModelFileError>([&] { load_model(dir.string(), m); }, {dir.string(), "directory"});
}

TEST(SerializeBadInput, DevicesAndFifosAreRefusedWithoutReadingThem) {
  AnodeModel<float> m(small());
  // /dev/zero never ends; a FIFO without a writer would block on open.
  expect_error<ModelFileError>([&] { load_model("/dev/zero", m); }, {"/dev/zero", "not a regular file"});
  const fs::path fifo = tmp("params.fifo");
  fs::remove(fifo);
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  expect_error<ModelFileError>([&] { load_model(fifo.string(), m); }, {fifo.string(), "not a regular file"});
}

TEST(SerializeBadInput, FileLargerThanTheModelCanComeFromIsRefusedBeforeReading) {
  AnodeModel<float> m(small());
  const fs::path path = tmp("sparse.anode");
  save_model(path.string(), m);
  // 64 GiB, sparse: reading it whole would exhaust memory.
  ASSERT_EQ(::truncate(path.c_str(), off_t{64} << 30), 0);
  expect_error<ModelFileError>([&] { load_model(path.string(), m); },
                               {path.string(), "68719476736 bytes", "more than a file of these parameters"});
  fs::remove(path);
}

}  // namespace
}  // namespace anode::models
