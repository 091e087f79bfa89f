#ifndef ANODE_AUTODIFF_ARENA_H_
#define ANODE_AUTODIFF_ARENA_H_

#include <cstddef>
#include <vector>

namespace anode {

/// A bump allocator of 64-byte-aligned blocks for tape values and adjoints.
/// Memory handed out never moves. When the current block is full a new one of
/// at least twice the size is added; clear() and rewind() keep every block, so
/// after its first iteration a training loop allocates nothing (and touches no
/// fresh pages). Nothing stored here gets a destructor call.
class Arena {
 public:
  /// A position to rewind to (see rewind()).
  struct Mark {
    std::size_t block = 0;
    std::size_t offset = 0;
    std::size_t used_before = 0;
  };

  explicit Arena(std::size_t initial_bytes = 1 << 16);
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  /// `bytes` of uninitialized memory aligned to 64 bytes.
  void* allocate(std::size_t bytes);

  /// Typed allocation of n elements (uninitialized).
  template <class T>
  T* allocate_array(std::size_t n) {
    return static_cast<T*>(allocate(n * sizeof(T)));
  }

  Mark mark() const { return {current_, offset_, used_before_}; }
  /// Frees everything allocated after `m`; keeps the blocks.
  void rewind(Mark m);
  /// Frees everything; keeps the blocks for the next round.
  void clear();

  /// Bytes in use now, and the most ever in use since construction or
  /// reset_peak() (the memory figure benchmarks report).
  std::size_t bytes_used() const;
  std::size_t peak_bytes() const { return peak_; }
  void reset_peak() { peak_ = bytes_used(); }
  /// Total bytes reserved from the system.
  std::size_t capacity() const;

 private:
  struct Block {
    char* data;
    std::size_t size;
  };
  void add_block(std::size_t min_bytes);

  std::vector<Block> blocks_;
  std::size_t current_ = 0;  // index of the block being filled
  std::size_t offset_ = 0;   // bytes used in blocks_[current_]
  std::size_t used_before_ = 0;  // bytes used in blocks before current_
  std::size_t peak_ = 0;
};

}  // namespace anode

#endif  // ANODE_AUTODIFF_ARENA_H_
