// SPDX-License-Identifier: MIT
// System tests of icmpengine::ping_series and icmpengine::ping_fanout.
// support/system_main.cpp has moved this process into a private network
// namespace: pings go to loopback there, or into the network simulator
// (support/netsim.hpp), whose TUN device lives in the same namespace.
#include <catch2/catch.hpp>

#include "engine_test.hpp"
#include "lo_capture.hpp"
#include "netns.hpp"
#include "netsim.hpp"
#include "sim_targets.hpp"

#include <icmpengine/icmpengine.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using icmpengine::engine;
using icmpengine::fanout_options;
using icmpengine::ip_address;
using icmpengine::ping_event;
using icmpengine::ping_fanout;
using icmpengine::ping_result;
using icmpengine::ping_status;
using icmpengine::series_options;
using icmpengine::series_result;
using icmpengine::stray_reply;
using icmpengine::task;
namespace testing = icmpengine::testing;

namespace {

using clock_type = std::chrono::steady_clock;
using ms = std::chrono::duration<double, std::milli>;
using testing::addr;
using testing::lo_capture;
using testing::requests_to;
using testing::simulated;

/// Runs a fan-out on an engine whose stray replies go to it, then keeps the
/// loop turning until `settled()` holds (for strays that come after the
/// last ping ended), or for at most 20 s.
void run_fanout(ping_fanout& fan, std::function<bool()> settled = {},
                icmpengine::engine_config config = {}) {
    config.on_stray = [&fan](const stray_reply& s) { fan.on_stray(s); };
    engine eng(config);
    auto body = [](engine& e, ping_fanout& f, std::function<bool()> done) -> task<void> {
        co_await f.run(e);
        if (done) {
            const bool settled_in_time = co_await testing::wait_until(e, done, 20s);
            CHECK(settled_in_time);
        }
    };
    eng.run(body(eng, fan, std::move(settled)));
}

/// Stops `fan` with request_stop() once `ready()` holds, from a coroutine on
/// the engine; returns how many pings the fan-out had handed to the engine
/// at the stop (nothing is sent in between: the engine's thread runs one
/// coroutine at a time).
task<void> stop_when(engine& eng, ping_fanout& fan, std::function<bool()> ready,
                     std::uint64_t& sent_at_stop) {
    const bool ready_in_time = co_await testing::wait_until(eng, ready, 20s);
    CHECK(ready_in_time);
    sent_at_stop = fan.progress().sent;
    fan.request_stop();
}

/// Mean and population standard deviation the two-pass way, for checking
/// the statistics' online results.
std::pair<double, double> two_pass(const std::vector<double>& xs) {
    double sum = 0;
    for (double x : xs)
        sum += x;
    const double mean = sum / static_cast<double>(xs.size());
    double ss = 0;
    for (double x : xs)
        ss += (x - mean) * (x - mean);
    return {mean, std::sqrt(ss / static_cast<double>(xs.size()))};
}

} // namespace

TEST_CASE("a series sends on schedule without waiting for replies", "[series]") {
    // Replies take a second: a series that waited for each reply before the
    // next ping would send its second request only after the first reply.
    testing::network_simulator sim(simulated("delay=1s", "series schedule"));
    engine eng;
    const auto t0 = clock_type::now();
    const series_result s = eng.run(icmpengine::ping_series(
        eng, addr("198.18.0.2"), {.count = 5, .period = 10ms, .timeout = 5s}));
    const auto took = clock_type::now() - t0;
    INFO("took " << ms(took).count() << " ms");
    CHECK(took >= 40ms + 1s); // the last ping leaves 40 ms in, its reply a second later
    REQUIRE(s.finished);
    CHECK(s.target == addr("198.18.0.2"));
    REQUIRE(s.results.size() == 5);
    for (const ping_result& r : s.results) {
        CHECK(r.status == ping_status::reply);
        CHECK(r.rtt >= 1s);
    }
    for (std::size_t k = 1; k < 5; ++k)
        CHECK(s.results[k].sequence != s.results[k - 1].sequence);
    CHECK(s.sent == 5);
    CHECK(s.in_flight == 0);
    CHECK(s.statistics.resolved() == 5);
    CHECK(s.statistics.received() == 5);
    CHECK(s.statistics.loss_fraction() == 0.0);
    CHECK(s.statistics.rtt_min() >= 1s);
    CHECK(s.alive());
    // By the simulator's record: every request arrived before the first
    // reply was written (40 ms of sends against a 1 s delay; only a machine
    // stalled for most of a second could reorder them).
    const auto records = requests_to(sim, "198.18.0.2");
    REQUIRE(records.size() == 5);
    REQUIRE_FALSE(records[0].writes.empty());
    for (const auto& r : records) {
        INFO(r.to_string());
        CHECK(r.received < records[0].writes[0].written);
    }
}

TEST_CASE("ping k leaves at t0 + k x period by the kernel's clock, never on the previous send's",
          "[series]") {
    // When ping 1's reply arrives, the engine's thread is blocked for 1.5 s
    // (7.5 periods): pings 2..5 fall due meanwhile. On a schedule counted from
    // ping 0 they all leave together when the block ends; counted from the
    // previous send they would leave a period apart. The send times are the
    // kernel's (captured on lo), free of the jitter of any reader.
    lo_capture sent;
    constexpr auto period = 200ms;
    std::chrono::nanoseconds unblocked{0};
    ping_fanout fan(std::vector<ip_address>{addr("127.0.0.1")},
                    {.series = {.count = 6, .period = period, .timeout = 5s},
                     .on_ping = [&](const ping_event& e) {
                         if (e.index != 1)
                             return;
                         std::this_thread::sleep_for(1500ms); // blocks the loop on purpose
                         unblocked = testing::realtime_now();
                     }});
    const std::chrono::nanoseconds before = testing::realtime_now();
    run_fanout(fan);
    CHECK(fan.series()[0].statistics.received() == 6);
    const auto at = sent.send_times();
    REQUIRE(at.size() == 6);
    for (std::size_t k = 0; k < at.size(); ++k) {
        INFO("ping " << k << " left " << ms(at[k] - before).count() << " ms after the start");
        // Never before its time: ping k is due k periods after ping 0, which
        // was sent after `before`.
        CHECK(at[k] - before >= period * static_cast<int>(k));
    }
    // The first ping after the block, and those after it: all due by then
    // (ping 5 at 1 s < 200 ms + 1.5 s), so they leave in one burst.
    std::size_t first_late = 0;
    while (first_late < at.size() && at[first_late] < unblocked)
        ++first_late;
    INFO("pings " << first_late << "..5 left after the block");
    REQUIRE(first_late >= 2);
    REQUIRE(first_late <= 3);
    // One submission's worth of sends: microseconds apart. Counted from the
    // previous send, each would be about a period (200 ms) after the one
    // before; only a stall of 100 ms in every gap fails this.
    auto smallest_gap = at[first_late + 1] - at[first_late];
    for (std::size_t k = first_late + 1; k < 5; ++k)
        smallest_gap = std::min(smallest_gap, at[k + 1] - at[k]);
    CHECK(smallest_gap < period / 2);
}

TEST_CASE("an unpaced fan-out sends each period's pings together, none before its time",
          "[series]") {
    // The series start on a grid shared by all targets (a tenth of the
    // period, at most 1 ms), so ping k of every target is due at the same
    // time (or one grid step later), well before any target's ping k + 1:
    // the engine hands all of period k's pings to the kernel before any of
    // period k + 1's, however late it runs.
    testing::scoped_sysctl ignore("net.ipv4.icmp_echo_ignore_all", "1");
    lo_capture sent;
    constexpr std::uint32_t n = 200;
    constexpr int count = 5;
    constexpr auto period = 20ms;
    std::vector<ip_address> targets;
    for (std::uint32_t i = 0; i < n; ++i)
        targets.push_back(ip_address::from_v4(0x7f020001 + i));
    ping_fanout fan(targets, {.series = {.count = count, .period = period, .timeout = 10ms}});
    const std::chrono::nanoseconds before = testing::realtime_now();
    run_fanout(fan);
    CHECK(fan.progress().targets_finished == n);
    // In the order the kernel sent them: each request's number in its series.
    std::map<std::string, int> seen;
    std::vector<int> index_in_order;
    for (const testing::wire_request& w : sent.requests()) {
        const int k = seen[w.destination]++;
        index_in_order.push_back(k);
        INFO("request " << index_in_order.size() - 1 << ": ping " << k << " to " << w.destination
                        << " at " << ms(w.sent - before).count() << " ms");
        CHECK(w.sent - before >= period * k); // never before its time
    }
    REQUIRE(seen.size() == n);
    for (const auto& [destination, pings] : seen) {
        INFO(destination);
        CHECK(pings == count);
    }
    REQUIRE(index_in_order.size() == std::size_t{n} * count);
    // Period k's n pings, then period k + 1's: the indices never go down.
    CHECK(std::is_sorted(index_in_order.begin(), index_in_order.end()));
}

TEST_CASE("a series on loopback, both families", "[series]") {
    engine eng;
    for (const char* target : {"127.0.0.1", "::1"}) {
        INFO(target);
        const series_result s = eng.run(icmpengine::ping_series(
            eng, addr(target),
            {.count = 3, .period = 5ms, .timeout = 1s, .ping = {.payload_size = 100}}));
        REQUIRE(s.results.size() == 3);
        for (const ping_result& r : s.results) {
            CHECK(r.status == ping_status::reply);
            CHECK(r.bytes == 100);
        }
        CHECK(s.statistics.received() == 3);
        CHECK(s.statistics.rtt_stddev_population().has_value());
    }
}

TEST_CASE("statistics are exact against what the simulator did", "[series][stats]") {
    testing::network_simulator sim(
        simulated("delay=uniform:1ms:9ms,loss=0.3;198.18.0.9:loss=1", "series exact"));
    // A reply (at most 9 ms) is never near the timeout, however busy the machine.
    ping_fanout fan(std::vector<ip_address>{addr("198.18.0.3"), addr("198.18.0.9")},
                    {.series = {.count = 30, .period = 2ms, .timeout = 2s}});
    run_fanout(fan);
    const series_result& lossy = fan.series()[0];
    const auto records = requests_to(sim, "198.18.0.3");
    REQUIRE(records.size() == 30);
    std::uint64_t dropped = 0;
    for (const auto& r : records)
        dropped += r.fate == testing::request_fate::dropped ? 1 : 0;
    INFO("dropped " << dropped);
    CHECK(lossy.statistics.resolved() == 30);
    CHECK(lossy.statistics.timeouts() == dropped);
    CHECK(lossy.statistics.received() == 30 - dropped);
    CHECK(lossy.statistics.loss_fraction() == Approx(static_cast<double>(dropped) / 30.0));
    // RTT statistics over the replies only, matching a two-pass computation.
    std::vector<double> rtts;
    for (const ping_result& r : lossy.results)
        if (r.status == ping_status::reply)
            rtts.push_back(static_cast<double>(r.rtt.count()));
        else
            CHECK(r.rtt == 0ns);
    REQUIRE(rtts.size() == 30 - dropped);
    const auto [mean, sd] = two_pass(rtts);
    CHECK(lossy.statistics.rtt_mean()->count() == Approx(mean).epsilon(1e-9));
    CHECK(lossy.statistics.rtt_stddev_population()->count() == Approx(sd).epsilon(1e-6));
    CHECK(lossy.statistics.rtt_min()->count() ==
          static_cast<std::int64_t>(*std::min_element(rtts.begin(), rtts.end())));
    CHECK(lossy.statistics.rtt_max()->count() ==
          static_cast<std::int64_t>(*std::max_element(rtts.begin(), rtts.end())));
    const series_result& dead = fan.series()[1];
    CHECK(dead.statistics.resolved() == 30);
    CHECK(dead.statistics.received() == 0);
    CHECK(dead.statistics.loss_fraction() == 1.0);
    CHECK_FALSE(dead.statistics.rtt_mean());
    CHECK_FALSE(dead.alive());
    CHECK(fan.progress().targets_alive == 1);
    CHECK(fan.progress().targets_finished == 2);
    CHECK(fan.progress().replies == 30 - dropped);
    CHECK(fan.progress().timeouts == 30 + dropped);
    CHECK(fan.progress().sent == 60);
    CHECK(fan.progress().in_flight == 0);
}

TEST_CASE("duplicates, late replies and ICMP errors are attributed to their target",
          "[series][stray]") {
    // Replies come at once and late ones a second after the timeout: only a
    // machine stalled for a second could turn either into the other.
    testing::network_simulator sim(simulated("198.18.0.4:dup=1:2:1ms;198.18.0.5:late=1:2s;"
                                             "198.18.0.6:error=unreach:1;"
                                             "[2001:db8:5::4]:dup=1:1",
                                             "series strays"));
    std::vector<std::pair<std::size_t, stray_reply::kind>> strays;
    ping_fanout fan(std::vector<ip_address>{addr("198.18.0.4"), addr("198.18.0.5"),
                                            addr("198.18.0.6"), addr("2001:db8:5::4")},
                    {.series = {.count = 4, .period = 5ms, .timeout = 1s},
                     .on_stray = [&](const icmpengine::stray_event& e) {
                         strays.emplace_back(e.target, e.reply.what);
                         CHECK(e.series.target == fan.series()[e.target].target);
                         CHECK_FALSE(e.credited);
                         // The engine still knows the send of the ping each
                         // answers: the late ones came 2 s after it.
                         CHECK(e.reply.rtt.has_value());
                         if (e.reply.what == stray_reply::kind::late && e.reply.rtt)
                             CHECK(*e.reply.rtt >= 2s);
                     }});
    // The late replies come 2 s after their pings, after the fan-out ended:
    // the loop keeps turning until the engine has counted all of them.
    run_fanout(fan, [&] { return fan.progress().late_replies >= 4; });
    const series_result& dup = fan.series()[0];
    CHECK(dup.statistics.received() == 4);
    CHECK(dup.statistics.duplicates() == 8);
    CHECK(dup.statistics.rtt_history().empty());
    CHECK(dup.late_replies == 0);
    const series_result& late = fan.series()[1];
    CHECK(late.statistics.received() == 0);
    CHECK(late.statistics.timeouts() == 4);
    CHECK(late.late_replies == 4);
    CHECK(late.statistics.duplicates() == 0);
    const series_result& error = fan.series()[2];
    CHECK(error.statistics.resolved() == 4);
    CHECK(error.statistics.icmp_errors() == 4);
    CHECK(error.statistics.received() == 0);
    CHECK(error.statistics.loss_fraction() == 1.0);
    for (const ping_result& r : error.results) {
        CHECK(r.status == ping_status::unreachable);
        CHECK(r.from == addr("198.18.255.254")); // the simulator's router
    }
    CHECK(fan.series()[3].statistics.duplicates() == 4);
    CHECK(fan.progress().duplicates == 12);
    CHECK(fan.progress().late_replies == 4);
    CHECK(fan.progress().icmp_errors == 4);
    CHECK(std::count_if(strays.begin(), strays.end(), [](const auto& s) {
              return s.first == 1 && s.second == stray_reply::kind::late;
          }) == 4);
    CHECK(strays.size() == 16);
}

TEST_CASE("out-of-order replies are counted", "[series][stats]") {
    testing::network_simulator sim(simulated("delay=uniform:0ms:40ms", "series reorder"));
    ping_fanout fan(std::vector<ip_address>{addr("198.18.0.7")},
                    {.series = {.count = 20, .period = 2ms, .timeout = 1s}});
    run_fanout(fan);
    const series_result& s = fan.series()[0];
    CHECK(s.statistics.received() == 20);
    // Reconstruct the arrival order from the simulator's write times.
    auto records = requests_to(sim, "198.18.0.7");
    REQUIRE(records.size() == 20);
    std::sort(records.begin(), records.end(), [](const auto& a, const auto& b) {
        return a.writes.at(0).written < b.writes.at(0).written;
    });
    // Request index in send order: the simulator numbers them on arrival,
    // which is send order for one target on one link.
    std::uint64_t expected = 0;
    std::uint64_t highest = 0;
    bool any = false;
    const std::uint64_t first = requests_to(sim, "198.18.0.7").front().index;
    for (const auto& r : records) {
        const std::uint64_t k = r.index - first;
        if (any && k < highest)
            ++expected;
        else
            highest = k;
        any = true;
    }
    INFO("expected out of order " << expected);
    CHECK(expected > 0);
    // Writes microseconds apart may reach the socket in either order.
    CHECK(s.statistics.out_of_order() >= expected - std::min<std::uint64_t>(expected, 2));
    CHECK(s.statistics.out_of_order() <= expected + 2);
}

TEST_CASE("single-shot mode retries after a timeout and stops at the first reply",
          "[series][retry]") {
    testing::scoped_sysctl ignore("net.ipv4.icmp_echo_ignore_all", "1");
    lo_capture sent;
    std::vector<testing::wire_request> requests;
    auto attempts_sent = [&] {
        for (testing::wire_request& w : sent.requests())
            requests.push_back(std::move(w));
        return std::count_if(requests.begin(), requests.end(),
                             [](const auto& w) { return w.destination == "127.0.0.8"; });
    };
    ping_fanout fan(std::vector<ip_address>{addr("127.0.0.8"), addr("::1")},
                    {.series = {.count = 3, .timeout = 50ms, .until_reply = true},
                     .on_ping = [&](const ping_event& e) {
                         if (e.target != 0)
                             return;
                         // One at a time: when attempt k has timed out,
                         // attempt k + 1 has not been sent yet.
                         INFO("attempt " << e.index << " ended");
                         CHECK(e.result.status == ping_status::timeout);
                         CHECK(attempts_sent() == static_cast<std::ptrdiff_t>(e.index) + 1);
                     }});
    const std::chrono::nanoseconds before = testing::realtime_now();
    const auto t0 = clock_type::now();
    run_fanout(fan);
    const auto took = clock_type::now() - t0;
    const series_result& dead = fan.series()[0];
    CHECK(dead.sent == 3);
    CHECK(dead.statistics.timeouts() == 3);
    CHECK(took >= 150ms); // three 50 ms timeouts, one after another
    CHECK(attempts_sent() == 3);
    REQUIRE(requests.size() == 4); // three attempts to 127.0.0.8, one ping to ::1
    std::int64_t k = 0;
    for (const testing::wire_request& w : requests) {
        if (w.destination != "127.0.0.8")
            continue;
        // Attempt k leaves after k timeouts, each counted from a send after `before`.
        INFO("attempt " << k << " left " << ms(w.sent - before).count() << " ms after the start");
        CHECK(w.sent - before >= 50ms * k);
        ++k;
    }
    const series_result& alive = fan.series()[1];
    CHECK(alive.sent == 1);
    CHECK(alive.statistics.received() == 1);
    CHECK(alive.alive());
}

TEST_CASE("a global pace spaces every request of the fan-out", "[series][pace]") {
    std::vector<ip_address> targets;
    for (std::uint32_t i = 1; i <= 10; ++i)
        targets.push_back(ip_address::from_v4(0x7f010000u + i)); // 127.1.0.x
    lo_capture sent;
    // Request i leaves at least i paces after the start, by the kernel's
    // clock: each turn of the pace is measured from when the previous
    // request was handed to the engine. (Not each gap on the wire: a request
    // that left late, its process preempted after handing it over, shortens
    // the gap to the next one.)
    auto check_pace = [&](std::size_t n, std::chrono::nanoseconds pace,
                          std::chrono::nanoseconds before) {
        const auto at = sent.send_times();
        REQUIRE(at.size() == n);
        for (std::size_t i = 0; i < at.size(); ++i) {
            INFO("request " << i << " left " << ms(at[i] - before).count()
                            << " ms after the start");
            CHECK(at[i] - before >= pace * static_cast<std::int64_t>(i));
        }
    };
    SECTION("pace 8 ms, one ping each") {
        ping_fanout fan(targets, {.series = {.count = 1, .timeout = 1s}, .pace = 8ms});
        const std::chrono::nanoseconds before = testing::realtime_now();
        run_fanout(fan);
        check_pace(10, 8ms, before);
        CHECK(fan.progress().targets_alive == 10);
    }
    SECTION("pace and period together: the slower one rules") {
        const std::vector<ip_address> two(targets.begin(), targets.begin() + 2);
        ping_fanout fan(two, {.series = {.count = 3, .period = 5ms, .timeout = 1s}, .pace = 10ms});
        const std::chrono::nanoseconds before = testing::realtime_now();
        run_fanout(fan);
        check_pace(6, 10ms, before);
    }
    SECTION("a tiny pace with many targets: no deep recursion, every ping sent once") {
        std::vector<ip_address> many;
        for (std::uint32_t i = 1; i <= 3000; ++i)
            many.push_back(ip_address::from_v4(0x7f020000u + i));
        ping_fanout fan(many, {.series = {.count = 1, .timeout = 1s}, .pace = 1ns});
        run_fanout(fan);
        CHECK(fan.progress().replies == 3000);
        CHECK(sent.requests().size() == 3000);
    }
    SECTION("a stop while many wait for their turn releases them all") {
        std::vector<ip_address> many;
        for (std::uint32_t i = 1; i <= 2000; ++i)
            many.push_back(ip_address::from_v4(0x7f030000u + i));
        ping_fanout fan(many, {.series = {.count = 1, .timeout = 1s}, .pace = 5ms});
        engine eng;
        std::uint64_t sent_at_stop = 0;
        eng.spawn(stop_when(
            eng, fan, [&] { return fan.progress().sent >= 3; }, sent_at_stop));
        eng.run(fan.run(eng));
        CHECK(fan.progress().targets_finished == 2000);
        CHECK(sent_at_stop >= 3);
        CHECK(fan.progress().sent == sent_at_stop); // none of the waiting ones was sent
        CHECK(sent.requests().size() == sent_at_stop);
    }
    SECTION("unpaced, all at once") {
        // Every ping is handed to the engine before the first result comes
        // back (a pace would hold the others back for a turn each).
        std::uint64_t sent_at_first_result = 0;
        ping_fanout fan(targets,
                        {.series = {.count = 1, .timeout = 1s}, .on_ping = [&](const ping_event&) {
                             if (sent_at_first_result == 0)
                                 sent_at_first_result = fan.progress().sent;
                         }});
        run_fanout(fan);
        CHECK(sent_at_first_result == 10);
        CHECK(fan.progress().replies == 10);
    }
}

TEST_CASE("request_stop: no more sends, pings in flight still resolve", "[series][stop]") {
    testing::network_simulator sim(simulated("delay=100ms", "series stop"));
    ping_fanout fan(std::vector<ip_address>{addr("198.18.0.11"), addr("2001:db8:5::11")},
                    {.series = {.count = 0, .period = 10ms, .timeout = 5s, .keep_results = false}});
    engine eng({.on_stray = [&](const stray_reply& s) { fan.on_stray(s); }});
    std::uint64_t started_at_stop = 0;
    eng.spawn(stop_when(
        eng, fan, [&] { return fan.progress().sent >= 4; }, started_at_stop));
    const auto t0 = clock_type::now();
    eng.run(fan.run(eng));
    const auto took = clock_type::now() - t0;
    INFO("took " << ms(took).count() << " ms, started " << started_at_stop);
    CHECK(fan.stop_requested());
    CHECK(started_at_stop >= 4);
    CHECK(fan.progress().sent == started_at_stop); // nothing sent after the stop
    CHECK(sim.requests().size() == started_at_stop);
    // The in-flight pings were waited for: their replies came 100 ms after them.
    CHECK(took >= 100ms);
    for (const series_result& s : fan.series()) {
        CHECK(s.finished);
        CHECK(s.results.empty()); // keep_results = false
        CHECK(s.in_flight == 0);
        CHECK(s.statistics.resolved() == s.sent);
        CHECK(s.statistics.received() == s.sent);
        CHECK(s.statistics.cancelled() == 0);
    }
}

TEST_CASE("engine::stop cancels pings in flight; they are left out of the statistics",
          "[series][stop]") {
    testing::network_simulator sim(simulated("loss=1", "series cancel"));
    ping_fanout fan(std::vector<ip_address>{addr("198.18.0.12")},
                    {.series = {.count = 0, .period = 10ms, .timeout = 1h}});
    engine eng;
    std::uint64_t sent_at_stop = 0;
    eng.spawn([](engine& e, ping_fanout& f, std::uint64_t& at_stop) -> task<void> {
        const bool ready = co_await testing::wait_until(
            e, [&f] { return f.progress().sent >= 3; }, 20s);
        CHECK(ready);
        at_stop = f.progress().sent;
        e.stop();
    }(eng, fan, sent_at_stop));
    const auto t0 = clock_type::now();
    eng.run(fan.run(eng));
    // Cancelled, not waited for: the pings' timeout is an hour.
    CHECK(clock_type::now() - t0 < 20s);
    const series_result& s = fan.series()[0];
    CHECK(s.finished);
    CHECK(s.sent == sent_at_stop);
    CHECK(s.sent >= 3);
    CHECK(s.statistics.cancelled() == s.sent);
    CHECK(s.statistics.resolved() == 0);
    CHECK(s.statistics.loss_fraction() == 0.0);
    for (const ping_result& r : s.results)
        CHECK(r.status == ping_status::cancelled);
    CHECK(fan.progress().cancelled == s.sent);
}

TEST_CASE("a caller's stop token stops the fan-out like request_stop", "[series][stop]") {
    std::stop_source source;
    ping_fanout fan(
        std::vector<ip_address>{addr("127.0.0.1")},
        {.series = {.count = 0, .period = 5ms, .timeout = 1s, .stop = source.get_token()}});
    engine eng;
    eng.spawn([](engine& e, ping_fanout& f, std::stop_source& s) -> task<void> {
        const bool ready = co_await testing::wait_until(
            e, [&f] { return f.progress().sent >= 3; }, 20s);
        CHECK(ready);
        s.request_stop();
    }(eng, fan, source));
    eng.run(fan.run(eng));
    CHECK(fan.stop_requested());
    CHECK(fan.series()[0].sent >= 3);
    CHECK(fan.series()[0].statistics.received() == fan.series()[0].sent);
}

TEST_CASE("fan-out: duplicate targets are pinged once, first-seen order kept", "[series]") {
    const std::vector<ip_address> targets{addr("127.0.0.3"), addr("::1"), addr("127.0.0.3"),
                                          addr("127.0.0.2"), addr("::1")};
    std::vector<std::size_t> seen;
    ping_fanout fan(targets,
                    {.series = {.count = 2, .period = 1ms, .timeout = 1s, .rtt_history = 2},
                     .on_ping = [&](const ping_event& e) {
                         seen.push_back(e.target);
                         CHECK(e.series.statistics.resolved() >= 1);
                         CHECK(e.result.status == ping_status::reply);
                     }});
    REQUIRE(fan.series().size() == 3);
    CHECK(fan.series()[0].target == addr("127.0.0.3"));
    CHECK(fan.series()[1].target == addr("::1"));
    CHECK(fan.series()[2].target == addr("127.0.0.2"));
    CHECK(fan.progress().targets == 3);
    run_fanout(fan);
    CHECK(seen.size() == 6);
    for (const series_result& s : fan.series()) {
        REQUIRE(s.statistics.rtt_history().size() == 2);
        CHECK(s.statistics.rtt_history()[0].has_value());
        CHECK(s.statistics.rtt_history()[1].has_value());
    }
}

TEST_CASE("on_stray attributes by source address and ignores strangers", "[series][stray]") {
    ping_fanout fan(std::vector<ip_address>{addr("192.0.2.1"), addr("2001:db8::1")}, {});
    fan.on_stray({stray_reply::kind::duplicate, addr("2001:db8::1"), 7});
    fan.on_stray({stray_reply::kind::late, addr("192.0.2.1"), 8});
    fan.on_stray({stray_reply::kind::late, addr("192.0.2.1"), 9});
    fan.on_stray({stray_reply::kind::duplicate, addr("192.0.2.99"), 1});
    CHECK(fan.series()[0].late_replies == 2);
    CHECK(fan.series()[0].statistics.duplicates() == 0);
    CHECK(fan.series()[1].statistics.duplicates() == 1);
    CHECK(fan.progress().duplicates == 1);
    CHECK(fan.progress().late_replies == 2);
}

TEST_CASE("an exception from a callback stops the fan-out and is rethrown", "[series]") {
    int calls = 0;
    ping_fanout fan(
        std::vector<ip_address>{addr("127.0.0.1"), addr("::1")},
        {.series = {.count = 0, .period = 5ms, .timeout = 1s}, .on_ping = [&](const ping_event&) {
             if (++calls == 3)
                 throw std::runtime_error("callback boom");
         }});
    engine eng;
    CHECK_THROWS_WITH(eng.run(fan.run(eng)), "callback boom");
    CHECK(fan.stop_requested());
    for (const series_result& s : fan.series())
        CHECK(s.finished);
    CHECK_THROWS_AS(eng.run(fan.run(eng)), std::logic_error); // runs once
}

TEST_CASE("an exception from on_stray stops the fan-out and is rethrown by run()",
          "[series][stray]") {
    // 20 us timeouts on loopback: replies come late, so strays arrive from
    // inside the engine's completion processing.
    std::vector<ip_address> targets;
    for (std::uint32_t i = 0; i < 2000; ++i)
        targets.push_back(ip_address::from_v4(0x7f010001 + i));
    ping_fanout fan(targets, {.series = {.count = 3, .period = 10ms, .timeout = 20us},
                              .on_stray = [](const icmpengine::stray_event&) {
                                  throw std::runtime_error("on_stray failed");
                              }});
    engine eng({.on_stray = [&fan](const stray_reply& s) { fan.on_stray(s); }});
    CHECK_THROWS_WITH(eng.run(fan.run(eng)), "on_stray failed");
    CHECK(fan.progress().in_flight == 0);
    CHECK(fan.progress().targets_finished == targets.size());
    CHECK(eng.stats().in_flight == 0);
}

TEST_CASE("single-shot mode without an attempt limit ends when the engine stops",
          "[series][retry][stop]") {
    ping_fanout fan(std::vector<ip_address>{addr("127.0.0.1")},
                    {.series = {.count = 0, .timeout = 30ms, .until_reply = true}});
    engine eng({.fake_drop_probability = 1.0}); // every attempt times out
    std::uint64_t sent_at_stop = 0;
    auto body = [](engine& e, ping_fanout& f, std::uint64_t& at_stop) -> task<void> {
        auto stopper = [](engine& en, ping_fanout& fo, std::uint64_t& n) -> task<void> {
            const bool retried = co_await testing::wait_until(
                en, [&fo] { return fo.progress().sent >= 2; }, 20s);
            CHECK(retried);
            n = fo.progress().sent;
            en.stop();
        };
        e.spawn(stopper(e, f, at_stop));
        co_await f.run(e);
    };
    eng.run(body(eng, fan, sent_at_stop));
    const series_result& s = fan.series()[0];
    CHECK(s.finished);
    CHECK(s.sent >= 2);
    // The attempt in flight at the stop is cancelled; the series may start
    // one more, which the stopped engine cancels at once (the check for a
    // stopped engine comes before waiting for the previous attempt), and
    // then no other: without the stop it would retry forever.
    CHECK(s.sent <= sent_at_stop + 1);
    CHECK(s.statistics.cancelled() >= 1);
}

TEST_CASE("invalid options throw std::invalid_argument naming the value", "[series][args]") {
    const std::vector<ip_address> one{addr("127.0.0.1")};
    auto message = [&](fanout_options o) -> std::string {
        try {
            ping_fanout fan(one, std::move(o));
        } catch (const std::invalid_argument& e) {
            return e.what();
        }
        return "(no exception)";
    };
    CHECK_THAT(message({.series = {.timeout = 0ns}}), Catch::Contains("timeout = 0 ns"));
    CHECK_THAT(message({.series = {.timeout = -1s}}), Catch::Contains("timeout = -1000000000"));
    CHECK_THAT(message({.series = {.count = 5, .period = 0ns}}),
               Catch::Contains("period = 0 ns") && Catch::Contains("5 pings"));
    CHECK_THAT(message({.series = {.count = 0, .period = 0ns}}), Catch::Contains("unlimited"));
    CHECK_THAT(message({.series = {.ping = {.payload_size = 70000}}}),
               Catch::Contains("payload_size = 70000"));
    CHECK_THAT(message({.pace = -1ms}), Catch::Contains("pace = -1000000 ns"));
    // One ping needs no period; single-shot mode ignores it.
    CHECK(message({.series = {.count = 1, .period = 0ns}}) == "(no exception)");
    CHECK(message({.series = {.count = 3, .period = 0ns, .until_reply = true}}) ==
          "(no exception)");
    engine eng;
    CHECK_THROWS_AS(icmpengine::ping_series(eng, addr("127.0.0.1"), {.timeout = 0ns}),
                    std::invalid_argument);
}
