#ifndef ANODE_DIST_WORLD_H_
#define ANODE_DIST_WORLD_H_

// The processes of one run, over MPI (Debian's OpenMPI). Started by an MPI
// launcher (`mpirun -np K prog`), a program is rank 0..K-1 of MPI_COMM_WORLD;
// started on its own, it is a world of one process and never calls MPI at
// all (no MPI_Init, no daemon), so every build and test works without MPI
// running. The collectives below are then no-ops.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace anode::dist {

/// This process's world: MPI_COMM_WORLD under an MPI launcher, else one
/// process. MPI is initialized on the first call (MPI_THREAD_FUNNELED: only
/// the thread that called it talks to MPI) and finalized at exit.
class World {
 public:
  /// The world of this process (one per process: MPI's own is global).
  static World& get();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  /// Rank 0, the one that writes results.
  bool root() const { return rank_ == 0; }
  /// Whether MPI is in use (launched by an MPI launcher, even with one rank).
  bool mpi() const { return mpi_; }

  /// Sums `data` over the ranks, in place, with one MPI_Allreduce.
  void sum(std::span<float> data) const;
  void sum(std::span<double> data) const;
  void sum(std::span<std::int64_t> data) const;
  /// Rank 0's values of `data` to every rank (same size everywhere).
  void broadcast(std::span<float> data) const;
  void broadcast(std::span<double> data) const;
  /// Rank 0's text to every rank.
  void broadcast(std::string& text) const;
  /// Every rank's text, in rank order, on rank 0 (empty elsewhere).
  std::vector<std::string> gather(const std::string& text) const;
  /// Throws std::runtime_error on every rank, naming `what` and the ranks
  /// that differ from rank 0, unless `hash` is the same on every rank.
  void check_same(std::uint64_t hash, const std::string& what) const;
  void barrier() const;
  /// Ends the run on every rank with exit status `code` (MPI_Abort in a
  /// world of several; std::exit otherwise).
  [[noreturn]] void abort(int code) const;

 private:
  World();
  ~World();
  int rank_ = 0, size_ = 1;
  bool mpi_ = false;
};

/// Whether this process was started by an MPI launcher (OpenMPI's mpirun
/// sets OMPI_COMM_WORLD_SIZE; PMI and PMIx launchers, e.g. Slurm's srun,
/// set PMI_SIZE or PMIX_RANK).
bool launched_by_mpi();

/// FNV-1a (64 bits) of `n` bytes, continuing from `h`: the configuration and
/// data hashes that every rank compares at start.
inline constexpr std::uint64_t kHashSeed = 0xcbf29ce484222325ULL;
std::uint64_t hash_bytes(const void* data, std::size_t n, std::uint64_t h = kHashSeed);
inline std::uint64_t hash_text(const std::string& text, std::uint64_t h = kHashSeed) {
  return hash_bytes(text.data(), text.size(), h);
}

}  // namespace anode::dist

#endif  // ANODE_DIST_WORLD_H_
