// SPDX-License-Identifier: MIT
// System tests of detail::fanout_core (lib/fanout_core.hpp), the machine
// under ping_all, engine_pool, ping_fanout and ping_series: the window, the
// per-target timeouts, and the exception policy (no new pings, every ping
// in flight ends, the lowest target index wins), also across the engines
// of a pool. support/system_main.cpp has moved this process into a private
// network namespace: every ping goes to loopback. The layers' own behaviour
// is in test_engine_pool.cpp and test_ping_series.cpp.
#include <catch2/catch.hpp>

#include "fanout_core.hpp"
#include "netns.hpp"

#include <icmpengine/icmpengine.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using icmpengine::engine;
using icmpengine::ip_address;
using icmpengine::ping_result;
using icmpengine::ping_status;
namespace detail = icmpengine::detail;

namespace {

/// Records what the core reports; throws from ended() for chosen targets.
struct recording_sink final : detail::fanout_sink {
    std::vector<int> sent_count;
    std::vector<int> ended_count;
    std::vector<int> done_count;
    std::vector<std::size_t> end_order;
    std::vector<std::size_t> throw_for;
    std::size_t outstanding = 0;
    std::size_t most_outstanding = 0;

    explicit recording_sink(std::size_t n)
        : fanout_sink(true), sent_count(n), ended_count(n), done_count(n) {}

    void sent(std::size_t target, std::uint64_t k) override {
        CHECK(k == 0);
        ++sent_count.at(target);
        most_outstanding = std::max(most_outstanding, ++outstanding);
    }
    void ended(std::size_t target, std::uint64_t, const ping_result&) override {
        --outstanding;
        ++ended_count.at(target);
        end_order.push_back(target);
        if (std::find(throw_for.begin(), throw_for.end(), target) != throw_for.end())
            throw std::runtime_error("target " + std::to_string(target));
    }
    void done_sending(std::size_t target) noexcept override { ++done_count.at(target); }

    int total_sent() const {
        int n = 0;
        for (int c : sent_count)
            n += c;
        return n;
    }
};

std::vector<ip_address> loopback_targets(std::size_t n) {
    std::vector<ip_address> targets;
    for (std::size_t i = 0; i < n; ++i)
        targets.push_back(ip_address::from_v4(0x7f010001u + static_cast<std::uint32_t>(i)));
    return targets;
}

/// Runs `core` on `eng`; the message of what rethrow_if_failed() throws,
/// or "" if nothing.
std::string run_core(engine& eng, detail::fanout_core& core) {
    eng.run(core.run(eng));
    try {
        core.rethrow_if_failed();
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return "";
}

} // namespace

TEST_CASE("the window bounds the pings in flight; every target once", "[fanout]") {
    engine eng;
    const std::vector<ip_address> targets = loopback_targets(500);
    recording_sink sink(targets.size());
    detail::fanout_core core(targets, {.timeout = 5s, .window = 8}, sink,
                             detail::target_source(targets.size()));
    CHECK(run_core(eng, core).empty());
    CHECK(sink.most_outstanding == 8);
    for (std::size_t i = 0; i < targets.size(); ++i) {
        INFO("target " << i);
        REQUIRE(sink.sent_count[i] == 1);
        REQUIRE(sink.ended_count[i] == 1);
        REQUIRE(sink.done_count[i] == 1);
    }
    CHECK(eng.stats().replies == targets.size());
}

TEST_CASE("per-target timeouts: each ping keeps its own", "[fanout]") {
    icmpengine::testing::scoped_sysctl ignore4("net.ipv4.icmp_echo_ignore_all", "1");
    engine eng;
    const std::vector<ip_address> targets(4, ip_address::parse("127.0.0.1"));
    const std::vector<std::chrono::nanoseconds> timeouts{50ms, 10ms, 30ms, 20ms};
    recording_sink sink(targets.size());
    detail::fanout_core core(targets, {.timeouts = timeouts}, sink,
                             detail::target_source(targets.size()));
    CHECK(run_core(eng, core).empty());
    // Sent in one batch, so they share a send time: deadline order is
    // timeout order, whatever the scheduling.
    CHECK(sink.end_order == std::vector<std::size_t>{1, 3, 2, 0});
    CHECK(eng.stats().timeouts == 4);
}

TEST_CASE("an exception stops new pings, every ping in flight ends, the lowest target wins",
          "[fanout][exceptions]") {
    engine eng;
    const std::vector<ip_address> targets = loopback_targets(400);
    recording_sink sink(targets.size());
    SECTION("all in flight when two throw: the lower index is rethrown") {
        sink.throw_for = {300, 42};
        detail::fanout_core core(targets, {.timeout = 5s, .window = 400}, sink,
                                 detail::target_source(targets.size()));
        CHECK(run_core(eng, core) == "target 42");
        CHECK(core.stop_requested());
        CHECK(sink.total_sent() == 400);
        CHECK(std::all_of(sink.ended_count.begin(), sink.ended_count.end(),
                          [](int n) { return n == 1; }));
    }
    SECTION("a window of 4: the first result throws, nothing more is sent") {
        sink.throw_for = {0, 1, 2, 3};
        detail::fanout_core core(targets, {.timeout = 5s, .window = 4}, sink,
                                 detail::target_source(targets.size()));
        CHECK(run_core(eng, core) == "target 0"); // all four throw; 0 is lowest
        CHECK(sink.total_sent() == 4);
        CHECK(sink.end_order.size() == 4);
    }
    CHECK(eng.stats().in_flight == 0);
    CHECK(eng.stats().sent == static_cast<std::uint64_t>(sink.total_sent()));
}

TEST_CASE("a stop reaches every engine that shares the targets", "[fanout][pool]") {
    // Two engines over one cursor, one after the other (on one thread, so
    // that the order is certain): the first fails at its first result, and
    // the second then takes no target at all.
    const std::vector<ip_address> targets = loopback_targets(2000);
    detail::shared_targets shared;
    recording_sink sink(targets.size());
    sink.throw_for = {0};
    {
        engine first;
        detail::fanout_core core(targets, {.timeout = 5s, .window = 16}, sink,
                                 detail::target_source(shared, targets.size(), 16));
        CHECK(run_core(first, core) == "target 0");
        CHECK(sink.total_sent() == 16);
    }
    engine second;
    detail::fanout_core core(targets, {.timeout = 5s, .window = 16}, sink,
                             detail::target_source(shared, targets.size(), 16));
    CHECK(run_core(second, core).empty());
    CHECK(sink.total_sent() == 16);
    CHECK(second.stats().sent == 0);
}

TEST_CASE("a core destroyed with pings in flight: the engine forgets them", "[fanout]") {
    engine eng({.fake_drop_probability = 1.0}); // all time out
    const std::vector<ip_address> targets = loopback_targets(64);
    recording_sink sink(targets.size());
    {
        detail::fanout_core core(targets, {.timeout = 50ms}, sink,
                                 detail::target_source(targets.size()));
        icmpengine::task<void> running = core.run(eng);
        auto start = [](engine& e, icmpengine::task<void>& t) -> icmpengine::task<void> {
            // Started by hand, not awaited: it starts its pings and waits.
            icmpengine::detail::task_access::handle(t).resume();
            co_await e.sleep_for(1ms);
        };
        eng.run(start(eng, running));
        CHECK(eng.stats().in_flight == 64);
    }                              // the task, then the core: destroyed with every ping in flight
    eng.run(eng.sleep_for(150ms)); // they time out with nobody to tell
    CHECK(eng.stats().timeouts == 64);
    CHECK(std::all_of(sink.ended_count.begin(), sink.ended_count.end(),
                      [](int n) { return n == 0; }));
}
