#include "dist/world.h"

#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <limits>
#include <stdexcept>

namespace anode::dist {

bool launched_by_mpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"}) {
    if (const char* v = std::getenv(var); v && *v) return true;
  }
  return false;
}

World& World::get() {
  static World world;
  return world;
}

World::World() {
  if (!launched_by_mpi()) return;
  int provided = 0;
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    throw std::runtime_error("MPI_Init_thread failed");
  }
  mpi_ = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
}

World::~World() {
  if (!mpi_) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

namespace {

// MPI counts are ints: larger buffers go in chunks.
template <class T>
void allreduce_sum(std::span<T> data, MPI_Datatype type) {
  constexpr std::size_t kMax = std::numeric_limits<int>::max();
  for (std::size_t at = 0; at < data.size(); at += kMax) {
    const int n = static_cast<int>(std::min(kMax, data.size() - at));
    MPI_Allreduce(MPI_IN_PLACE, data.data() + at, n, type, MPI_SUM, MPI_COMM_WORLD);
  }
}

template <class T>
void bcast(std::span<T> data, MPI_Datatype type) {
  constexpr std::size_t kMax = std::numeric_limits<int>::max();
  for (std::size_t at = 0; at < data.size(); at += kMax) {
    const int n = static_cast<int>(std::min(kMax, data.size() - at));
    MPI_Bcast(data.data() + at, n, type, 0, MPI_COMM_WORLD);
  }
}

}  // namespace

void World::sum(std::span<float> data) const {
  if (size_ > 1) allreduce_sum(data, MPI_FLOAT);
}
void World::sum(std::span<double> data) const {
  if (size_ > 1) allreduce_sum(data, MPI_DOUBLE);
}
void World::sum(std::span<std::int64_t> data) const {
  if (size_ > 1) allreduce_sum(data, MPI_INT64_T);
}
void World::broadcast(std::span<float> data) const {
  if (size_ > 1) bcast(data, MPI_FLOAT);
}
void World::broadcast(std::span<double> data) const {
  if (size_ > 1) bcast(data, MPI_DOUBLE);
}

void World::broadcast(std::string& text) const {
  if (size_ == 1) return;
  std::uint64_t n = text.size();
  MPI_Bcast(&n, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
  text.resize(n);
  bcast(std::span<char>(text.data(), text.size()), MPI_CHAR);
}

std::vector<std::string> World::gather(const std::string& text) const {
  if (size_ == 1) return {text};
  if (text.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) {
    throw std::runtime_error("dist::World::gather: a text of " + std::to_string(text.size()) +
                             " bytes is too long for one message");
  }
  const int n = static_cast<int>(text.size());
  std::vector<int> sizes(root() ? size_ : 0), offsets(root() ? size_ : 0);
  MPI_Gather(&n, 1, MPI_INT, sizes.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
  std::string all;
  if (root()) {
    long long total = 0;
    for (int r = 0; r < size_; ++r) {
      offsets[r] = static_cast<int>(total);
      total += sizes[r];
    }
    if (total > std::numeric_limits<int>::max()) {
      throw std::runtime_error("dist::World::gather: " + std::to_string(total) + " bytes in all, too many");
    }
    all.resize(static_cast<std::size_t>(total));
  }
  MPI_Gatherv(text.data(), n, MPI_CHAR, all.data(), sizes.data(), offsets.data(), MPI_CHAR, 0, MPI_COMM_WORLD);
  std::vector<std::string> out;
  if (root()) {
    for (int r = 0; r < size_; ++r) out.push_back(all.substr(offsets[r], sizes[r]));
  }
  return out;
}

void World::check_same(std::uint64_t hash, const std::string& what) const {
  if (size_ == 1) return;
  std::vector<std::uint64_t> all(size_);
  MPI_Allgather(&hash, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD);
  std::string differ;
  for (int r = 1; r < size_; ++r) {
    if (all[r] != all[0]) differ += (differ.empty() ? "" : ", ") + std::to_string(r);
  }
  if (!differ.empty()) {
    throw std::runtime_error("the ranks disagree on " + what + ": rank" + (differ.find(',') == std::string::npos ? " " : "s ") +
                             differ + " differ" + (differ.find(',') == std::string::npos ? "s" : "") +
                             " from rank 0 (every rank must be started with the same flags and data)");
  }
}

void World::barrier() const {
  if (size_ > 1) MPI_Barrier(MPI_COMM_WORLD);
}

void World::abort(int code) const {
  std::fflush(stdout);
  std::fflush(stderr);
  if (mpi_) MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

std::uint64_t hash_bytes(const void* data, std::size_t n, std::uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace anode::dist
