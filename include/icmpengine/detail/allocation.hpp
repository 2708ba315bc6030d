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

/// The capacity to reserve for `count` results of `size` bytes each that
/// when_all is about to fill: `count`, or, from 4 MiB of results up, a
/// little more, so that the C library maps the array by itself in a whole
/// number of huge pages (glibc serves such a request with a mapping of its
/// own, the request plus a 16-byte header rounded up to pages; Linux 6.7 and
/// later place a mapping of whole huge pages on a huge-page boundary). At
/// most 2 MiB of address space more; only a hint, like prefault().
ICMPENGINE_API std::size_t result_capacity(std::size_t count, std::size_t size) noexcept;

/// [p, p + size) is about to be written in full (when_all's results), in an
/// allocation that runs on to p + reserved: from 64 KiB up its page tables
/// are filled now, in one madvise (MADV_POPULATE_WRITE), rather than by a
/// page fault at each page's first write. From 4 MiB up, the allocation's
/// whole 2 MiB blocks are first advised as huge pages (MADV_HUGEPAGE), and
/// if it starts a block (result_capacity's mapping), that first block,
/// whose first page the allocator's header has already faulted in, is made
/// one huge page (MADV_COLLAPSE, Linux 6.1) with its contents. Every
/// other byte is left as it was. Only a hint: nothing changes if the kernel
/// declines. (On a VM, a fresh 4 KiB page can cost microseconds at its
/// first write even when populated, a huge page no more than a few of
/// them: 60,000 results in ~3 huge pages, not ~1,050 pages; bench/README.md.)
ICMPENGINE_API void prefault(void* p, std::size_t size, std::size_t reserved) noexcept;

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
