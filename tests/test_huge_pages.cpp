// SPDX-License-Identifier: MIT
// Tests for lib/huge_pages.hpp: map_huge's 2 MiB-aligned ranges,
// huge_page_allocator (the slot table's, the deadline heap's and the
// engine's deliveries' allocator): arrays of 2 MiB and more mapped
// 2 MiB-aligned, from 64 KiB mapped and populated, smaller ones from
// operator new, contents kept as a vector grows across the boundaries; and
// populate(), populated_memory and prefault(), whose pages are resident
// before anything writes them (mincore(2)). Whether the kernel backs a range
// with huge pages (THP) is its choice and not asserted.
#include "huge_pages.hpp"

#include <icmpengine/detail/allocation.hpp>

#include <catch2/catch.hpp>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <sys/mman.h>
#include <type_traits>
#include <unistd.h>
#include <utility>
#include <vector>

namespace {

using icmpengine::detail::huge_page_allocator;
using icmpengine::detail::huge_page_size;
using icmpengine::detail::map_huge;
using icmpengine::detail::map_populated;
using icmpengine::detail::populate;
using icmpengine::detail::populated_memory;
using icmpengine::detail::populated_size;
using icmpengine::detail::prefault;
using icmpengine::detail::unmap_huge;
using icmpengine::detail::unmap_populated;

constexpr std::size_t MiB = 1024 * 1024;

std::uintptr_t address(const void* p) {
    return reinterpret_cast<std::uintptr_t>(p);
}

/// Is every page of [p, p + size) mapped? msync(2) fails with ENOMEM if not.
bool mapped(const void* p, std::size_t size) {
    if (::msync(const_cast<void*>(p), size, MS_ASYNC) == 0)
        return true;
    REQUIRE(errno == ENOMEM);
    return false;
}

std::size_t page_size() {
    return static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

/// How many of the pages of [p, p + size) (p page-aligned) are resident.
/// For anonymous memory a page is resident once it was written, or
/// populated: the kernel maps the shared zero page for a read, which
/// mincore(2) also reports, so the tests never read before they ask.
std::size_t resident_pages(const void* p, std::size_t size) {
    const std::size_t pages = (size + page_size() - 1) / page_size();
    std::vector<unsigned char> in_core(pages);
    REQUIRE(::mincore(const_cast<void*>(p), size, in_core.data()) == 0);
    std::size_t n = 0;
    for (const unsigned char c : in_core)
        n += c & 1u;
    return n;
}

/// Fresh anonymous pages, none of them touched.
std::byte* fresh(std::size_t size) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(p != MAP_FAILED);
    return static_cast<std::byte*>(p);
}

template <typename T>
using huge_vector = std::vector<T, huge_page_allocator<T>>;

/// Allocates int arrays from 64 KiB to just under 2 MiB with `alloc` (the
/// sizes it maps rather than takes from the heap), each page-aligned; hands
/// each to `check(p, n, whole)`, `whole` being its whole pages' bytes; then
/// deallocates it and checks it is unmapped.
template <typename Alloc, typename Check>
void for_mapped_sizes(Alloc& alloc, Check check) {
    for (const std::size_t n :
         {populated_size / sizeof(int), std::size_t{100'000}, huge_page_size / sizeof(int) - 1}) {
        INFO("n " << n);
        int* p = alloc.allocate(n);
        REQUIRE(p != nullptr);
        CHECK(address(p) % page_size() == 0);
        const std::size_t whole = n * sizeof(int) / page_size() * page_size();
        check(p, n, whole);
        alloc.deallocate(p, n);
        CHECK_FALSE(mapped(p, whole));
    }
}

/// The size of the engine's delivery records: not a power of two.
struct record {
    std::uint64_t a = 0;
    std::uint32_t b = 0;
    void* c = nullptr;
    std::uint64_t d[3] = {};
};

} // namespace

TEST_CASE("map_huge: 2 MiB-aligned, writable, unmapped by unmap_huge", "[huge_pages]") {
    CHECK(huge_page_size == 2 * MiB);
    for (const std::size_t size : {2 * MiB, 4 * MiB, 10 * MiB}) {
        INFO("size " << size);
        std::byte* p = map_huge(size);
        REQUIRE(p != nullptr);
        CHECK(address(p) % huge_page_size == 0);
        CHECK(mapped(p, size));
        // Fresh anonymous memory reads as zero; all of it can be written.
        CHECK(p[0] == std::byte{0});
        CHECK(p[size - 1] == std::byte{0});
        std::memset(p, 0x5a, size);
        CHECK(p[size / 2] == std::byte{0x5a});
        unmap_huge(p, size);
        CHECK_FALSE(mapped(p, size));
    }
    SECTION("several at once are distinct") {
        std::byte* a = map_huge(2 * MiB);
        std::byte* b = map_huge(2 * MiB);
        CHECK((a + 2 * MiB <= b || b + 2 * MiB <= a));
        a[0] = std::byte{1};
        b[0] = std::byte{2};
        CHECK(a[0] == std::byte{1});
        unmap_huge(a, 2 * MiB);
        unmap_huge(b, 2 * MiB);
    }
}

TEST_CASE("populate: the whole pages of a range are resident before any write", "[huge_pages]") {
    const std::size_t page = page_size();
    std::byte* p = fresh(64 * page);
    REQUIRE(resident_pages(p, 64 * page) == 0);
    SECTION("a page-aligned range") {
        populate(p + 8 * page, 16 * page);
        CHECK(resident_pages(p, 8 * page) == 0);
        CHECK(resident_pages(p + 8 * page, 16 * page) == 16);
        CHECK(resident_pages(p + 24 * page, 40 * page) == 0);
    }
    SECTION("a range that is not: only the pages wholly inside it") {
        populate(p + 8 * page + 1, 4 * page);
        CHECK(resident_pages(p + 8 * page, page) == 0);
        CHECK(resident_pages(p + 9 * page, 3 * page) == 3);
        CHECK(resident_pages(p + 12 * page, page) == 0);
        populate(p + 20 * page + 1, page - 2); // no whole page: nothing
        CHECK(resident_pages(p + 20 * page, page) == 0);
        populate(p, 0);
        CHECK(resident_pages(p, page) == 0);
    }
    // Populated pages read as zero and keep what is written.
    populate(p, 64 * page);
    CHECK(p[5 * page] == std::byte{0});
    p[5 * page] = std::byte{9};
    CHECK(p[5 * page] == std::byte{9});
    ::munmap(p, 64 * page);
}

TEST_CASE("populated_memory: resident, zeroed, whole pages; moved and unmapped", "[huge_pages]") {
    const std::size_t page = page_size();
    SECTION("ordinary pages below 2 MiB, rounded up to whole pages") {
        populated_memory m(10 * page + 1);
        REQUIRE(m.get() != nullptr);
        CHECK(m.size() == 11 * page);
        CHECK(address(m.get()) % page == 0);
        CHECK(resident_pages(m.get(), m.size()) == 11);
        CHECK(m.get()[m.size() - 1] == std::byte{0});
        std::byte* const base = m.get();
        populated_memory moved = std::move(m);
        CHECK(m.get() == nullptr);
        CHECK(m.size() == 0);
        CHECK(moved.get() == base);
        moved = populated_memory(page); // the first mapping goes
        CHECK_FALSE(mapped(base, 11 * page));
        CHECK(moved.size() == page);
    }
    SECTION("huge pages from 2 MiB up: aligned, rounded to 2 MiB") {
        populated_memory m(2 * MiB + 1);
        CHECK(m.size() == 4 * MiB);
        CHECK(address(m.get()) % huge_page_size == 0);
        CHECK(resident_pages(m.get(), m.size()) == m.size() / page);
        std::byte* const base = m.get();
        m.reset();
        CHECK(m.get() == nullptr);
        CHECK_FALSE(mapped(base, 4 * MiB));
        m.reset(); // twice is harmless
    }
    SECTION("empty") {
        populated_memory m;
        CHECK(m.get() == nullptr);
        CHECK(m.size() == 0);
    }
}

TEST_CASE("prefault: ranges from 64 KiB populated, smaller ones left to fault in", "[huge_pages]") {
    const std::size_t page = page_size();
    const std::size_t span = 8 * MiB;
    std::byte* p = fresh(span);
    prefault(p, populated_size - 1, populated_size - 1);
    CHECK(resident_pages(p, populated_size) == 0);
    prefault(p, populated_size, populated_size);
    CHECK(resident_pages(p, populated_size) == populated_size / page);
    CHECK(resident_pages(p + populated_size, page) == 0);
    // 4 MiB and more: advised as huge pages too, and populated all the same.
    prefault(p + MiB, 5 * MiB, 5 * MiB);
    CHECK(resident_pages(p + MiB, 5 * MiB) == 5 * MiB / page);
    CHECK(resident_pages(p + 6 * MiB, 2 * MiB) == 0);
    ::munmap(p, span);
}

TEST_CASE("prefault: an array that starts a 2 MiB block, behind an allocator's header, keeps "
          "every byte around it",
          "[huge_pages]") {
    // The shape result_capacity() asks of the C library: a mapping of whole
    // huge pages, 2 MiB-aligned, a 16-byte header, then the array, and
    // capacity beyond the part about to be written. prefault() makes the
    // first block one huge page (MADV_COLLAPSE, where the kernel has it):
    // the header must survive that, and nothing past the array is populated
    // beyond the block the array ends in.
    const std::size_t span = 8 * MiB;
    std::byte* raw = map_huge(span); // 2 MiB-aligned
    std::memset(raw, 0x5a, 16);      // the allocator's header, resident
    std::byte* array = raw + 16;
    const std::size_t size = 4 * MiB + 123'456;
    prefault(array, size, span - 16);
    for (std::size_t i = 0; i < 16; ++i)
        CHECK(raw[i] == std::byte{0x5a});
    const std::size_t whole_pages = (16 + size) / page_size();
    CHECK(resident_pages(raw, whole_pages * page_size()) == whole_pages);
    // Writable, and zero where nothing was written.
    CHECK(array[0] == std::byte{0});
    CHECK(array[size - 1] == std::byte{0});
    array[size - 1] = std::byte{1};
    // The last block is untouched.
    CHECK(resident_pages(raw + 6 * MiB, 2 * MiB) == 0);
    unmap_huge(raw, span);
}

TEST_CASE("result_capacity: from 4 MiB of results, the C library's mapping in whole huge pages",
          "[huge_pages]") {
    using icmpengine::detail::result_capacity;
    constexpr std::size_t overhead = 24; // glibc: 8 bytes of size field on each side
    // Below 4 MiB, exactly what was asked.
    CHECK(result_capacity(0, 72) == 0);
    CHECK(result_capacity(1000, 72) == 1000);
    CHECK(result_capacity(4 * MiB / 72, 72) == 4 * MiB / 72);
    CHECK(result_capacity(5, 0) == 5);
    CHECK(result_capacity(SIZE_MAX / 8, 72) == SIZE_MAX / 8);
    // From 4 MiB up: at least what was asked, at most 2 MiB more, and the
    // request plus glibc's overhead fills the same whole huge pages that
    // the array needs.
    for (const std::size_t size : {std::size_t{72}, std::size_t{8}, std::size_t{1000}}) {
        for (const std::size_t count : {4 * MiB / size + 1, 60'000 * 72 / size, 10 * MiB / size,
                                        (16 * MiB - overhead) / size}) {
            INFO("count " << count << " of " << size << " bytes");
            const std::size_t capacity = result_capacity(count, size);
            const std::size_t whole =
                (count * size + overhead + huge_page_size - 1) / huge_page_size * huge_page_size;
            CHECK(capacity >= count);
            CHECK(capacity * size + overhead <= whole);
            CHECK(capacity * size + overhead + size > whole);
            CHECK((capacity - count) * size < huge_page_size);
        }
    }
}

TEST_CASE("huge_page_allocator: 2 MiB and more mapped 2 MiB-aligned, from 64 KiB mapped and "
          "populated, less from the heap",
          "[huge_pages]") {
    huge_page_allocator<int> alloc;
    SECTION("from 64 KiB to 2 MiB: page-aligned, resident before any write, unmapped after") {
        for_mapped_sizes(alloc, [](int* p, std::size_t n, std::size_t whole) {
            CHECK(resident_pages(p, whole) == whole / page_size());
            for (std::size_t i = 0; i < n; ++i)
                p[i] = static_cast<int>(i);
            CHECK(p[n - 1] == static_cast<int>(n - 1));
        });
    }
    SECTION("small") {
        for (const std::size_t n : {std::size_t{1}, std::size_t{1000}, populated_size / 4 - 1}) {
            int* p = alloc.allocate(n);
            REQUIRE(p != nullptr);
            CHECK(address(p) % alignof(int) == 0);
            for (std::size_t i = 0; i < n; ++i)
                p[i] = static_cast<int>(i);
            CHECK(p[n - 1] == static_cast<int>(n - 1));
            alloc.deallocate(p, n);
        }
    }
    SECTION("exactly 2 MiB, and just over it (rounded up to 4 MiB)") {
        for (const std::size_t n : {huge_page_size / 4, huge_page_size / 4 + 1}) {
            INFO("n " << n);
            int* p = alloc.allocate(n);
            CHECK(address(p) % huge_page_size == 0);
            for (std::size_t i = 0; i < n; ++i)
                p[i] = static_cast<int>(i);
            CHECK(p[n - 1] == static_cast<int>(n - 1));
            CHECK(mapped(p, huge_page_allocator<int>::rounded(n * sizeof(int))));
            alloc.deallocate(p, n);
            CHECK_FALSE(mapped(p, n * sizeof(int)));
        }
        CHECK(huge_page_allocator<int>::rounded(2 * MiB) == 2 * MiB);
        CHECK(huge_page_allocator<int>::rounded(2 * MiB + 4) == 4 * MiB);
    }
    SECTION("allocators compare equal and rebind") {
        huge_page_allocator<double> other(alloc);
        CHECK(alloc == other);
        CHECK(other == huge_page_allocator<double>{});
    }
}

TEST_CASE("huge_page_allocator, array_fill::little: room reserved ahead of use faults in as it "
          "is used",
          "[huge_pages]") {
    using icmpengine::detail::array_fill;
    using little_vector = std::vector<int, huge_page_allocator<int, array_fill::little>>;
    SECTION("from 64 KiB to 2 MiB: page-aligned, nothing resident before the first write") {
        huge_page_allocator<int, array_fill::little> alloc;
        for_mapped_sizes(alloc, [](int* p, std::size_t n, std::size_t whole) {
            CHECK(resident_pages(p, whole) == 0);
            // One page written, one page resident (where THP is "always",
            // a fault could bring in a huge page: not this test's matter).
            REQUIRE(::madvise(p, whole, MADV_NOHUGEPAGE) == 0);
            p[0] = 1;
            CHECK(resident_pages(p, whole) == 1);
            p[n - 1] = 2;
            CHECK(p[0] == 1);
        });
    }
    SECTION("the deadline heap's use: reserve for every id, fill a few") {
        little_vector v;
        v.reserve(65'536); // 256 KiB
        REQUIRE(address(v.data()) % page_size() == 0);
        CHECK(resident_pages(v.data(), 65'536 * sizeof(int)) == 0);
        REQUIRE(::madvise(v.data(), 65'536 * sizeof(int), MADV_NOHUGEPAGE) == 0); // as above
        for (int i = 0; i < 100; ++i)
            v.push_back(i);
        CHECK(resident_pages(v.data(), 65'536 * sizeof(int)) == 1);
        // From 2 MiB up, 2 MiB-aligned like every huge_page_allocator array;
        // the contents move across.
        v.reserve(huge_page_size / sizeof(int) + 1);
        CHECK(address(v.data()) % huge_page_size == 0);
        for (int i = 0; i < 100; ++i)
            REQUIRE(v[static_cast<std::size_t>(i)] == i);
    }
    SECTION("allocators of one fill compare equal and rebind") {
        huge_page_allocator<int, array_fill::little> a;
        huge_page_allocator<double, array_fill::little> b(a);
        CHECK(b == huge_page_allocator<double, array_fill::little>{});
        static_assert(
            std::is_same_v<std::allocator_traits<decltype(a)>::rebind_alloc<double>, decltype(b)>);
    }
}

TEST_CASE("a huge_page_allocator vector grown past 2 MiB keeps its contents", "[huge_pages]") {
    SECTION("push_back one at a time") {
        huge_vector<int> v;
        constexpr std::size_t n = 3 * MiB / sizeof(int);
        std::size_t reallocations = 0;
        const int* data = nullptr;
        for (std::size_t i = 0; i < n; ++i) {
            v.push_back(static_cast<int>(i));
            if (v.data() != data) {
                data = v.data();
                ++reallocations;
                INFO("capacity " << v.capacity());
                if (v.capacity() * sizeof(int) >= huge_page_size)
                    CHECK(address(v.data()) % huge_page_size == 0);
                // Everything so far survived the move.
                for (std::size_t j = 0; j <= i; ++j)
                    REQUIRE(v[j] == static_cast<int>(j));
            }
        }
        CHECK(reallocations > 1);
        REQUIRE(v.capacity() * sizeof(int) >= huge_page_size);
        CHECK(address(v.data()) % huge_page_size == 0);
        for (std::size_t i = 0; i < n; ++i)
            REQUIRE(v[i] == static_cast<int>(i));
        // Shrinking back below 2 MiB: to the heap, contents intact.
        v.resize(100);
        v.shrink_to_fit();
        REQUIRE(v.size() == 100);
        for (std::size_t i = 0; i < 100; ++i)
            CHECK(v[i] == static_cast<int>(i));
    }
    SECTION("records of a size that is not a power of two") {
        huge_vector<record> v(100'000); // 4.8 MB
        REQUIRE(v.size() * sizeof(record) >= huge_page_size);
        CHECK(address(v.data()) % huge_page_size == 0);
        for (std::size_t i = 0; i < v.size(); ++i)
            v[i].d[2] = i;
        huge_vector<record> copy = v;
        CHECK(address(copy.data()) % huge_page_size == 0);
        v.resize(250'000);
        for (std::size_t i = 0; i < 100'000; ++i)
            REQUIRE(v[i].d[2] == i);
        CHECK(v[249'999].d[2] == 0);
        for (std::size_t i = 0; i < copy.size(); ++i)
            REQUIRE(copy[i].d[2] == i);
    }
    SECTION("small vectors: copy, move, swap") {
        huge_vector<int> a{1, 2, 3};
        huge_vector<int> b = a;
        b.push_back(4);
        huge_vector<int> c = std::move(b);
        CHECK(a == huge_vector<int>{1, 2, 3});
        CHECK(c == huge_vector<int>{1, 2, 3, 4});
        a.swap(c);
        CHECK(a.size() == 4);
        CHECK(c.size() == 3);
        huge_vector<int> empty;
        CHECK(empty.empty());
        empty.clear();
        empty.shrink_to_fit();
    }
    SECTION("a large vector swapped and moved with a small one") {
        huge_vector<int> big(huge_page_size / sizeof(int), 7);
        huge_vector<int> small{1, 2};
        const int* big_data = big.data();
        big.swap(small);
        CHECK(small.data() == big_data);
        CHECK(big == huge_vector<int>{1, 2});
        huge_vector<int> moved = std::move(small);
        CHECK(moved.data() == big_data);
        CHECK(moved.back() == 7);
        moved.clear();
        moved.shrink_to_fit(); // the mapping goes back
        CHECK(moved.capacity() == 0);
        CHECK_FALSE(mapped(big_data, huge_page_size));
    }
}

TEST_CASE("huge_page_allocator: over-aligned elements keep their alignment at every size",
          "[huge_pages]") {
    // The engine's slots are one cache line each (alignas(64)): below
    // 64 KiB they come from the aligned operator new, above from mappings.
    struct alignas(64) line {
        unsigned char bytes[64];
    };
    for (const std::size_t n : {1u, 3u, 100u, 1024u, 5000u, 40000u}) {
        huge_page_allocator<line> alloc;
        line* p = alloc.allocate(n);
        CHECK(reinterpret_cast<std::uintptr_t>(p) % 64 == 0);
        p[n - 1].bytes[63] = 1;
        alloc.deallocate(p, n);
    }
}
