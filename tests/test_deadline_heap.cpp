// SPDX-License-Identifier: MIT
// Tests for detail::basic_deadline_heap (lib/deadline_heap.hpp), all three
// instantiated arities: edge cases by hand, then a randomised differential
// test against std::multimap. Ties between equal deadlines may come out in
// any order, so pops are compared by deadline, and the popped id is checked
// against the reference's record of that id.
#include "deadline_heap.hpp"
#include "seed.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <iterator>
#include <limits>
#include <map>
#include <random>
#include <stdexcept>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

using icmpengine::detail::basic_deadline_heap;

constexpr std::int64_t int64_min = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t int64_max = std::numeric_limits<std::int64_t>::max();

/// Pops everything from a copy of `heap` and returns the deadlines in pop
/// order. Checks on the way that each popped id was a member and is gone
/// afterwards; the caller checks the order, which is the heap invariant
/// (every parent <= its children) seen from outside.
template <class Heap>
std::vector<std::int64_t> drain_copy(const Heap& heap) {
    Heap copy = heap;
    std::vector<std::int64_t> out;
    out.reserve(copy.size());
    while (!copy.empty()) {
        const auto top_deadline = copy.top().deadline;
        const auto e = copy.pop();
        REQUIRE(e.deadline == top_deadline);
        REQUIRE(heap.contains(e.id));
        REQUIRE_FALSE(copy.contains(e.id));
        out.push_back(e.deadline);
    }
    return out;
}

template <unsigned Arity>
constexpr unsigned arity_of(const basic_deadline_heap<Arity>*) {
    return Arity;
}

bool non_decreasing(const std::vector<std::int64_t>& v) {
    for (std::size_t i = 1; i < v.size(); ++i) {
        if (v[i] < v[i - 1]) {
            return false;
        }
    }
    return true;
}

} // namespace

TEMPLATE_TEST_CASE("deadline_heap: empty heap", "[heap]", basic_deadline_heap<2>,
                   basic_deadline_heap<4>, basic_deadline_heap<8>) {
    TestType heap;
    CHECK(heap.empty());
    CHECK(heap.size() == 0);
    CHECK_FALSE(heap.contains(0));
    CHECK_FALSE(heap.contains(TestType::npos));
    CHECK_FALSE(heap.erase(0));
    CHECK_FALSE(heap.erase(12345));
    CHECK_FALSE(heap.erase(TestType::npos));
    heap.clear();
    CHECK(heap.empty());
}

TEMPLATE_TEST_CASE("deadline_heap: single entry", "[heap]", basic_deadline_heap<2>,
                   basic_deadline_heap<4>, basic_deadline_heap<8>) {
    TestType heap;
    heap.push(7, 100);
    REQUIRE(heap.size() == 1);
    REQUIRE(heap.contains(7));
    CHECK_FALSE(heap.contains(6));
    CHECK_FALSE(heap.contains(8));
    CHECK(heap.top().id == 7);
    CHECK(heap.top().deadline == 100);

    SECTION("pop") {
        const auto e = heap.pop();
        CHECK(e.id == 7);
        CHECK(e.deadline == 100);
    }
    SECTION("erase") {
        CHECK(heap.erase(7));
        CHECK_FALSE(heap.erase(7));
    }
    SECTION("clear") {
        heap.clear();
    }
    CHECK(heap.empty());
    CHECK_FALSE(heap.contains(7));

    // The id is free again after pop, erase or clear.
    heap.push(7, -5);
    REQUIRE(heap.contains(7));
    CHECK(heap.top().deadline == -5);
}

TEMPLATE_TEST_CASE("deadline_heap: pops in deadline order", "[heap]", basic_deadline_heap<2>,
                   basic_deadline_heap<4>, basic_deadline_heap<8>) {
    TestType heap;
    // Descending, ascending and interleaved inserts exercise sift_up paths of
    // every length and sift_down with full and partial child sets.
    const std::vector<std::int64_t> deadlines = {50, 40, 30, 20, 10, 0,  5,  15, 25, 35,
                                                 45, 55, 1,  2,  3,  99, 98, 97, 60, 61};
    for (std::uint32_t id = 0; id < deadlines.size(); ++id) {
        heap.push(id, deadlines[id]);
    }
    REQUIRE(heap.size() == deadlines.size());
    std::int64_t previous = int64_min;
    std::vector<bool> seen(deadlines.size(), false);
    while (!heap.empty()) {
        const auto e = heap.pop();
        REQUIRE(e.id < deadlines.size());
        CHECK(e.deadline == deadlines[e.id]);
        CHECK(e.deadline >= previous);
        CHECK_FALSE(seen[e.id]);
        CHECK_FALSE(heap.contains(e.id));
        seen[e.id] = true;
        previous = e.deadline;
    }
}

TEMPLATE_TEST_CASE("deadline_heap: erase top, last, middle and non-members", "[heap]",
                   basic_deadline_heap<2>, basic_deadline_heap<4>, basic_deadline_heap<8>) {
    TestType heap;
    // Ids 0..39 with deadline 10 * id: id 0 is the top; the last pushed id
    // (39) sits at the last index because pushes in ascending order never
    // move.
    for (std::uint32_t id = 0; id < 40; ++id) {
        heap.push(id, std::int64_t{10} * id);
    }

    SECTION("erase the top") {
        REQUIRE(heap.top().id == 0);
        CHECK(heap.erase(heap.top().id));
        CHECK(heap.top().id == 1);
        CHECK(heap.top().deadline == 10);
        CHECK(heap.size() == 39);
    }
    SECTION("erase the last entry") {
        CHECK(heap.erase(39));
        CHECK(heap.size() == 39);
        CHECK_FALSE(heap.contains(39));
    }
    SECTION("erase a middle entry whose replacement must sift up") {
        // Rebuild with the last entry's subtree (under root child c) cheap and
        // every other subtree expensive: erasing a deep node elsewhere refills
        // the hole with the last entry, which then belongs above the hole.
        // Deadlines never decrease along a root path, so each id stays at the
        // index it was pushed to.
        heap.clear();
        constexpr unsigned arity = arity_of(static_cast<TestType*>(nullptr));
        const auto root_child = [](std::size_t i) {
            while ((i - 1) / arity != 0) {
                i = (i - 1) / arity;
            }
            return i;
        };
        const auto depth = [](std::size_t i) {
            std::int64_t d = 0;
            for (; i != 0; i = (i - 1) / arity) {
                ++d;
            }
            return d;
        };
        constexpr std::uint32_t n = 40;
        const std::size_t c = root_child(n - 1);
        heap.push(0, 0);
        for (std::uint32_t id = 1; id < n; ++id) {
            heap.push(id, depth(id) + (root_child(id) == c ? 0 : 1000));
        }
        std::uint32_t hole = n;
        for (std::uint32_t id = n - 1; id > 0 && hole == n; --id) {
            if (root_child(id) != c && depth(id) >= 2) {
                hole = id;
            }
        }
        REQUIRE(hole != n);
        REQUIRE(heap.erase(hole));
        CHECK_FALSE(heap.contains(hole));
        CHECK(heap.contains(n - 1));
        CHECK(heap.size() == n - 1);
        CHECK(heap.top().id == 0);
    }
    SECTION("erase non-members") {
        CHECK_FALSE(heap.erase(40));      // just past the position index
        CHECK_FALSE(heap.erase(1000000)); // far past it
        CHECK_FALSE(heap.erase(TestType::npos));
        CHECK(heap.erase(17));
        CHECK_FALSE(heap.erase(17)); // erased twice
        CHECK(heap.size() == 39);
    }
    const auto order = drain_copy(heap);
    CHECK(order.size() == heap.size());
    CHECK(non_decreasing(order));
}

TEMPLATE_TEST_CASE("deadline_heap: re-push after pop and erase", "[heap]", basic_deadline_heap<2>,
                   basic_deadline_heap<4>, basic_deadline_heap<8>) {
    TestType heap;
    for (std::uint32_t id = 0; id < 20; ++id) {
        heap.push(id, 1000 + id);
    }
    const auto popped = heap.pop();
    REQUIRE(popped.id == 0);
    REQUIRE(heap.erase(5));

    // Slot ids are reused by the engine for the next ping: a popped or erased
    // id must be accepted again, with a new deadline anywhere in the order.
    heap.push(0, 5000);
    heap.push(5, 1);
    CHECK(heap.top().id == 5);
    CHECK(heap.size() == 20);
    CHECK(heap.erase(0));
    CHECK(heap.pop().id == 5);
    heap.push(5, 2000);
    heap.push(0, 0);
    CHECK(heap.pop().id == 0);

    const auto order = drain_copy(heap);
    CHECK(order.size() == 19);
    CHECK(non_decreasing(order));
    CHECK(order.back() == 2000);
}

TEMPLATE_TEST_CASE("deadline_heap: push of a member or npos is rejected", "[heap]",
                   basic_deadline_heap<2>, basic_deadline_heap<4>, basic_deadline_heap<8>) {
    TestType heap;
    heap.push(3, 30);
    heap.push(4, 40);
    CHECK_THROWS_AS(heap.push(3, 10), std::invalid_argument);
    CHECK_THROWS_AS(heap.push(TestType::npos, 10), std::invalid_argument);
    // The rejected pushes left the heap as it was.
    CHECK(heap.size() == 2);
    CHECK(heap.top().id == 3);
    CHECK(heap.top().deadline == 30);
}

TEMPLATE_TEST_CASE("deadline_heap: sparse ids far apart", "[heap]", basic_deadline_heap<2>,
                   basic_deadline_heap<4>, basic_deadline_heap<8>) {
    TestType heap;
    // The position index grows to the largest id; ids in between stay absent.
    const std::vector<std::uint32_t> ids = {4'000'000, 0, 65'536, 1, 3'999'999, 1'000'000};
    std::int64_t d = 600;
    for (const auto id : ids) {
        heap.push(id, d);
        d -= 100;
    }
    CHECK(heap.size() == ids.size());
    for (const auto id : ids) {
        CHECK(heap.contains(id));
    }
    CHECK_FALSE(heap.contains(2));
    CHECK_FALSE(heap.contains(3'999'998));
    CHECK_FALSE(heap.contains(4'000'001));
    CHECK_FALSE(heap.erase(2'000'000));
    CHECK(heap.top().id == 1'000'000);

    CHECK(heap.erase(65'536));
    std::vector<std::uint32_t> popped;
    while (!heap.empty()) {
        popped.push_back(heap.pop().id);
    }
    CHECK(popped == std::vector<std::uint32_t>{1'000'000, 3'999'999, 1, 0, 4'000'000});
}

TEMPLATE_TEST_CASE("deadline_heap: duplicate deadlines", "[heap]", basic_deadline_heap<2>,
                   basic_deadline_heap<4>, basic_deadline_heap<8>) {
    TestType heap;
    // 100 ids over three distinct deadlines: any order among equals is
    // allowed, but every id must come out exactly once and by deadline.
    for (std::uint32_t id = 0; id < 100; ++id) {
        heap.push(id, static_cast<std::int64_t>(id % 3));
    }
    CHECK(heap.erase(0));  // deadline 0
    CHECK(heap.erase(50)); // deadline 2
    std::vector<int> count(100, 0);
    std::int64_t previous = int64_min;
    while (!heap.empty()) {
        const auto e = heap.pop();
        REQUIRE(e.id < 100);
        CHECK(e.deadline == static_cast<std::int64_t>(e.id % 3));
        CHECK(e.deadline >= previous);
        previous = e.deadline;
        ++count[e.id];
    }
    for (std::uint32_t id = 0; id < 100; ++id) {
        CHECK(count[id] == (id == 0 || id == 50 ? 0 : 1));
    }
}

TEMPLATE_TEST_CASE("deadline_heap: INT64 extremes", "[heap]", basic_deadline_heap<2>,
                   basic_deadline_heap<4>, basic_deadline_heap<8>) {
    TestType heap;
    // Deadlines are compared, never subtracted: the extremes must order like
    // any other value.
    heap.push(0, int64_max);
    heap.push(1, 0);
    heap.push(2, int64_min);
    heap.push(3, int64_max - 1);
    heap.push(4, int64_min + 1);
    heap.push(5, int64_max);
    heap.push(6, int64_min);
    CHECK(heap.top().deadline == int64_min);

    CHECK(heap.erase(6));
    const std::vector<std::int64_t> expected = {int64_min,     int64_min + 1, 0,
                                                int64_max - 1, int64_max,     int64_max};
    std::vector<std::int64_t> popped;
    while (!heap.empty()) {
        popped.push_back(heap.pop().deadline);
    }
    CHECK(popped == expected);
}

TEMPLATE_TEST_CASE("deadline_heap: reserve and clear", "[heap]", basic_deadline_heap<2>,
                   basic_deadline_heap<4>, basic_deadline_heap<8>) {
    TestType heap;
    heap.reserve(1000);
    CHECK(heap.empty());
    CHECK_FALSE(heap.contains(999));
    for (std::uint32_t id = 0; id < 1000; id += 3) {
        heap.push(id, 1000 - id);
    }
    heap.reserve(10); // never shrinks
    CHECK(heap.contains(999));
    CHECK(heap.top().id == 999);

    heap.clear();
    CHECK(heap.empty());
    for (std::uint32_t id = 0; id < 1000; ++id) {
        REQUIRE_FALSE(heap.contains(id));
    }
    heap.push(999, 1);
    heap.push(0, 2);
    CHECK(heap.pop().id == 999);
    CHECK(heap.pop().id == 0);
    CHECK_THROWS_AS(heap.reserve(std::size_t{TestType::npos} + 1), std::invalid_argument);
}

namespace {

/// The reference model: a multimap ordered by deadline, and each id's
/// iterator into it for erase-by-id.
struct reference_heap {
    std::multimap<std::int64_t, std::uint32_t> by_deadline;
    std::unordered_map<std::uint32_t, std::multimap<std::int64_t, std::uint32_t>::iterator> by_id;
};

/// Runs `operations` random operations on `heap` and the reference model in
/// lock step, comparing size, top deadline and popped deadlines after each.
template <class Heap>
void run_differential(std::uint64_t seed, std::size_t operations) {
    std::mt19937_64 rng(seed);
    Heap heap;
    reference_heap ref;

    // Members, for picking a random present id in O(1).
    std::vector<std::uint32_t> members;
    std::unordered_map<std::uint32_t, std::size_t> member_index;
    const auto add_member = [&](std::uint32_t id) {
        member_index[id] = members.size();
        members.push_back(id);
    };
    const auto remove_member = [&](std::uint32_t id) {
        const std::size_t i = member_index.at(id);
        member_index[members.back()] = i;
        members[i] = members.back();
        members.pop_back();
        member_index.erase(id);
    };

    // Ids: mostly a dense range the engine would use, sometimes far sparse
    // ones so that the position index grows with gaps.
    const auto random_id = [&]() -> std::uint32_t {
        if (rng() % 10 == 0) {
            return static_cast<std::uint32_t>(rng() % (1u << 20));
        }
        return static_cast<std::uint32_t>(rng() % 4096);
    };
    // Deadlines: a narrow range forces many ties; the extremes and the full
    // int64 range check that nothing subtracts or overflows.
    const auto random_deadline = [&]() -> std::int64_t {
        switch (rng() % 10) {
        case 0:
        case 1:
        case 2:
            return static_cast<std::int64_t>(rng() % 32);
        case 3: {
            constexpr std::int64_t extremes[] = {int64_min, int64_min + 1, int64_max - 1,
                                                 int64_max};
            return extremes[rng() % 4];
        }
        case 4:
        case 5:
            return static_cast<std::int64_t>(rng()); // full range, both signs
        default:
            return static_cast<std::int64_t>(rng() % 2'000'000'000'000) - 1'000'000'000'000;
        }
    };

    std::size_t pushes = 0, erases = 0, absent_erases = 0, pops = 0, drains = 0;
    for (std::size_t step = 0; step < operations; ++step) {
        INFO("step " << step << " (seed " << seed << ")");
        // Alternate growing and shrinking phases so that the size sweeps
        // from empty to a few thousand and back.
        const bool growing = (step / 20'000) % 2 == 0;
        const unsigned push_weight = growing ? 50 : 25;
        const unsigned roll = static_cast<unsigned>(rng() % 100);

        if (roll < push_weight) {
            std::uint32_t id = random_id();
            for (int tries = 0; tries < 64 && heap.contains(id); ++tries) {
                id = random_id();
            }
            if (heap.contains(id)) {
                continue; // no free id found this time; rare and harmless
            }
            REQUIRE(ref.by_id.count(id) == 0);
            const std::int64_t deadline = random_deadline();
            heap.push(id, deadline);
            ref.by_id[id] = ref.by_deadline.emplace(deadline, id);
            add_member(id);
            ++pushes;
        } else if (roll < push_weight + 25) {
            if (members.empty()) {
                REQUIRE_FALSE(heap.erase(random_id()));
                continue;
            }
            const std::uint32_t id = members[rng() % members.size()];
            const auto it = ref.by_id.at(id);
            // What the engine reads for a reply's lateness (slots keep no
            // copy of the deadline).
            REQUIRE(heap.deadline_of(id) == it->first);
            REQUIRE(heap.erase(id));
            REQUIRE_FALSE(heap.contains(id));
            ref.by_deadline.erase(it);
            ref.by_id.erase(id);
            remove_member(id);
            ++erases;
        } else if (roll < push_weight + 35) {
            std::uint32_t id = random_id();
            while (ref.by_id.count(id) != 0) {
                id = random_id();
            }
            REQUIRE_FALSE(heap.erase(id));
            ++absent_erases;
        } else if (roll < push_weight + 60) {
            if (heap.empty()) {
                REQUIRE(ref.by_deadline.empty());
                continue;
            }
            const auto e = heap.pop();
            REQUIRE(e.deadline == ref.by_deadline.begin()->first);
            // Ties may come out in any order: the popped id must be a member
            // with exactly this deadline, not necessarily the reference's
            // first.
            const auto found = ref.by_id.find(e.id);
            REQUIRE(found != ref.by_id.end());
            REQUIRE(found->second->first == e.deadline);
            REQUIRE_FALSE(heap.contains(e.id));
            ref.by_deadline.erase(found->second);
            ref.by_id.erase(found);
            remove_member(e.id);
            ++pops;
        } else if (roll == 99 && rng() % 50 == 0) {
            heap.clear();
            for (const auto id : members) {
                REQUIRE_FALSE(heap.contains(id));
            }
            ref.by_deadline.clear();
            ref.by_id.clear();
            members.clear();
            member_index.clear();
        }
        // Otherwise a top-only step: the checks below are all it does.

        REQUIRE(heap.size() == ref.by_deadline.size());
        REQUIRE(heap.empty() == ref.by_deadline.empty());
        if (!heap.empty()) {
            REQUIRE(heap.top().deadline == ref.by_deadline.begin()->first);
            REQUIRE(heap.contains(heap.top().id));
        }

        // Every few thousand steps, drain a copy: the deadlines must come out
        // sorted and equal to the reference's multiset, which holds only if
        // every parent is <= its children throughout the heap.
        if (step % 4096 == 4095) {
            const auto order = drain_copy(heap);
            REQUIRE(non_decreasing(order));
            std::vector<std::int64_t> expected;
            expected.reserve(ref.by_deadline.size());
            for (const auto& [deadline, id] : ref.by_deadline) {
                expected.push_back(deadline);
            }
            REQUIRE(order == expected);
            ++drains;
        }
    }

    // Drain both in order at the end.
    INFO("final drain (seed " << seed << ")");
    while (!ref.by_deadline.empty()) {
        REQUIRE_FALSE(heap.empty());
        const auto e = heap.pop();
        REQUIRE(e.deadline == ref.by_deadline.begin()->first);
        const auto found = ref.by_id.find(e.id);
        REQUIRE(found != ref.by_id.end());
        REQUIRE(found->second->first == e.deadline);
        ref.by_deadline.erase(found->second);
        ref.by_id.erase(found);
    }
    REQUIRE(heap.empty());
    REQUIRE(heap.size() == 0);

    // The mix really exercised every operation.
    CHECK(pushes > operations / 4);
    CHECK(erases > operations / 10);
    CHECK(absent_erases > operations / 20);
    CHECK(pops > operations / 10);
    CHECK(drains > 10);
}

/// One seed for all arities: the same operation sequence runs on each, and
/// the seed is printed once.
std::uint64_t differential_seed() {
    static const std::uint64_t seed = icmpengine::testing::test_seed("deadline_heap");
    return seed;
}

} // namespace

TEMPLATE_TEST_CASE("deadline_heap: randomised differential against std::multimap", "[heap]",
                   basic_deadline_heap<2>, basic_deadline_heap<4>, basic_deadline_heap<8>) {
    run_differential<TestType>(differential_seed(), 150'000);
}
