// SPDX-License-Identifier: MIT
// System tests of icmpengine::ping_all and icmpengine::engine_pool
// (include/icmpengine/engine_pool.hpp); the fan-out machine under them is
// tested in test_fanout_core.cpp. support/system_main.cpp has moved
// this process into a private network namespace: every ping goes to
// loopback, or to an address without a route (a send error; nothing leaves).
// No test here depends on timing.
#include <catch2/catch.hpp>

#include "engine_test.hpp"
#include "netns.hpp"

#include <icmpengine/icmpengine.hpp>

#include <algorithm>
#include <chrono>
#include <sched.h>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using icmpengine::engine;
using icmpengine::engine_pool;
using icmpengine::engine_stats;
using icmpengine::ip_address;
using icmpengine::ping_all_options;
using icmpengine::ping_result;
using icmpengine::ping_status;

namespace {

using icmpengine::testing::addr;

// Without a route in the private namespace: the send fails at once
// (ENETUNREACH) and nothing is sent. 198.51.100.0/24 is TEST-NET-2.
const ip_address unroutable = addr("198.51.100.7");

/// Distinct loopback targets 127.1.0.1 upward, with every seventh one ::1
/// and every 97th one unroutable, so that results differ by position.
std::vector<ip_address> mixed_targets(std::size_t n) {
    std::vector<ip_address> targets;
    targets.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
        if (i % 97 == 5)
            targets.push_back(unroutable);
        else if (i % 7 == 3)
            targets.push_back(addr("::1"));
        else
            targets.push_back(ip_address::from_v4(0x7f010001u + static_cast<std::uint32_t>(i)));
    }
    return targets;
}

/// results[i] is the result for targets[i]: a reply from it, or a send error
/// for the unroutable ones.
void require_in_input_order(const std::vector<ip_address>& targets,
                            const std::vector<ping_result>& results) {
    REQUIRE(results.size() == targets.size());
    for (std::size_t i = 0; i < targets.size(); ++i) {
        INFO("target " << i << " " << targets[i].to_string() << ": "
                       << to_string(results[i].status));
        if (targets[i] == unroutable) {
            REQUIRE(results[i].status == ping_status::send_error);
            CHECK(results[i].error);
        } else {
            REQUIRE(results[i].status == ping_status::reply);
            REQUIRE(results[i].from == targets[i]);
            CHECK(results[i].bytes == 56);
            CHECK(results[i].rtt > 0ns);
        }
    }
}

std::size_t count_unroutable(const std::vector<ip_address>& targets) {
    return static_cast<std::size_t>(std::count(targets.begin(), targets.end(), unroutable));
}

void require_totals(const engine_stats& s, std::size_t targets, std::size_t unroutable_count) {
    CHECK(s.sent == targets);
    CHECK(s.replies == targets - unroutable_count);
    CHECK(s.send_errors == unroutable_count);
    CHECK(s.timeouts == 0);
    CHECK(s.in_flight == 0);
    CHECK(s.waiting == 0);
}

} // namespace

TEST_CASE("ping_all on one engine: results in input order, any window", "[pool][ping_all]") {
    const std::vector<ip_address> targets = mixed_targets(3000);
    for (std::uint32_t window : {1u, 7u, 256u, 5000u}) {
        INFO("window " << window);
        engine eng;
        std::vector<ping_result> results(targets.size());
        eng.run(icmpengine::ping_all(eng, targets, results, {.timeout = 5s, .window = window}));
        require_in_input_order(targets, results);
        require_totals(eng.stats(), targets.size(), count_unroutable(targets));
    }
}

TEST_CASE("ping_all after engine::stop(): nothing sent, every result cancelled",
          "[pool][ping_all][stop]") {
    engine eng;
    eng.stop();
    const std::vector<ip_address> targets = mixed_targets(300);
    std::vector<ping_result> results(targets.size());
    eng.run(icmpengine::ping_all(eng, targets, results, {.timeout = 5s, .window = 16}));
    for (std::size_t i = 0; i < targets.size(); ++i) {
        INFO("target " << i);
        REQUIRE(results[i].status == ping_status::cancelled);
        REQUIRE(results[i].from == targets[i]);
        REQUIRE(results[i].error == icmpengine::errc::stopped);
    }
    CHECK(eng.stats().sent == 0);
}

TEST_CASE("engine_pool with two engines: every result in input order", "[pool]") {
    engine_pool pool({.engines = 2});
    REQUIRE(pool.size() == 2);
    REQUIRE_FALSE(pool.open(icmpengine::ip_family::v4));
    REQUIRE_FALSE(pool.open(icmpengine::ip_family::v6));

    const std::vector<ip_address> targets = mixed_targets(20000);
    SECTION("into a returned vector, several calls on the same pool") {
        for (std::uint32_t window : {16u, 256u}) {
            INFO("window " << window);
            const std::vector<ping_result> results =
                pool.ping_all(targets, {.timeout = 5s, .window = window});
            require_in_input_order(targets, results);
        }
        require_totals(pool.stats(), 2 * targets.size(), 2 * count_unroutable(targets));
        const std::vector<engine_stats> each = pool.engine_stats_each();
        REQUIRE(each.size() == 2);
        CHECK(each[0].sent + each[1].sent == 2 * targets.size());
    }
    SECTION("into a caller's span; the pool stays usable after a refused call") {
        std::vector<ping_result> results(targets.size());
        pool.ping_all(targets, results, {.timeout = 5s});
        require_in_input_order(targets, results);
        require_totals(pool.stats(), targets.size(), count_unroutable(targets));
        CHECK_THROWS_AS(pool.ping_all(targets, {.window = 0}), std::invalid_argument);
        const std::vector<ip_address> few = mixed_targets(50);
        require_in_input_order(few, pool.ping_all(few, {.timeout = 5s}));
    }
    SECTION("no targets") {
        CHECK(pool.ping_all(std::vector<ip_address>{}, {.timeout = 1s}).empty());
    }
}

TEST_CASE("engine_pool defaults to one engine per CPU this process may use", "[pool]") {
    cpu_set_t set;
    CPU_ZERO(&set);
    REQUIRE(::sched_getaffinity(0, sizeof set, &set) == 0);
    engine_pool pool;
    CHECK(pool.size() == static_cast<std::size_t>(CPU_COUNT(&set)));
    const std::vector<ip_address> targets = mixed_targets(1000);
    require_in_input_order(targets, pool.ping_all(targets, {.timeout = 5s}));
}

TEST_CASE("engine_pool with pinned threads and more engines than CPUs", "[pool]") {
    engine_pool pool({.engines = 3, .pin_threads = true});
    REQUIRE(pool.size() == 3);
    const std::vector<ip_address> targets = mixed_targets(5000);
    require_in_input_order(targets, pool.ping_all(targets, {.timeout = 5s, .window = 32}));
    require_totals(pool.stats(), targets.size(), count_unroutable(targets));
}

TEST_CASE("ping_all and engine_pool reject invalid arguments, naming the value", "[pool][args]") {
    engine eng;
    const std::vector<ip_address> targets(3, addr("127.0.0.1"));
    std::vector<ping_result> results(3);
    std::vector<ping_result> short_results(2);
    using Catch::Matchers::Contains;
    CHECK_THROWS_WITH(icmpengine::ping_all(eng, targets, short_results, {}),
                      Contains("2 results for 3 targets"));
    CHECK_THROWS_WITH(icmpengine::ping_all(eng, targets, results, {.window = 0}),
                      Contains("window = 0"));
    CHECK_THROWS_WITH(icmpengine::ping_all(eng, targets, results, {.timeout = 0s}),
                      Contains("timeout = 0 ns"));
    CHECK_THROWS_WITH(icmpengine::ping_all(eng, targets, results, {.timeout = -1s}),
                      Contains("timeout = -1000000000 ns"));
    CHECK_THROWS_WITH(
        icmpengine::ping_all(eng, targets, results, {.ping = {.payload_size = 70000}}),
        Contains("payload_size = 70000"));
    const std::vector<std::chrono::nanoseconds> two{1s, 1s};
    CHECK_THROWS_WITH(icmpengine::ping_all(eng, targets, results, {.timeouts = two}),
                      Contains("2 timeouts for 3 targets"));
    const std::vector<std::chrono::nanoseconds> one_bad{1s, 0s, 1s};
    CHECK_THROWS_WITH(icmpengine::ping_all(eng, targets, results, {.timeouts = one_bad}),
                      Contains("timeouts[1]: timeout = 0 ns"));
    CHECK(eng.stats().sent == 0);

    CHECK_THROWS_AS(engine_pool({.engines = 2, .engine = {.queue_depth = 3}}),
                    std::invalid_argument);
    engine_pool pool({.engines = 2});
    CHECK_THROWS_WITH(pool.ping_all(targets, short_results, {}),
                      Contains("2 results for 3 targets"));
    CHECK_THROWS_WITH(pool.ping_all(targets, {.window = 0}), Contains("window = 0"));
    CHECK(pool.stats().sent == 0);
}
