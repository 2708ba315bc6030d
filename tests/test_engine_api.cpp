// SPDX-License-Identifier: MIT
// System tests of icmpengine::engine: its contract with the caller. Invalid
// arguments throw std::invalid_argument naming the value; exceptions from
// tasks reach run(); run() reports a task it cannot drive; logging per
// component. support/system_main.cpp has moved this process into a private
// network namespace: every packet here goes to loopback.
#include <catch2/catch.hpp>

#include "engine_test.hpp"

#include <icmpengine/icmpengine.hpp>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using namespace icmpengine;
using namespace icmpengine::testing;

TEST_CASE("invalid arguments throw std::invalid_argument naming the value", "[engine][args]") {
    engine eng;
    CHECK_THROWS_WITH(eng.ping(addr("127.0.0.1"), 0ns), Catch::Contains("timeout = 0 ns"));
    CHECK_THROWS_WITH(eng.ping(addr("127.0.0.1"), -5ms), Catch::Contains("-5000000"));
    CHECK_THROWS_WITH(eng.ping(addr("127.0.0.1"), 1s, {.payload_size = 65508}),
                      Catch::Contains("65508"));
    CHECK_THROWS_AS(eng.ping(addr("::1"), std::chrono::hours(24 * 365 * 11)),
                    std::invalid_argument);
    CHECK_THROWS_WITH(engine({.queue_depth = 1000}), Catch::Contains("queue_depth = 1000"));
    CHECK_THROWS_WITH(engine({.max_in_flight = 0}), Catch::Contains("max_in_flight = 0"));
    CHECK_THROWS_WITH(engine({.reuse_slots_after = 0}), Catch::Contains("reuse_slots_after = 0"));
    CHECK_THROWS_WITH(engine({.reuse_slots_after = 65537}),
                      Catch::Contains("reuse_slots_after = 65537"));
    CHECK_THROWS_WITH(engine({.send_batch = 0}), Catch::Contains("send_batch = 0"));
    CHECK_THROWS_WITH(engine({.receive_buffers = 100}), Catch::Contains("receive_buffers = 100"));
    CHECK_THROWS_WITH(engine({.receive_buffer_size = 10}),
                      Catch::Contains("receive_buffer_size = 10"));
    CHECK_THROWS_WITH(engine({.dscp = 64}), Catch::Contains("dscp = 64"));
    CHECK_THROWS_WITH(engine({.fake_drop_probability = 1.5}), Catch::Contains("1.5"));
    CHECK_THROWS_WITH(engine({.source_v4 = addr("::1")}), Catch::Contains("source_v4 = ::1"));
    CHECK_THROWS_WITH(engine({.interface = std::string(20, 'x')}), Catch::Contains("xxxx"));
    // Nothing was started by the rejected calls.
    CHECK(eng.stats().sent == 0);
}

TEST_CASE("spawn, exceptions and run() misuse", "[engine][task]") {
    SECTION("an exception in the run task propagates") {
        engine eng;
        auto thrower = [](engine& e) -> task<int> {
            co_await e.ping(addr("127.0.0.1"), 1s);
            throw std::runtime_error("boom");
        };
        CHECK_THROWS_WITH(eng.run(thrower(eng)), "boom");
        require_balanced(eng.stats());
    }
    SECTION("an exception escaping a spawned task is rethrown by run()") {
        engine eng;
        eng.spawn([](engine& e) -> task<void> {
            co_await e.ping(addr("127.0.0.1"), 1s);
            throw std::runtime_error("spawned boom");
        }(eng));
        CHECK_THROWS_WITH(eng.run(eng.ping(addr("::1"), 1s)), "spawned boom");
    }
    SECTION("waiting for something the engine does not drive is reported, not a hang") {
        engine eng;
        auto stuck = []() -> task<void> { co_await never{}; };
        CHECK_THROWS_AS(eng.run(stuck()), std::logic_error);
    }
}

TEST_CASE("logging: off costs nothing, on reports per component", "[engine][log]") {
    std::vector<std::pair<icmpengine::log_component, std::string>> lines;
    icmpengine::log_config log;
    log.sink = [&](icmpengine::log_component c, icmpengine::log_level, std::string_view m) {
        lines.emplace_back(c, std::string(m));
    };
    log.set(icmpengine::log_component::sockets, icmpengine::log_level::info);
    {
        engine eng({.log = log});
        CHECK(eng.run(eng.ping(addr("127.0.0.1"), 1s)).status == ping_status::reply);
        require_balanced(eng.stats());
    }
    REQUIRE_FALSE(lines.empty());
    CHECK(std::all_of(lines.begin(), lines.end(),
                      [](const auto& l) { return l.first == icmpengine::log_component::sockets; }));
    CHECK_THAT(lines.front().second, Catch::Contains("IPv4 ICMP socket"));
    lines.clear();
    log.levels.fill(icmpengine::log_level::off);
    {
        engine eng({.log = log});
        CHECK(eng.run(eng.ping(addr("127.0.0.1"), 1s)).status == ping_status::reply);
        require_balanced(eng.stats());
    }
    CHECK(lines.empty());
}
