// SPDX-License-Identifier: MIT
// Tests for detail::frame_pool (lib/frame_pool.hpp) and the task frame
// header (include/icmpengine/detail/allocation.hpp): blocks of the one size,
// 16-aligned and reused; other sizes from the heap but counted; chunks of
// 64 KiB doubling to 2 MiB (those 2 MiB-aligned); trimmed back to the first
// chunk when no block is out; release() with blocks out; allocate_frame and
// free_frame with and without a pool; coroutines whose first parameter is a
// pool.
//
// Whether a chunk is still mapped is asked of the kernel (msync(2) fails
// with ENOMEM on an unmapped range): that is how a test sees that a pool
// was deleted (its destructor unmaps its chunks) without touching it. Under
// AddressSanitizer (scripts/test.sh) a pool deleted too early shows as a
// use after free, one never deleted as a leak, and free blocks must be
// poisoned.
#include "frame_pool.hpp"

#include <icmpengine/detail/allocation.hpp>
#include <icmpengine/task.hpp>
#include <icmpengine/when_all.hpp>

#include <catch2/catch.hpp>

#include "coro_test.hpp"

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <set>
#include <sys/mman.h>
#include <unistd.h>
#include <utility>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifdef TEST_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace {

using icmpengine::task;
using icmpengine::detail::frame_pool;
using icmpengine::testing::run_sync;

constexpr std::size_t KiB = 1024;
constexpr std::size_t MiB = 1024 * KiB;

std::uintptr_t address(const void* p) {
    return reinterpret_cast<std::uintptr_t>(p);
}

/// Is the page holding `p` mapped? msync(2) fails with ENOMEM if not.
bool mapped(const void* p) {
    const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    void* start = reinterpret_cast<void*>(address(p) / page * page);
    if (::msync(start, page, MS_ASYNC) == 0)
        return true;
    REQUIRE(errno == ENOMEM);
    return false;
}

/// A pool owned by a test: released at the end of the scope (deleted then,
/// or when its last block comes back).
struct scoped_pool {
    frame_pool* pool = new frame_pool;
    scoped_pool() = default;
    scoped_pool(const scoped_pool&) = delete;
    scoped_pool& operator=(const scoped_pool&) = delete;
    ~scoped_pool() { frame_pool::release(pool); }
    frame_pool* operator->() const noexcept { return pool; }
    frame_pool& operator*() const noexcept { return *pool; }
};

/// A block handed out by the pool, and the chunk it came from as the test
/// sees it: a block that made chunk_bytes() grow starts a new chunk of that
/// many bytes (the pool bumps from a chunk's start).
struct chunk_seen {
    std::uintptr_t base = 0;
    std::size_t size = 0;
};

/// Allocates blocks of `size` (from a pool with no free block) until the
/// pool has `chunks` chunks and the last is full; checks that each block is
/// 16-aligned, writable over its whole size, and inside the chunk it came
/// from. Returns the blocks, and the chunks seen in `seen`.
std::vector<void*> fill_chunks(frame_pool& pool, std::size_t size, std::size_t chunks,
                               std::vector<chunk_seen>& seen) {
    std::vector<void*> blocks;
    std::size_t bytes = pool.chunk_bytes();
    for (;;) {
        void* p = pool.allocate(size);
        REQUIRE(p != nullptr);
        REQUIRE(address(p) % 16 == 0);
        if (pool.chunk_bytes() != bytes) {
            seen.push_back({address(p), pool.chunk_bytes() - bytes});
            bytes = pool.chunk_bytes();
        }
        REQUIRE_FALSE(seen.empty());
        const chunk_seen& c = seen.back();
        REQUIRE(address(p) >= c.base);
        REQUIRE(address(p) + size <= c.base + c.size);
        std::memset(p, 0xa5, size);
        blocks.push_back(p);
        // Blocks are bumped from a chunk's start: the next goes right after.
        if (seen.size() == chunks && address(p) + 2 * size > c.base + c.size)
            return blocks;
    }
}

task<int> pooled(frame_pool& /*the frame's allocator*/, int value) {
    co_return value;
}

task<int> pooled_waiting(frame_pool& /*the frame's allocator*/,
                         icmpengine::testing::manual_event& event, int value) {
    co_await event;
    co_return value;
}

task<int> on_heap(int value) {
    co_return value;
}

} // namespace

TEST_CASE("blocks are 16-aligned, distinct, writable and counted", "[frame_pool]") {
    scoped_pool pool;
    CHECK(pool->blocks_out() == 0);
    CHECK(pool->chunk_bytes() == 0); // nothing mapped before the first request
    for (const std::size_t size : {std::size_t{1}, std::size_t{40}, std::size_t{432}}) {
        INFO("size " << size);
        scoped_pool p;
        std::vector<void*> blocks;
        std::set<void*> distinct;
        for (int i = 0; i < 100; ++i) {
            void* b = p->allocate(size);
            CHECK(address(b) % 16 == 0);
            std::memset(b, i, size);
            blocks.push_back(b);
            distinct.insert(b);
            CHECK(p->blocks_out() == blocks.size());
        }
        CHECK(distinct.size() == blocks.size());
        // Each block kept what was written to it.
        for (std::size_t i = 0; i < blocks.size(); ++i)
            CHECK(std::size_t{static_cast<unsigned char*>(blocks[i])[size - 1]} == i);
        for (void* b : blocks)
            p->deallocate(b, size);
        CHECK(p->blocks_out() == 0);
    }
}

TEST_CASE("a freed block is handed out again", "[frame_pool]") {
    scoped_pool pool;
    void* a = pool->allocate(48);
    void* b = pool->allocate(48);
    CHECK(a != b);
    pool->deallocate(a, 48);
    CHECK(pool->blocks_out() == 1);
    void* c = pool->allocate(48);
    CHECK(c == a);
    // Sizes that round up to the same 16 share the block size.
    pool->deallocate(c, 48);
    void* d = pool->allocate(33);
    CHECK(d == a);
    pool->deallocate(d, 33);
    pool->deallocate(b, 48);
    CHECK(pool->blocks_out() == 0);
}

TEST_CASE("one block size: any other comes from the heap and is still counted", "[frame_pool]") {
    SECTION("a different size after the first") {
        scoped_pool pool;
        void* first = pool->allocate(64); // the block size: 64
        REQUIRE(pool->chunk_bytes() == frame_pool::first_chunk);
        const std::uintptr_t chunk = address(first); // the first chunk starts here
        std::vector<std::pair<void*, std::size_t>> others;
        for (const std::size_t size :
             {std::size_t{8}, std::size_t{80}, std::size_t{1000}, std::size_t{200 * KiB}}) {
            void* p = pool->allocate(size);
            std::memset(p, 1, size);
            // Not from the chunk.
            CHECK((address(p) + size <= chunk || address(p) >= chunk + frame_pool::first_chunk));
            others.emplace_back(p, size);
        }
        CHECK(pool->blocks_out() == 5);
        CHECK(pool->chunk_bytes() == frame_pool::first_chunk);
        // The block size did not change: a 64-byte block still comes from the chunk.
        void* second = pool->allocate(64);
        CHECK(address(second) == chunk + 64);
        for (auto [p, size] : others)
            pool->deallocate(p, size);
        CHECK(pool->blocks_out() == 2);
        pool->deallocate(second, 64);
        pool->deallocate(first, 64);
        CHECK(pool->blocks_out() == 0);
    }
    SECTION("a first request larger than a chunk: everything from the heap") {
        scoped_pool pool;
        const std::size_t big = frame_pool::first_chunk + 16;
        void* a = pool->allocate(big);
        void* b = pool->allocate(big);
        std::memset(a, 1, big);
        std::memset(b, 2, big);
        CHECK(pool->blocks_out() == 2);
        CHECK(pool->chunk_bytes() == 0);
        pool->deallocate(a, big);
        pool->deallocate(b, big);
        CHECK(pool->blocks_out() == 0);
    }
}

TEST_CASE("a first chunk of 64 KiB, then 2 MiB ones, 2 MiB-aligned", "[frame_pool]") {
    // 64 bytes divides every chunk; 432 (an odd frame size with its header)
    // leaves a tail in each that no block may cross.
    for (const std::size_t size : {std::size_t{64}, std::size_t{432}}) {
        INFO("block size " << size);
        scoped_pool pool;
        std::vector<chunk_seen> chunks;
        std::vector<void*> blocks = fill_chunks(*pool, size, 4, chunks);
        REQUIRE(chunks.size() == 4);
        const std::vector<std::size_t> sizes{64 * KiB, 2 * MiB, 2 * MiB, 2 * MiB};
        std::size_t total = 0;
        for (std::size_t i = 0; i < chunks.size(); ++i) {
            INFO("chunk " << i);
            CHECK(chunks[i].size == sizes[i]);
            total += sizes[i];
            if (chunks[i].size == frame_pool::huge_chunk)
                CHECK(chunks[i].base % (2 * MiB) == 0);
        }
        CHECK(pool->chunk_bytes() == total);
        CHECK(total == 6208 * KiB); // 64, 2112, 4160, 6208 KiB
        CHECK(pool->blocks_out() == blocks.size());
        // Each chunk is used up before the next: as many blocks as fit.
        std::size_t fit = 0;
        for (const std::size_t s : sizes)
            fit += s / size;
        CHECK(blocks.size() == fit);
        for (void* b : blocks)
            pool->deallocate(b, size);
    }
}

TEST_CASE("with no block out the pool keeps only its first chunk", "[frame_pool]") {
    scoped_pool pool;
    std::vector<chunk_seen> chunks;
    std::vector<void*> blocks = fill_chunks(*pool, 128, 3, chunks);
    REQUIRE(pool->chunk_bytes() == 4160 * KiB);
    // Freed in a scrambled order; the last one trims.
    std::reverse(blocks.begin() + static_cast<std::ptrdiff_t>(blocks.size() / 2), blocks.end());
    void* last = blocks.back();
    blocks.pop_back();
    for (void* b : blocks)
        pool->deallocate(b, 128);
    CHECK(pool->chunk_bytes() == 4160 * KiB); // one still out: nothing given back
    pool->deallocate(last, 128);
    CHECK(pool->blocks_out() == 0);
    CHECK(pool->chunk_bytes() == frame_pool::first_chunk);
    for (std::size_t i = 1; i < chunks.size(); ++i) {
        INFO("chunk " << i);
        CHECK_FALSE(mapped(reinterpret_cast<void*>(chunks[i].base)));
    }
    CHECK(mapped(reinterpret_cast<void*>(chunks[0].base)));

    // Allocation starts again at the first chunk's start and grows again;
    // no block from a chunk given back is handed out (the free list went
    // with them).
    std::vector<chunk_seen> again{{chunks[0].base, frame_pool::first_chunk}};
    void* first = pool->allocate(128);
    CHECK(address(first) == chunks[0].base);
    std::vector<void*> more = fill_chunks(*pool, 128, 3, again);
    CHECK(pool->chunk_bytes() == 4160 * KiB);
    CHECK(again[1].size == 2 * MiB);
    CHECK(again[2].size == 2 * MiB);
    more.push_back(first);
    for (void* b : more)
        pool->deallocate(b, 128);
    CHECK(pool->chunk_bytes() == frame_pool::first_chunk);
}

TEST_CASE("release(): deleted now, or when its last block comes back", "[frame_pool]") {
    SECTION("nothing out: deleted at once") {
        auto* pool = new frame_pool;
        void* b = pool->allocate(64);
        pool->deallocate(b, 64);
        REQUIRE(mapped(b));
        frame_pool::release(pool);
        CHECK_FALSE(mapped(b)); // its chunk went with it
    }
    SECTION("never used") {
        frame_pool::release(new frame_pool); // a leak under ASan if not deleted
        frame_pool::release(nullptr);        // nothing to do
    }
    SECTION("blocks out: alive until the last one is freed") {
        auto* pool = new frame_pool;
        std::vector<void*> blocks;
        for (int i = 0; i < 3000; ++i) // two chunks
            blocks.push_back(pool->allocate(64));
        void* other_size = pool->allocate(100); // from the heap, counted
        REQUIRE(pool->chunk_bytes() == 2112 * KiB);
        frame_pool::release(pool);
        // Still a pool: blocks come back to it, and are still its memory.
        for (std::size_t i = 0; i + 1 < blocks.size(); ++i) {
            std::memset(blocks[i], 1, 64);
            pool->deallocate(blocks[i], 64);
        }
        CHECK(pool->blocks_out() == 2);
        CHECK(pool->chunk_bytes() == 2112 * KiB);
        pool->deallocate(other_size, 100);
        REQUIRE(mapped(blocks.back()));
        pool->deallocate(blocks.back(), 64); // the last: the pool deletes itself
        CHECK_FALSE(mapped(blocks.front()));
        CHECK_FALSE(mapped(blocks.back()));
    }
    SECTION("the last block out is a heap one") {
        auto* pool = new frame_pool;
        void* b = pool->allocate(64);
        void* other_size = pool->allocate(100);
        pool->deallocate(b, 64);
        frame_pool::release(pool);
        REQUIRE(mapped(b));
        pool->deallocate(other_size, 100);
        CHECK_FALSE(mapped(b));
    }
}

#ifdef TEST_ASAN
TEST_CASE("under AddressSanitizer free blocks and unused chunk space are poisoned",
          "[frame_pool][asan]") {
    scoped_pool pool;
    void* a = pool->allocate(64);
    void* b = pool->allocate(64);
    CHECK(__asan_region_is_poisoned(a, 64) == nullptr);
    CHECK(__asan_region_is_poisoned(b, 64) == nullptr);
    CHECK(__asan_address_is_poisoned(static_cast<char*>(b) + 64)); // not handed out yet
    pool->deallocate(a, 64);
    CHECK(__asan_address_is_poisoned(a));
    CHECK(__asan_address_is_poisoned(static_cast<char*>(a) + 63));
    void* c = pool->allocate(64);
    REQUIRE(c == a);
    CHECK(__asan_region_is_poisoned(c, 64) == nullptr);
    pool->deallocate(c, 64);
    pool->deallocate(b, 64); // trims: the whole first chunk is poisoned
    CHECK(__asan_address_is_poisoned(a));
    CHECK(__asan_address_is_poisoned(b));
}
#endif

TEST_CASE("allocate_frame and free_frame: a header names the pool or the heap", "[frame_pool]") {
    using icmpengine::detail::allocate_frame;
    using icmpengine::detail::free_frame;
    SECTION("from the heap") {
        for (const std::size_t size : {std::size_t{1}, std::size_t{100}, std::size_t{4096}}) {
            void* f = allocate_frame(size);
            CHECK(address(f) % 16 == 0);
            std::memset(f, 1, size);
            free_frame(f, size);
        }
    }
    SECTION("from a pool, freed to it") {
        scoped_pool pool;
        void* f = allocate_frame(*pool, 100);
        CHECK(address(f) % 16 == 0);
        std::memset(f, 1, 100);
        CHECK(pool->blocks_out() == 1);
        CHECK(pool->chunk_bytes() == frame_pool::first_chunk);
        void* g = allocate_frame(*pool, 100);
        CHECK(address(g) - address(f) == 128); // 100 and the 16-byte header, rounded up
        free_frame(f, 100);
        CHECK(pool->blocks_out() == 1);
        // The freed block comes back for the next frame of that size.
        void* h = allocate_frame(*pool, 100);
        CHECK(h == f);
        free_frame(h, 100);
        free_frame(g, 100);
        CHECK(pool->blocks_out() == 0);
    }
    SECTION("heap and pool frames freed through the same call, interleaved") {
        scoped_pool pool;
        std::vector<std::pair<void*, bool>> frames;
        for (int i = 0; i < 1000; ++i) {
            const bool from_pool = i % 3 != 0;
            frames.emplace_back(from_pool ? allocate_frame(*pool, 200) : allocate_frame(200),
                                from_pool);
            std::memset(frames.back().first, i, 200);
        }
        std::size_t in_pool = 666;
        REQUIRE(pool->blocks_out() == in_pool);
        for (auto [f, from_pool] : frames) {
            free_frame(f, 200);
            if (from_pool)
                --in_pool;
            REQUIRE(pool->blocks_out() == in_pool);
        }
    }
    SECTION("a pool frame freed after the pool was released") {
        auto* pool = new frame_pool;
        void* f = allocate_frame(*pool, 300);
        frame_pool::release(pool);
        std::memset(f, 1, 300);
        REQUIRE(mapped(f));
        free_frame(f, 300);
        CHECK_FALSE(mapped(f));
    }
}

TEST_CASE("a coroutine whose first parameter is a frame_pool lives in it", "[frame_pool][task]") {
    SECTION("one task") {
        scoped_pool pool;
        {
            task<int> t = pooled(*pool, 7);
            CHECK(pool->blocks_out() == 1);
            task<int> h = on_heap(8); // other coroutines: the heap
            CHECK(pool->blocks_out() == 1);
            CHECK(run_sync(t) == 7);
            CHECK(run_sync(h) == 8);
            CHECK(pool->blocks_out() == 1); // until the task is destroyed
        }
        CHECK(pool->blocks_out() == 0);
        { task<int> never_run = pooled(*pool, 1); }
        CHECK(pool->blocks_out() == 0);
    }
    SECTION("10,000 under when_all: all freed, and the pool trimmed, when it returns") {
        scoped_pool pool;
        icmpengine::testing::manual_event event;
        for (int round = 0; round < 2; ++round) {
            INFO("round " << round);
            std::vector<task<int>> tasks;
            for (int i = 0; i < 10'000; ++i)
                tasks.push_back(i % 2 == 0 ? pooled(*pool, i) : pooled_waiting(*pool, event, i));
            CHECK(pool->blocks_out() == 10'000);
            CHECK(pool->chunk_bytes() > frame_pool::first_chunk);
            std::size_t out_after = 1;
            std::size_t bytes_after = 0;
            auto awaiting = [&](std::vector<task<int>> ts) -> task<std::vector<int>> {
                std::vector<int> results = co_await icmpengine::when_all(std::move(ts));
                out_after = pool->blocks_out();
                bytes_after = pool->chunk_bytes();
                co_return results;
            };
            auto outer = awaiting(std::move(tasks));
            icmpengine::detail::task_access::handle(outer).resume();
            REQUIRE_FALSE(outer.is_ready());
            event.set();
            REQUIRE(outer.is_ready());
            const std::vector<int> results = icmpengine::detail::task_access::take_result(outer);
            REQUIRE(results.size() == 10'000);
            for (int i = 0; i < 10'000; ++i)
                REQUIRE(results[static_cast<std::size_t>(i)] == i);
            CHECK(out_after == 0);
            CHECK(bytes_after == frame_pool::first_chunk);
            event = icmpengine::testing::manual_event{};
        }
    }
    SECTION("tasks that outlive their pool's owner") {
        auto* pool = new frame_pool;
        icmpengine::testing::manual_event event;
        task<int> done = pooled(*pool, 1);
        task<int> waiting = pooled_waiting(*pool, event, 2);
        task<int> never_run = pooled(*pool, 3);
        frame_pool::release(pool);
        CHECK(run_sync(done) == 1);
        icmpengine::detail::task_access::handle(waiting).resume();
        done = task<int>{};
        never_run = task<int>{};
        event.set();
        REQUIRE(waiting.is_ready());
        CHECK(icmpengine::detail::task_access::take_result(waiting) == 2);
        waiting =
            task<int>{}; // the last frame: the pool goes with it (a leak under ASan otherwise)
    }
}
