// SPDX-License-Identifier: MIT
#include "huge_pages.hpp"

#include <icmpengine/detail/allocation.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <sys/mman.h>
#include <unistd.h>

#ifdef MADV_COLLAPSE
static_assert(MADV_COLLAPSE == 25);
#endif

namespace icmpengine::detail {

namespace {

constexpr int madv_collapse = 25; // MADV_COLLAPSE, Linux 6.1 (see prefault)

/// From this size of results up, when_all's array is placed for huge pages.
constexpr std::size_t huge_results = 4 * 1024 * 1024;

/// What glibc adds to a request it serves with a mapping of its own: an
/// 8-byte size field on each side (its malloc/malloc.c: request2size and
/// sysmalloc_mmap). The chunk header before the pointer is 16 bytes.
constexpr std::size_t malloc_mmap_overhead = 24;

/// Whether transparent huge pages may be used at all: not where the
/// administrator chose "never" (MADV_COLLAPSE would ignore that choice).
bool huge_pages_allowed() noexcept {
    static const bool allowed = [] {
        std::FILE* f = std::fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
        if (f == nullptr)
            return false;
        char line[128] = {};
        const bool read = std::fgets(line, sizeof line, f) != nullptr;
        std::fclose(f);
        return read && std::strstr(line, "[never]") == nullptr;
    }();
    return allowed;
}

std::size_t page_size() noexcept {
    static const auto size = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    return size;
}

/// madvise(advice) on the whole `unit`s inside [p, p + size), if any.
void advise_inside(void* p, std::size_t size, std::size_t unit, int advice) noexcept {
    const auto begin = reinterpret_cast<std::uintptr_t>(p);
    const std::uintptr_t first = (begin + unit - 1) / unit * unit;
    const std::uintptr_t last = (begin + size) / unit * unit;
    if (last > first)
        (void)::madvise(reinterpret_cast<void*>(first), last - first, advice);
}

} // namespace

std::byte* map_huge(std::size_t size) {
    // Over-map by one huge page and unmap the ends: the kernel can back an
    // aligned 2 MiB range with one huge page at its first touch.
    const std::size_t span = size + huge_page_size;
    void* p = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        throw std::bad_alloc();
    auto* raw = static_cast<std::byte*>(p);
    const auto at = reinterpret_cast<std::uintptr_t>(raw);
    const std::uintptr_t aligned = (at + huge_page_size - 1) / huge_page_size * huge_page_size;
    std::byte* base = raw + (aligned - at);
    if (base > raw)
        ::munmap(raw, static_cast<std::size_t>(base - raw));
    if (std::byte* tail = base + size; tail < raw + span)
        ::munmap(tail, static_cast<std::size_t>(raw + span - tail));
    // Advice only: where THP is off the range is ordinary pages.
    (void)::madvise(base, size, MADV_HUGEPAGE);
    return base;
}

void unmap_huge(std::byte* p, std::size_t size) noexcept {
    ::munmap(p, size);
}

void populate(void* p, std::size_t size) noexcept {
    advise_inside(p, size, page_size(), MADV_POPULATE_WRITE);
}

std::byte* map_on_demand(std::size_t size) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        throw std::bad_alloc();
    return static_cast<std::byte*>(p);
}

std::byte* map_populated(std::size_t size) {
    std::byte* base;
    if (size >= huge_page_size) {
        base = map_huge(size);
    } else {
        base = map_on_demand(size);
    }
    populate(base, size);
    return base;
}

void unmap_populated(std::byte* p, std::size_t size) noexcept {
    ::munmap(p, size);
}

populated_memory::populated_memory(std::size_t size) {
    const std::size_t unit = size >= huge_page_size ? huge_page_size : page_size();
    m_size = (std::max<std::size_t>(size, 1) + unit - 1) / unit * unit;
    m_base = map_populated(m_size);
}

void populated_memory::reset() noexcept {
    if (m_base != nullptr)
        ::munmap(m_base, m_size);
    m_base = nullptr;
    m_size = 0;
}

void advise_huge_pages(void* p, std::size_t size) noexcept {
    advise_inside(p, size, huge_page_size, MADV_HUGEPAGE);
}

std::size_t result_capacity(std::size_t count, std::size_t size) noexcept {
    if (size == 0 || count > (SIZE_MAX - 2 * huge_page_size) / size || count * size < huge_results)
        return count;
    const std::size_t whole = (count * size + malloc_mmap_overhead + huge_page_size - 1) /
                              huge_page_size * huge_page_size;
    return (whole - malloc_mmap_overhead) / size;
}

void prefault(void* p, std::size_t size, std::size_t reserved) noexcept {
    if (size >= huge_results) {
        // Whole blocks of the allocation's pages, from the page that holds
        // the allocator's header to the one that holds its trailer (the
        // same mapping, and only ever advised).
        const std::size_t page = page_size();
        const auto begin = reinterpret_cast<std::uintptr_t>(p) / page * page;
        const std::uintptr_t end =
            (reinterpret_cast<std::uintptr_t>(p) + std::max(size, reserved) + page - 1) / page *
            page;
        advise_inside(reinterpret_cast<void*>(begin), end - begin, huge_page_size, MADV_HUGEPAGE);
        // The allocation starts a block: its header page is resident
        // already, which keeps the kernel from giving the block a huge page
        // at its next fault; MADV_COLLAPSE gives it one now, contents kept.
        // (Debian 12's headers predate MADV_COLLAPSE: its value, 25, from
        // the kernel's include/uapi/asm-generic/mman-common.h.)
        if (begin % huge_page_size == 0 && end - begin >= huge_page_size && huge_pages_allowed())
            (void)::madvise(reinterpret_cast<void*>(begin), huge_page_size, madv_collapse);
    }
    if (size >= populated_size)
        populate(p, size);
}

} // namespace icmpengine::detail
