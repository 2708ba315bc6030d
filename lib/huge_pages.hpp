// SPDX-License-Identifier: MIT
// detail::huge_page_allocator: large arrays in transparent huge pages.
//
// The engine's per-ping arrays (the slot table, the deadline heap, results
// waiting for delivery) reach megabytes when tens of thousands of pings are
// in flight at once. Every first touch of a 4 KiB page is a page fault,
// which in a VM costs microseconds: 60,000 slots fault ~1,200 times on the
// way to 4 MiB, more with the copies of a growing vector. Arrays of 2 MiB
// and more are therefore mapped 2 MiB-aligned and offered to the kernel as
// transparent huge pages (madvise(MADV_HUGEPAGE), which Debian's default
// "madvise" mode honours): one fault per 2 MiB. Smaller arrays, and every
// array where THP is off, are ordinary memory, populated as mapped from
// 64 KiB up (most of such an array is written soon).
//
// What the engine knows it will write in full soon (the receive buffers,
// a chunk of coroutine frames, a result array) it populates at once with
// populate(): one madvise(MADV_POPULATE_WRITE) fills the page tables in the
// kernel instead of a fault at each page's first write. On the project's
// 2-core VM a 4 KiB page fault costs ~11 us; populating costs from ~0.5 us
// a page to half a fault's cost when the host must back the memory first
// (bench/README.md, "Page faults and floors"; bench_page_faults).
#pragma once

#include <cstddef>
#include <new>
#include <utility>

namespace icmpengine::detail {

inline constexpr std::size_t huge_page_size = 2 * 1024 * 1024;

/// `size` bytes (a multiple of huge_page_size), huge_page_size-aligned,
/// advised as huge pages. Throws std::bad_alloc.
std::byte* map_huge(std::size_t size);
void unmap_huge(std::byte* p, std::size_t size) noexcept;

/// Fills the page tables of the whole pages inside [p, p + size) for
/// writing, now (MADV_POPULATE_WRITE, Linux 5.14; a no-op where the kernel
/// lacks it or memory is short: the pages then fault in as they are used).
void populate(void* p, std::size_t size) noexcept;

/// `size` bytes of fresh, populated anonymous memory: 2 MiB-aligned huge
/// pages (map_huge) from huge_page_size up, ordinary pages below. Unmapped
/// by ~populated_memory. Throws std::bad_alloc.
class populated_memory {
  public:
    populated_memory() noexcept = default;
    explicit populated_memory(std::size_t size);
    populated_memory(populated_memory&& other) noexcept
        : m_base(std::exchange(other.m_base, nullptr)), m_size(std::exchange(other.m_size, 0)) {}
    populated_memory& operator=(populated_memory&& other) noexcept {
        if (this != &other) {
            reset();
            m_base = std::exchange(other.m_base, nullptr);
            m_size = std::exchange(other.m_size, 0);
        }
        return *this;
    }
    ~populated_memory() { reset(); }

    std::byte* get() const noexcept { return m_base; }
    /// The bytes mapped: `size` rounded up to whole pages (or huge pages).
    std::size_t size() const noexcept { return m_size; }
    void reset() noexcept;

  private:
    std::byte* m_base = nullptr;
    std::size_t m_size = 0;
};

/// `size` bytes of fresh memory, mapped and populated: ordinary pages, or
/// from huge_page_size up (then a multiple of it) 2 MiB-aligned huge pages.
/// For what is about to be filled: a frame-pool chunk, or an array a
/// growing vector fills at least half of. Throws std::bad_alloc.
std::byte* map_populated(std::size_t size);
void unmap_populated(std::byte* p, std::size_t size) noexcept;

/// Arrays from this size up are mapped: populated below huge_page_size
/// (unless reserved ahead of use, see array_fill), huge pages from it up
/// (rounded up to whole ones), left to fault in one at a time: a vector's
/// doubling or the heap's reserve may leave half of such an array unused
/// for long, and populating it would make all of it resident (W5 at a
/// million in flight: ~20 more bytes per ping).
inline constexpr std::size_t populated_size = 64 * 1024;

/// How much of an array from populated_size up is written soon after it is
/// mapped: `most` for a vector that grows by doubling (at least half of it
/// is, at once), `little` for room reserved ahead of use (the deadline
/// heap's, for every slot the table may hold: on loopback a W1 fan-out of
/// 60,000 never has more than one send batch, 16 entries, in it, and
/// populating its 1 MiB cost ~1-2 ms and 1.4 MB of RSS; bench/README.md).
/// Below huge_page_size, `most` is populated as mapped, `little` faults in
/// page by page as it is used.
enum class array_fill { most, little };

/// `size` bytes of fresh memory, mapped and left to fault in; unmapped by
/// unmap_populated. Throws std::bad_alloc.
std::byte* map_on_demand(std::size_t size);

template <typename T, array_fill Fill = array_fill::most>
struct huge_page_allocator {
    using value_type = T;
    template <typename U>
    struct rebind {
        using other = huge_page_allocator<U, Fill>;
    };

    huge_page_allocator() noexcept = default;
    template <typename U>
    huge_page_allocator(const huge_page_allocator<U, Fill>&) noexcept {}

    static constexpr std::size_t rounded(std::size_t bytes) noexcept {
        return (bytes + huge_page_size - 1) / huge_page_size * huge_page_size;
    }
    T* allocate(std::size_t n) {
        const std::size_t bytes = n * sizeof(T);
        if (bytes < populated_size) {
            if constexpr (alignof(T) > __STDCPP_DEFAULT_NEW_ALIGNMENT__)
                return static_cast<T*>(::operator new (bytes, std::align_val_t{alignof(T)}));
            else
                return static_cast<T*>(::operator new(bytes));
        }
        if (bytes < huge_page_size)
            return reinterpret_cast<T*>(Fill == array_fill::most ? map_populated(bytes)
                                                                 : map_on_demand(bytes));
        return reinterpret_cast<T*>(map_huge(rounded(bytes)));
    }
    void deallocate(T* p, std::size_t n) noexcept {
        const std::size_t bytes = n * sizeof(T);
        if (bytes < populated_size) {
            if constexpr (alignof(T) > __STDCPP_DEFAULT_NEW_ALIGNMENT__)
                ::operator delete (p, std::align_val_t{alignof(T)});
            else
                ::operator delete(p);
        } else if (bytes < huge_page_size)
            unmap_populated(reinterpret_cast<std::byte*>(p), bytes);
        else
            unmap_huge(reinterpret_cast<std::byte*>(p), rounded(bytes));
    }
    template <typename U>
    bool operator==(const huge_page_allocator<U, Fill>&) const noexcept {
        return true;
    }
};

} // namespace icmpengine::detail
