// SPDX-License-Identifier: MIT
// detail::huge_page_allocator: large arrays in transparent huge pages.
//
// The engine's per-ping arrays (the slot table, the deadline heap, results
// waiting for delivery) reach megabytes when tens of thousands of pings are
// in flight at once. Every first touch of a 4 KiB page is a page fault,
// which in a VM costs microseconds: 60,000 slots fault ~1,200 times on the
// way to 4.8 MB, more with the copies of a growing vector. Arrays of 2 MiB
// and more are therefore mapped 2 MiB-aligned and offered to the kernel as
// transparent huge pages (madvise(MADV_HUGEPAGE), which Debian's default
// "madvise" mode honours): one fault per 2 MiB. Smaller arrays, and every
// array where THP is off, are ordinary memory.
#pragma once

#include <cstddef>
#include <new>

namespace icmpengine::detail {

inline constexpr std::size_t huge_page_size = 2 * 1024 * 1024;

/// `size` bytes (a multiple of huge_page_size), huge_page_size-aligned,
/// advised as huge pages. Throws std::bad_alloc.
std::byte* map_huge(std::size_t size);
void unmap_huge(std::byte* p, std::size_t size) noexcept;

template <typename T>
struct huge_page_allocator {
    using value_type = T;

    huge_page_allocator() noexcept = default;
    template <typename U>
    huge_page_allocator(const huge_page_allocator<U>&) noexcept {}

    static constexpr std::size_t rounded(std::size_t bytes) noexcept {
        return (bytes + huge_page_size - 1) / huge_page_size * huge_page_size;
    }
    T* allocate(std::size_t n) {
        const std::size_t bytes = n * sizeof(T);
        if (bytes < huge_page_size)
            return static_cast<T*>(::operator new(bytes));
        return reinterpret_cast<T*>(map_huge(rounded(bytes)));
    }
    void deallocate(T* p, std::size_t n) noexcept {
        const std::size_t bytes = n * sizeof(T);
        if (bytes < huge_page_size)
            ::operator delete(p);
        else
            unmap_huge(reinterpret_cast<std::byte*>(p), rounded(bytes));
    }
    template <typename U>
    bool operator==(const huge_page_allocator<U>&) const noexcept {
        return true;
    }
};

} // namespace icmpengine::detail
