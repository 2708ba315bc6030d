// SPDX-License-Identifier: MIT
// detail::frame_pool: where engine::ping's coroutine frames live.
//
// A `when_all` over 60,000 engine.ping() tasks allocates 60,000 frames of
// one size at once and frees them together: from the heap, one malloc
// each, that is 60,000 first touches of fresh pages (a page fault per
// 4 KiB, costly in a VM) and malloc's own bookkeeping. The pool hands out
// blocks of the one frame size from chunks of its own, populated as they
// are mapped: a first one of 64 KiB (256 frames of engine::ping), then
// 2 MiB ones, aligned and offered to the kernel as transparent huge pages
// (madvise(MADV_HUGEPAGE), honoured where THP is on, as on Debian). It
// keeps freed blocks on a free list, and gives every chunk but the first
// back to the kernel whenever no frame is left. (Chunks used to double
// from 64 KiB to 2 MiB: the 1.9 MB of ordinary pages on the way cost a W1
// `when_all` more than the huge pages they now are; issue 13,
// bench/README.md.)
//
// One pool per engine, used on the engine's thread (an engine is not
// thread-safe; its ping tasks run, and are destroyed, there). The engine
// lets go of its pool with release(): a pool with frames still out (tasks
// outliving their engine) deletes itself when the last one is freed.
#pragma once

#include "huge_pages.hpp"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace icmpengine::detail {

class frame_pool {
  public:
    frame_pool() = default;
    frame_pool(const frame_pool&) = delete;
    frame_pool& operator=(const frame_pool&) = delete;

    /// A block of `size` bytes, 16-aligned. The pool serves one size, its
    /// first request's; any other comes from the heap (still counted).
    void* allocate(std::size_t size);
    void deallocate(void* block, std::size_t size) noexcept;

    /// The owner is done with `pool`: it is deleted now, or when its last
    /// block comes back.
    static void release(frame_pool* pool) noexcept;

    std::size_t blocks_out() const noexcept { return m_out; }
    /// Bytes of chunks the pool holds (for tests and benchmarks).
    std::size_t chunk_bytes() const noexcept;

    static constexpr std::size_t first_chunk = 64 * 1024;
    static constexpr std::size_t huge_chunk = huge_page_size;

  private:
    ~frame_pool();

    struct chunk {
        std::byte* base = nullptr;
        std::size_t size = 0;
    };
    struct free_block {
        free_block* next;
    };

    /// Whether blocks of `size` come from the chunks (else from the heap).
    bool pooled(std::size_t size) const noexcept;
    void add_chunk();
    void trim() noexcept;

    std::size_t m_block = 0; ///< the one size served; 0 until the first request
    std::vector<chunk> m_chunks;
    std::byte* m_next = nullptr; ///< bump allocation in the last chunk
    std::byte* m_end = nullptr;
    free_block* m_free = nullptr;
    std::size_t m_out = 0;
    bool m_released = false;
};

/// For an owning std::unique_ptr<frame_pool, frame_pool_release>.
struct frame_pool_release {
    void operator()(frame_pool* pool) const noexcept { frame_pool::release(pool); }
};

} // namespace icmpengine::detail
