// SPDX-License-Identifier: MIT
// System tests of fping's retry semantics in ping_fanout's single-shot mode:
// the backoff of series_options::backoff and the late-reply credit of
// series_options::credit_late_replies. support/system_main.cpp has moved
// this process into a private network namespace; pings go into the network
// simulator (support/netsim.hpp) there.
//
// No test waits on a sleep: a late reply is held back by the simulator
// (reorder=1) until the test has seen the next attempt leave, and then
// released by a reply to another target, so "attempt 1 left before the reply
// to attempt 0 came" holds on any machine.
#include <catch2/catch.hpp>

#include "engine_test.hpp"
#include "netsim.hpp"
#include "sim_targets.hpp"

#include <icmpengine/icmpengine.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <stdexcept>
#include <vector>

using namespace std::chrono_literals;
using icmpengine::engine;
using icmpengine::fanout_options;
using icmpengine::ip_address;
using icmpengine::ping_event;
using icmpengine::ping_fanout;
using icmpengine::ping_status;
using icmpengine::series_options;
using icmpengine::series_result;
using icmpengine::stray_event;
using icmpengine::stray_reply;
using icmpengine::task;
namespace testing = icmpengine::testing;

namespace {

using clock_type = std::chrono::steady_clock;
using ms = std::chrono::duration<double, std::milli>;
using testing::addr;
using testing::requests_to;
using testing::simulated;

/// What a held-back late reply scenario saw, in the engine's order.
struct timeline {
    std::vector<std::string> events;
    void add(std::string e) { events.push_back(std::move(e)); }
};

/// Pings 198.18.0.7 in single-shot mode. The simulator holds the reply to
/// attempt 0 back (reorder); once attempt 0 has timed out every later
/// request to .7 is lost. When attempt `release_after` has left, a ping to
/// 198.18.0.8 makes the simulator write its reply, and the held reply to
/// attempt 0 right after it: a late reply that comes while attempt
/// `release_after` is in flight.
series_result late_reply_scenario(testing::network_simulator& sim, series_options series,
                                  std::uint64_t release_after, timeline& seen) {
    const ip_address slow = addr("198.18.0.7");
    fanout_options options{.series = series};
    options.on_ping = [&](const ping_event& e) {
        seen.add("ping " + std::to_string(e.index) + " " + std::string(to_string(e.result.status)));
        // Called before the next attempt is started: it is read after this.
        if (e.index == 0)
            sim.set_profile(testing::profile::parse("198.18.0.7:loss=1"));
    };
    options.on_stray = [&](const stray_event& e) {
        seen.add(std::string(e.credited ? "credited" : "late") + " stray");
    };
    ping_fanout fan(std::vector<ip_address>{slow}, options);
    engine eng({.on_stray = [&fan](const stray_reply& r) { fan.on_stray(r); }});
    auto release = [](engine& e, ping_fanout& f, std::uint64_t after, timeline& t) -> task<void> {
        const bool sent = co_await testing::wait_until(
            e, [&] { return f.series()[0].sent > after || f.series()[0].finished; }, 50s);
        CHECK(sent);
        t.add("release");
        const auto r = co_await e.ping(addr("198.18.0.8"), 20s);
        CHECK(r.status == ping_status::reply);
    };
    auto body = [&](engine& e) -> task<void> {
        e.spawn(release(e, fan, release_after, seen));
        co_await fan.run(e);
        // Let the releasing ping and a late stray that may follow settle.
        const bool settled = co_await testing::wait_until(
            e, [&] { return eng.stats().in_flight == 0 && fan.progress().late_replies > 0; }, 50s);
        CHECK(settled);
    };
    eng.run(body(eng));
    testing::require_balanced(eng.stats());
    return fan.series()[0];
}

} // namespace

TEST_CASE("attempt_timeout: fping's float arithmetic, capped", "[series][retry]") {
    series_options o{.count = 4, .timeout = 500ms, .until_reply = true, .backoff = 1.5};
    // fping 5.1's default tries: 500 ms, 750 ms, then float rounding shows.
    CHECK(icmpengine::attempt_timeout(o, 0) == 500ms);
    CHECK(icmpengine::attempt_timeout(o, 1) == 750ms);
    CHECK(icmpengine::attempt_timeout(o, 2) == std::chrono::nanoseconds(1'124'999'936));
    CHECK(icmpengine::attempt_timeout(o, 3) == std::chrono::nanoseconds(1'687'499'904));
    o.timeout = 200ms;
    o.backoff = 1.1; // fping -t 200 -B 1.1: 220, 242, 266.2, 292.82 ms
    CHECK(icmpengine::attempt_timeout(o, 1) == 220ms);
    CHECK(icmpengine::attempt_timeout(o, 4) == std::chrono::nanoseconds(292'820'000));
    o.backoff = 5.0;
    CHECK(icmpengine::attempt_timeout(o, 1'000'000) == icmpengine::max_ping_timeout);
    o.backoff = 1.0;
    CHECK(icmpengine::attempt_timeout(o, 7) == 200ms);
    o.backoff = 2.0;
    o.until_reply = false; // fping ignores -B with -c, -C and -l
    CHECK(icmpengine::attempt_timeout(o, 3) == 200ms);
}

TEST_CASE("a backoff outside fping's 1.0 .. 5.0 is refused, naming the value",
          "[series][retry][args]") {
    const std::vector<ip_address> one{addr("198.18.0.1")};
    for (const double bad : {0.5, 0.999, 5.01, 50.0, std::numeric_limits<double>::quiet_NaN()}) {
        INFO("backoff " << bad);
        try {
            ping_fanout fan(one, {.series = {.count = 4, .until_reply = true, .backoff = bad}});
            FAIL("accepted");
        } catch (const std::invalid_argument& e) {
            CHECK(std::string(e.what()).find("backoff") != std::string::npos);
        }
    }
    CHECK_NOTHROW(ping_fanout(one, {.series = {.count = 4, .until_reply = true, .backoff = 5.0}}));
    CHECK_NOTHROW(ping_fanout(one, {.series = {.count = 4, .until_reply = true, .backoff = 1.0}}));
}

TEST_CASE("backoff: attempt k waits timeout x backoff^k; a silent host gets 1 + retries tries",
          "[series][retry]") {
    testing::network_simulator sim(simulated("198.18.0.9:loss=1", "retry backoff"));
    // fping -t 20 -B 2 -r 3: tries wait 20, 40, 80 and 160 ms.
    const series_options o{.count = 4,
                           .timeout = 20ms,
                           .until_reply = true,
                           .backoff = 2.0,
                           .credit_late_replies = true};
    std::vector<clock_type::time_point> ended;
    ping_fanout fan(std::vector<ip_address>{addr("198.18.0.9")},
                    {.series = o, .on_ping = [&](const ping_event& e) {
                         CHECK(e.result.status == ping_status::timeout);
                         CHECK(e.index == ended.size());
                         ended.push_back(clock_type::now());
                     }});
    engine eng({.on_stray = [&fan](const stray_reply& r) { fan.on_stray(r); }});
    const auto start = clock_type::now();
    eng.run(fan.run(eng));
    const series_result& s = fan.series()[0];
    CHECK(s.finished);
    CHECK_FALSE(s.alive());
    CHECK(s.sent == 4);
    CHECK(s.statistics.timeouts() == 4);
    REQUIRE(ended.size() == 4);
    // Attempt k leaves after attempt k - 1 was reported (one at a time) and
    // is reported no earlier than its own timeout after that: the gaps
    // between the reports are at least the attempts' timeouts.
    CHECK(ended[0] - start >= 20ms);
    for (std::size_t k = 1; k < 4; ++k) {
        INFO("attempt " << k << " ended " << ms(ended[k] - ended[k - 1]).count()
                        << " ms after attempt " << k - 1);
        CHECK(ended[k] - ended[k - 1] >= icmpengine::attempt_timeout(o, k));
    }
    // The simulator saw exactly the four tries, and no fifth.
    CHECK(sim.wait_for_requests(4, 50s));
    CHECK(requests_to(sim, "198.18.0.9").size() == 4);
}

TEST_CASE("credit: a late reply to attempt 0 while attempt 1 is in flight makes the host alive",
          "[series][retry][credit]") {
    // fping -t 1000 -B 5: attempt 1 waits 5 s, so the reply to attempt 0
    // (released just after attempt 1 left, so at least 1 s after attempt 0)
    // comes well within it on any machine.
    testing::network_simulator sim(simulated("198.18.0.7:reorder=1:60s", "retry credit"));
    timeline seen;
    const series_result s = late_reply_scenario(sim,
                                                {.count = 4,
                                                 .timeout = 1s,
                                                 .until_reply = true,
                                                 .backoff = 5.0,
                                                 .credit_late_replies = true},
                                                1, seen);
    INFO([&] {
        std::string all;
        for (const auto& e : seen.events)
            all += e + "; ";
        return all;
    }());
    CHECK(s.finished);
    CHECK(s.alive());
    REQUIRE(s.credited_rtt.has_value());
    CHECK(*s.credited_rtt >= 1s); // from attempt 0's send, past its timeout
    CHECK(*s.credited_rtt <= 5s); // the credit rule: within attempt 1's timeout
    // Honest counts: attempt 0 timed out, attempt 1 was cancelled, no more.
    CHECK(s.sent == 2);
    REQUIRE(s.results.size() == 2);
    CHECK(s.results[0].status == ping_status::timeout);
    CHECK(s.results[1].status == ping_status::cancelled);
    CHECK(s.statistics.received() == 0);
    CHECK(s.statistics.timeouts() == 1);
    CHECK(s.statistics.cancelled() == 1);
    CHECK(s.late_replies == 1);
    // The order of events: the credit cancels attempt 1.
    CHECK(seen.events == std::vector<std::string>{"ping 0 timeout", "release", "credited stray",
                                                  "ping 1 cancelled"});
    CHECK(requests_to(sim, "198.18.0.7").size() == 2);
}

TEST_CASE("credit off: the late reply is counted late, the series goes on as before",
          "[series][retry][credit]") {
    testing::network_simulator sim(simulated("198.18.0.7:reorder=1:60s", "retry no credit"));
    timeline seen;
    const series_result s = late_reply_scenario(
        sim, {.count = 2, .timeout = 1s, .until_reply = true, .backoff = 5.0}, 1, seen);
    // (Attempt 1 waits 5 s: the released reply comes well within it.)
    CHECK(s.finished);
    CHECK_FALSE(s.alive());
    CHECK_FALSE(s.credited_rtt.has_value());
    CHECK(s.sent == 2);
    CHECK(s.statistics.timeouts() == 2);
    CHECK(s.statistics.cancelled() == 0);
    CHECK(s.late_replies == 1);
    CHECK(seen.events ==
          std::vector<std::string>{"ping 0 timeout", "release", "late stray", "ping 1 timeout"});
}

TEST_CASE("credit: a late reply older than the timeout of the try in flight is dropped, as "
          "fping drops it",
          "[series][retry][credit]") {
    // Three tries of 200 ms each (no backoff); the reply to attempt 0 is
    // released once attempt 2 has left, so its RTT is at least 400 ms, more
    // than attempt 2's 200 ms: fping drops it, and so does the credit.
    testing::network_simulator sim(simulated("198.18.0.7:reorder=1:60s", "retry old reply"));
    timeline seen;
    const series_result s = late_reply_scenario(
        sim, {.count = 3, .timeout = 200ms, .until_reply = true, .credit_late_replies = true}, 2,
        seen);
    CHECK(s.finished);
    CHECK_FALSE(s.alive());
    CHECK_FALSE(s.credited_rtt.has_value());
    CHECK(s.sent == 3);
    CHECK(s.statistics.timeouts() == 3);
    CHECK(s.late_replies == 1);
}
