// SPDX-License-Identifier: MIT
// System tests of icmpengine::engine: time. Timeouts and sleeps share the
// engine's one timer; each ends in deadline order, never early, and a short
// one behind a 1 h one does not wait for the hour. support/system_main.cpp
// has moved this process into a private network namespace: every packet
// here goes to loopback, which ignores echo requests where a test says so.
//
// No upper bound here is a measure of speed: a loaded machine delays any
// wake-up. The bounds (20 s) are far from the normal milliseconds and close
// to the failures they catch: a timer that was never pulled in (an hour), or
// a sleeper nobody wakes.
#include <catch2/catch.hpp>

#include "coro_test.hpp"
#include "engine_test.hpp"
#include "netns.hpp"

#include <icmpengine/icmpengine.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <stop_token>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using namespace icmpengine;
using namespace icmpengine::testing;
using clock_type = std::chrono::steady_clock;

TEST_CASE("timeouts when the target ignores echo requests", "[engine][timeout]") {
    testing::scoped_sysctl ignore4("net.ipv4.icmp_echo_ignore_all", "1");
    testing::scoped_sysctl ignore6("net.ipv6.icmp.echo_ignore_all", "1");
    engine eng;
    const auto t0 = clock_type::now();
    auto results = eng.run(ping_each(eng, {addr("127.0.0.1"), addr("::1")}, 100ms));
    const auto elapsed = clock_type::now() - t0;
    for (const auto& r : results) {
        CHECK(r.status == ping_status::timeout);
        CHECK(r.rtt == 0ns);
        CHECK_FALSE(r.fake_dropped);
    }
    CHECK(elapsed >= 100ms); // a timeout never fires early
    // Only a lost timer (or a unit error) makes a 100 ms timeout take 20 s.
    CHECK(elapsed < 20s);
    const engine_stats s = eng.stats();
    CHECK(s.timeouts == 2);
    require_balanced(s);
}

TEST_CASE("mixed timeouts resolve in deadline order, each on time, a short one behind a 1 h one",
          "[engine][timeout]") {
    testing::scoped_sysctl ignore4("net.ipv4.icmp_echo_ignore_all", "1");
    std::vector<timed_result> done; // outlives the engine, which may resume into it
    engine eng;
    auto scenario = [&](engine& e) -> task<void> {
        // The 1 h ping goes first, so the timer is armed for an hour when the
        // short ones arrive: they must pull it in (IORING_OP_TIMEOUT update).
        e.spawn([](engine& e2, std::vector<timed_result>& out) -> task<void> {
            out.push_back(co_await timed_ping(e2, addr("127.0.0.2"), 1h));
        }(e, done));
        std::vector<task<void>> mixed;
        for (auto timeout : {500ms, 5ms, 50ms, 50ms, 5ms, 500ms})
            mixed.push_back([](engine& e2, std::chrono::milliseconds t,
                               std::vector<timed_result>& out) -> task<void> {
                out.push_back(co_await timed_ping(e2, addr("127.0.0.3"), t));
            }(e, timeout, done));
        co_await icmpengine::when_all(std::move(mixed));
        // A short ping issued while the 1 h ping is still pending.
        done.push_back(co_await timed_ping(e, addr("127.0.0.4"), 10ms));
        CHECK(e.stats().in_flight == 1); // the 1 h ping
        e.stop();
    };
    eng.run(scenario(eng));
    // The engine's destructor (or stop) resumes the 1 h ping as cancelled.
    std::vector<std::chrono::milliseconds> expected{5ms, 5ms, 50ms, 50ms, 500ms, 500ms, 10ms};
    REQUIRE(done.size() >= 7);
    for (std::size_t i = 0; i < 7; ++i) {
        const timed_result& t = done[i];
        const auto took = t.ended - t.started;
        INFO("ping " << i << " timeout " << expected[i].count() << " ms took "
                     << (std::chrono::duration<double, std::milli>(took).count()) << " ms");
        CHECK(t.result.status == ping_status::timeout);
        CHECK(took >= expected[i]); // never early
        // Behind the 1 h ping: a short one that waited for the hour's timer
        // (the timer not pulled in) would take an hour, not 20 s.
        CHECK(took < 20s);
    }
    // Deadline order: each resolved no earlier than the one before it.
    for (std::size_t i = 1; i < 6; ++i)
        CHECK(done[i].ended >= done[i - 1].ended);
    eng.stop();
    REQUIRE(done.size() == 8);
    CHECK(done[7].result.status == ping_status::cancelled);
    CHECK(done[7].ended - done[7].started < 20s); // cancelled, not expired after 1 h
    const engine_stats s = eng.stats();
    CHECK(s.timeouts == 7);
    CHECK(s.cancelled == 1);
    require_balanced(s);
}

TEST_CASE("100k pings pending at once all time out together", "[engine][scale][timeout]") {
    testing::scoped_sysctl ignore4("net.ipv4.icmp_echo_ignore_all", "1");
    constexpr std::uint32_t n = 100'000;
    std::vector<ip_address> targets;
    for (std::uint32_t i = 0; i < n; ++i)
        targets.push_back(loopback_v4(i));
    std::uint64_t in_flight_seen = 0;
    engine eng;
    auto scenario = [&](engine& e) -> task<std::vector<ping_result>> {
        // Starts once the fan-out below has started every ping and suspended,
        // with no loop turn (and so no expiry) in between.
        e.spawn([](engine& e2, std::uint64_t& seen) -> task<void> {
            seen = e2.stats().in_flight;
            co_return;
        }(e, in_flight_seen));
        co_return co_await ping_each(e, targets, 1s);
    };
    const auto results = eng.run(scenario(eng));
    CHECK(in_flight_seen == n);
    REQUIRE(results.size() == n);
    CHECK(std::all_of(results.begin(), results.end(),
                      [](const ping_result& r) { return r.status == ping_status::timeout; }));
    CHECK(eng.stats().timeouts == n);
    require_balanced(eng.stats());
}

TEST_CASE("sleep_until / sleep_for: on time, in order, alongside pings, woken by stop",
          "[engine][sleep]") {
    using ms = std::chrono::duration<double, std::milli>;
    SECTION("a sleep alone drives the loop and ends on time; a past deadline at once") {
        engine eng;
        const auto t0 = clock_type::now();
        CHECK(eng.run(eng.sleep_for(20ms)));
        const auto took = clock_type::now() - t0;
        INFO("took " << ms(took).count() << " ms");
        CHECK(took >= 20ms);
        CHECK(took < 20s); // only a sleep nobody wakes (or a unit error) takes that long
        // "At once": the task completes when started, without a loop turn.
        CHECK(testing::run_sync(eng.sleep_until(clock_type::now() - 1s)));
        CHECK(testing::run_sync(eng.sleep_for(-5ms)));
        CHECK(testing::run_sync(eng.sleep_for(0ns)));
        require_balanced(eng.stats());
        CHECK(eng.stats().sent == 0);
    }
    SECTION("sleepers wake in deadline order, each on time") {
        engine eng;
        std::vector<std::pair<int, clock_type::duration>> woke;
        const auto t0 = clock_type::now();
        auto sleeper = [&](int ms_, bool& ok) -> task<void> {
            ok = co_await eng.sleep_until(t0 + std::chrono::milliseconds(ms_));
            woke.emplace_back(ms_, clock_type::now() - t0);
        };
        std::vector<task<void>> all;
        std::array<bool, 4> ok{};
        int i = 0;
        for (int d : {30, 10, 40, 20})
            all.push_back(sleeper(d, ok[static_cast<std::size_t>(i++)]));
        eng.run(icmpengine::when_all(std::move(all)));
        REQUIRE(woke.size() == 4);
        for (std::size_t k = 0; k < woke.size(); ++k) {
            INFO("sleeper " << woke[k].first << " ms woke at " << ms(woke[k].second).count());
            CHECK(woke[k].first == 10 * static_cast<int>(k + 1));
            CHECK(woke[k].second >= std::chrono::milliseconds(woke[k].first));
            CHECK(woke[k].second < 20s);
        }
        CHECK(std::all_of(ok.begin(), ok.end(), [](bool b) { return b; }));
    }
    SECTION("one timer: a short sleep behind a 1 h ping, a short ping behind a 1 h sleep") {
        testing::scoped_sysctl ignore4("net.ipv4.icmp_echo_ignore_all", "1");
        engine eng;
        timed_result long_ping;
        eng.spawn([](engine& e, timed_result& out) -> task<void> {
            out = co_await timed_ping(e, addr("127.0.0.2"), 1h);
        }(eng, long_ping));
        bool long_sleep_result = true;
        eng.spawn([](engine& e, bool& out) -> task<void> {
            out = co_await e.sleep_for(1h);
        }(eng, long_sleep_result));
        auto scenario = [](engine& e) -> task<std::pair<clock_type::duration, timed_result>> {
            co_await e.sleep_for(1ms); // both 1 h timers are armed by now
            const auto t0 = clock_type::now();
            co_await e.sleep_for(15ms);
            const auto slept = clock_type::now() - t0;
            timed_result p = co_await timed_ping(e, addr("127.0.0.3"), 15ms);
            co_return std::pair{slept, p};
        };
        const auto [slept, short_ping] = eng.run(scenario(eng));
        INFO("slept " << ms(slept).count() << " ms; ping took "
                      << ms(short_ping.ended - short_ping.started).count() << " ms");
        // Each behind a 1 h timer: the engine's one timer must have been
        // pulled in for them, or they would end after an hour.
        CHECK(slept >= 15ms);
        CHECK(slept < 20s);
        CHECK(short_ping.result.status == ping_status::timeout);
        CHECK(short_ping.ended - short_ping.started >= 15ms);
        CHECK(short_ping.ended - short_ping.started < 20s);
        // stop() cancels the 1 h ping and wakes the 1 h sleeper early.
        eng.stop();
        CHECK(long_ping.result.status == ping_status::cancelled);
        CHECK_FALSE(long_sleep_result);
        // After stop, a sleep ends at once (without a loop turn), early.
        CHECK_FALSE(testing::run_sync(eng.sleep_for(1h)));
        require_balanced(eng.stats());
    }
    SECTION("a stop request wakes the sleeper at once with false; a requested token never "
            "sleeps") {
        engine eng;
        std::stop_source source;
        bool result = true;
        clock_type::duration took{};
        eng.spawn(
            [](engine& e, std::stop_token token, bool& out, clock_type::duration& t) -> task<void> {
                const auto t0 = clock_type::now();
                out = co_await e.sleep_for(1h, token);
                t = clock_type::now() - t0;
            }(eng, source.get_token(), result, took));
        auto stopper = [](engine& e, std::stop_source& s) -> task<void> {
            co_await e.sleep_for(10ms);
            s.request_stop();
            co_await e.sleep_for(1ms); // the woken sleeper runs in this turn
        };
        eng.run(stopper(eng, source));
        CHECK_FALSE(result); // woken early: a sleeper the stop request missed is still true
        CHECK(took >= 10ms); // the stop came after the stopper's 10 ms
        CHECK(took < 20s);   // and not after the hour
        // Already requested: the sleep ends when started, without a loop turn.
        CHECK_FALSE(testing::run_sync(eng.sleep_for(1h, source.get_token())));
    }
    SECTION("a sleep whose coroutine is destroyed mid-sleep is forgotten, its place reused") {
        engine eng;
        auto scenario = [](engine& e) -> task<bool> {
            {
                task<bool> inner = e.sleep_for(1h);
                // Start it by hand (no awaiter): it queues itself and suspends.
                icmpengine::detail::task_access::handle(inner).resume();
                REQUIRE_FALSE(inner.is_ready());
            } // destroyed here while queued
            co_return co_await e.sleep_for(5ms);
        };
        const auto t0 = clock_type::now();
        CHECK(eng.run(scenario(eng)));
        // A leftover 1 h sleeper holding the timer would make this an hour.
        CHECK(clock_type::now() - t0 < 20s);
        // Nothing left behind: with no sleeper queued, waiting for something
        // the engine does not drive is still reported (a leftover would block
        // run() for an hour), and stop() touches no dead sleeper.
        auto stuck = []() -> task<void> { co_await never{}; };
        CHECK_THROWS_AS(eng.run(stuck()), std::logic_error);
        eng.stop();
    }
}
