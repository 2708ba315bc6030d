// SPDX-License-Identifier: MIT
// Memory for coroutines and their results: task frames (task.hpp), each
// behind a header that says whether it came from the heap or from an
// engine's frame pool (lib/frame_pool.hpp, which holds engine::ping's
// frames), and the huge-page hint for large result arrays (when_all.hpp).
#pragma once

#include <icmpengine/export.hpp>

#include <cstddef>

namespace icmpengine::detail {

class frame_pool;

/// Every task frame starts behind a header that says where its memory came
/// from (lib/frame_pool.cpp): frames are allocated from `pool`, or from the
/// heap, and freed to where they came from. Out of line, so that the
/// compiler never pairs the heap's operator new with the pool's delete.
ICMPENGINE_API void* allocate_frame(std::size_t size);
ICMPENGINE_API void* allocate_frame(frame_pool& pool, std::size_t size);
ICMPENGINE_API void free_frame(void* frame, std::size_t size) noexcept;

/// Asks the kernel to back the huge-page-aligned part of [p, p + size) with
/// transparent huge pages at its first touch (madvise(MADV_HUGEPAGE); a
/// hint, ignored where THP is off). For large arrays about to be filled
/// (prefault() advises when_all's results): one page fault per 2 MiB
/// instead of 512.
ICMPENGINE_API void advise_huge_pages(void* p, std::size_t size) noexcept;

/// [p, p + size) is about to be written in full (when_all's results): from
/// 64 KiB up its page tables are filled now, in one madvise
/// (MADV_POPULATE_WRITE), rather than by a page fault at each page's first
/// write; from 4 MiB up its huge-page-aligned part is first advised as huge
/// pages (advise_huge_pages). Only a hint: nothing changes if the kernel
/// declines.
ICMPENGINE_API void prefault(void* p, std::size_t size) noexcept;

/// The promise's allocation functions: a coroutine whose first parameter
/// (or, for a member function, object) is a frame_pool takes its frame from
/// that pool; every other from the heap.
struct frame_allocation {
    static void* operator new(std::size_t size) { return allocate_frame(size); }
    template <typename... Args>
    static void* operator new(std::size_t size, frame_pool& pool, Args&&...) {
        return allocate_frame(pool, size);
    }
    static void operator delete(void* frame, std::size_t size) noexcept { free_frame(frame, size); }
};

} // namespace icmpengine::detail
