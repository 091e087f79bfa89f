#include "autodiff/arena.h"

#include <algorithm>

#include "autodiff/tensor.h"

namespace anode {
namespace {
std::size_t round_up(std::size_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }
}  // namespace

Arena::Arena(std::size_t initial_bytes) { add_block(std::max<std::size_t>(initial_bytes, 4096)); }

Arena::~Arena() {
  for (Block& b : blocks_) aligned_free(b.data);
}

void Arena::add_block(std::size_t min_bytes) {
  std::size_t size = round_up(min_bytes);
  if (!blocks_.empty()) size = std::max(size, 2 * blocks_.back().size);
  blocks_.push_back({static_cast<char*>(aligned_allocate(size)), size});
}

void* Arena::allocate(std::size_t bytes) {
  bytes = round_up(std::max<std::size_t>(bytes, 1));
  // Move forward through existing blocks (kept after a rewind) before adding one.
  while (offset_ + bytes > blocks_[current_].size) {
    if (current_ + 1 == blocks_.size()) add_block(bytes);
    used_before_ += offset_;
    ++current_;
    offset_ = 0;
  }
  void* p = blocks_[current_].data + offset_;
  offset_ += bytes;
  peak_ = std::max(peak_, used_before_ + offset_);
  return p;
}

void Arena::rewind(Mark m) {
  current_ = m.block;
  offset_ = m.offset;
  used_before_ = m.used_before;
}

void Arena::clear() {
  // Keep every block: the next round walks the same memory again, so it
  // neither allocates nor touches fresh pages (first-touch page faults on a
  // newly merged block cost more than the walk over a few blocks).
  current_ = 0;
  offset_ = 0;
  used_before_ = 0;
}

std::size_t Arena::bytes_used() const { return used_before_ + offset_; }

std::size_t Arena::capacity() const {
  std::size_t total = 0;
  for (const Block& b : blocks_) total += b.size;
  return total;
}

}  // namespace anode
