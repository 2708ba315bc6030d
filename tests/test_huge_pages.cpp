// SPDX-License-Identifier: MIT
// Tests for lib/huge_pages.hpp: map_huge's 2 MiB-aligned ranges, and
// huge_page_allocator (the slot table's, the deadline heap's and the
// engine's deliveries' allocator): arrays of 2 MiB and more mapped
// 2 MiB-aligned, smaller ones from operator new, contents kept as a vector
// grows across the boundary. Whether the kernel backs a range with huge
// pages (THP) is its choice and not asserted.
#include "huge_pages.hpp"

#include <catch2/catch.hpp>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <sys/mman.h>
#include <utility>
#include <vector>

namespace {

using icmpengine::detail::huge_page_allocator;
using icmpengine::detail::huge_page_size;
using icmpengine::detail::map_huge;
using icmpengine::detail::unmap_huge;

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

template <typename T>
using huge_vector = std::vector<T, huge_page_allocator<T>>;

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

TEST_CASE("huge_page_allocator: 2 MiB and more mapped 2 MiB-aligned, less from the heap",
          "[huge_pages]") {
    huge_page_allocator<int> alloc;
    SECTION("small") {
        for (const std::size_t n : {std::size_t{1}, std::size_t{1000}, huge_page_size / 4 - 1}) {
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
