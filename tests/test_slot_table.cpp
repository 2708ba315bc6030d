// SPDX-License-Identifier: MIT
// Tests of detail::slot_table (lib/slot_table.hpp): how the table grows,
// and the layout of a slot. Its matching rules are tested through the
// reply matcher (test_reply_matcher.cpp).
#include "slot_table.hpp"

#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace {

using namespace icmpengine;
using namespace icmpengine::detail;

TEST_CASE("the slot table doubles, then grows straight to its reuse size, in one cache line a slot",
          "[slots]") {
    // Sequence numbers advance through every slot before one is reused,
    // so a busy table reaches its reuse size anyway: from 256 KiB on it
    // goes there in one step instead of copying every power of two.
    STATIC_REQUIRE(sizeof(slot) == 64);
    for (const std::uint32_t reuse_after : {65536u, 10000u}) {
        INFO("reuse_after " << reuse_after);
        slot_table slots{1u << 20, reuse_after};
        const std::size_t jump = slot_table::jump_bytes / (2 * sizeof(slot));
        std::vector<std::size_t> capacities;
        for (std::uint32_t i = 0; i < jump + 2; ++i) {
            REQUIRE(slots.alloc(ip_address::from_v4(0x0a000000 + i), true) == i);
            if (capacities.empty() || capacities.back() != slots.capacity())
                capacities.push_back(slots.capacity());
            CHECK(reinterpret_cast<std::uintptr_t>(&slots[i]) % 64 == 0);
        }
        CHECK(capacities.back() == reuse_after);
        CHECK(capacities[capacities.size() - 2] == jump);
    }
}

} // namespace
