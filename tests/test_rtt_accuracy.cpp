// SPDX-License-Identifier: MIT
// RTT accuracy (issue 5, "Reliability"): how far the engine's measured
// round-trip times lie from the delays the network simulator injects
// (support/netsim.hpp), for 100 us, 1 ms and 10 ms and a delay-0 baseline.
//
// For every reply:
//   error   = rtt - injected delay: everything the engine, the kernel and the
//             simulator add on top of the truth;
//   error2  = rtt - (first write - request read), from the simulator's
//             record: only the path outside the simulator (send stamp ->
//             simulator read, simulator write -> kernel receive stamp),
//             without the simulator's own write lateness;
//   request = simulator read - ping() call: the request's way alone (from
//             just before the engine's send stamp), so error2 - request is
//             the reply's way back to the kernel's receive stamp.
// The test prints a table per configuration (simulator sleeping at
// SCHED_FIFO or busy-polling; engine send_batch 32 or 1; the engine's
// thread at SCHED_FIFO or not) and which did best: those figures are the
// measurement (the README's "Reliability" has them, and says that the 50 us
// p99 goal is not met on the development VM). It asserts only what holds on
// any machine, however loaded:
//   - every ping gets its reply, from its target, matching the simulator's
//     record of its request;
//   - no RTT is shorter than the injected delay, nor than the simulator's
//     own read-to-write time (the send time is taken before the request can
//     reach the simulator, the receive stamp after the reply was written);
//   - the median error of every row is below 1 s: what a wrong clock (wall
//     against monotonic, decades apart) or a unit error (the 10 ms row read
//     as microseconds or seconds) breaks, and a busy machine does not.
// No percentile is bounded: on a shared machine any tight bound is a coin
// toss.
#include <catch2/catch.hpp>

#include "netsim.hpp"
#include "realtime.hpp"

#include <icmpengine/icmpengine.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using icmpengine::engine;
using icmpengine::ip_address;
using icmpengine::ping_result;
using icmpengine::ping_status;
using icmpengine::task;
using std::chrono::nanoseconds;
namespace testing = icmpengine::testing;

namespace {

/// Pings per (delay, family): a few hundred, so that p99 is the 4th worst.
constexpr std::uint32_t pings_per_run = 400;
/// Concurrent pingers. Each sends once per period, staggered by period / 8,
/// so pings overlap (up to ~7 in flight at 10 ms) but are rarely submitted
/// in the same batch: the engine stamps one send time per io_uring_enter,
/// and a batch's later requests would carry the kernel's time for the
/// earlier ones.
constexpr unsigned pingers = 8;
constexpr auto ping_timeout = 10s;          ///< no loss here: only a stalled machine could reach it
constexpr std::uint32_t warm_up_pings = 50; ///< per family, to delay-0 targets 400..449

struct delay_case {
    const char* name;
    nanoseconds delay;
};
constexpr std::array<delay_case, 4> delays{
    {{"0", 0ns}, {"100us", 100us}, {"1ms", 1ms}, {"10ms", 10ms}}};

/// Target i (< 500) of delay case k: 198.18.(2k).1 upward in a /23, and
/// 2001:db8:5::(k+1):(i+1) in a /112; the profile gives each prefix its delay.
ip_address target_for(std::size_t k, bool v6, std::uint32_t i) {
    if (!v6)
        return ip_address::from_v4(0xc6120000u + static_cast<std::uint32_t>(k) * 512 + 1 + i);
    std::array<std::uint8_t, 16> b{0x20, 0x01, 0x0d, 0xb8, 0x00, 0x05};
    b[13] = static_cast<std::uint8_t>(k + 1);
    b[14] = static_cast<std::uint8_t>((i + 1) >> 8);
    b[15] = static_cast<std::uint8_t>(i + 1);
    return ip_address::from_v6_bytes(b);
}

std::string profile_text() {
    std::string p = "delay=0";
    for (std::size_t k = 0; k < delays.size(); ++k) {
        const std::string d = std::string("delay=fixed:") + delays[k].name;
        p += ";198.18." + std::to_string(2 * k) + ".0/23:" + d;
        p += ";[2001:db8:5::" + std::to_string(k + 1) + ":0/112]:" + d;
    }
    return p;
}

/// Nearest-rank percentile (q = 1 is the maximum).
nanoseconds percentile(std::vector<nanoseconds> v, double q) {
    REQUIRE(!v.empty());
    std::sort(v.begin(), v.end());
    const auto rank = static_cast<std::size_t>(q * static_cast<double>(v.size()) + 0.999999);
    return v[std::clamp<std::size_t>(rank, 1, v.size()) - 1];
}

double us(nanoseconds d) {
    return static_cast<double>(d.count()) / 1000.0;
}

struct sample {
    ip_address target;
    ping_result result;
    /// Just before ping() was called: the engine takes the send time after
    /// this, so (simulator read - called) bounds the request's path from above.
    std::chrono::steady_clock::time_point called;
};

task<void> paced_pinger(engine& eng, std::vector<sample>& out, unsigned pinger, std::size_t k,
                        bool v6, nanoseconds period, std::chrono::steady_clock::time_point start) {
    auto next = start + period * pinger / pingers;
    for (std::uint32_t i = pinger; i < out.size(); i += pingers) {
        co_await eng.sleep_until(next);
        next += period;
        out[i].target = target_for(k, v6, i);
        out[i].called = std::chrono::steady_clock::now();
        out[i].result = co_await eng.ping(out[i].target, ping_timeout);
    }
}

task<void> ping_paced(engine& eng, std::vector<sample>& out, std::size_t k, bool v6) {
    const nanoseconds period = delays[k].delay + 1ms;
    const auto start = std::chrono::steady_clock::now() + 1ms;
    std::vector<task<void>> tasks;
    for (unsigned p = 0; p < pingers; ++p)
        tasks.push_back(paced_pinger(eng, out, p, k, v6, period, start));
    co_await icmpengine::when_all(std::move(tasks));
}

struct configuration {
    const char* name;
    bool busy_poll;
    std::uint32_t send_batch;
    bool realtime_engine; ///< run the engine's thread (this one) at SCHED_FIFO 1
};

/// The engine's thread at SCHED_FIFO (configuration::realtime_engine): not
/// preempted between taking the send time and entering the kernel, which a
/// loaded machine otherwise does for milliseconds now and then.
using testing::scoped_realtime;

struct row {
    nanoseconds p50, p99, max;
    nanoseconds p50_2, p99_2, max_2;
    nanoseconds request_p50, request_p99;
};

} // namespace

TEST_CASE("RTT accuracy: measured RTT minus injected delay", "[rtt][netsim]") {
    const configuration configurations[] = {
        {"simulator sleeping (SCHED_FIFO), send_batch 32", false, 32, false},
        {"simulator sleeping (SCHED_FIFO), send_batch 1", false, 1, false},
        {"simulator sleeping (SCHED_FIFO), send_batch 32, engine SCHED_FIFO", false, 32, true},
        {"simulator sleeping (SCHED_FIFO), send_batch 1, engine SCHED_FIFO", false, 1, true},
        {"simulator busy-polling, send_batch 32", true, 32, false},
        {"simulator busy-polling, send_batch 1", true, 1, false},
    };
    const configuration* best = nullptr;
    nanoseconds best_p99 = nanoseconds::max();
    for (const configuration& c : configurations) {
        INFO(c.name);
        testing::simulator_config sc;
        sc.seed = 1; // fixed delays: nothing random is drawn that matters
        sc.profile = testing::profile::parse(profile_text());
        sc.busy_poll = c.busy_poll;
        testing::network_simulator sim(sc);
        icmpengine::engine_config ec;
        ec.send_batch = c.send_batch;
        engine eng(ec);
        const scoped_realtime realtime(c.realtime_engine);
        if (c.realtime_engine && !realtime.active())
            std::printf("[rtt accuracy] (SCHED_FIFO not permitted: the engine runs normally)\n");
        REQUIRE_FALSE(eng.open(icmpengine::ip_family::v4));
        REQUIRE_FALSE(eng.open(icmpengine::ip_family::v6));
        // Not measured: the first pings of an engine and a simulator pay for
        // page faults, buffer set-up and the simulator's spin-window tuning.
        for (const bool v6 : {false, true})
            for (std::uint32_t i = 0; i < warm_up_pings; ++i)
                REQUIRE(
                    eng.run(eng.ping(target_for(0, v6, pings_per_run + i), ping_timeout)).status ==
                    ping_status::reply);

        std::printf("[rtt accuracy] %s; %u pings per row, %u pingers; error = rtt - delay, "
                    "error2 = rtt - (simulator write - read), request = simulator read - "
                    "ping() call; in us\n",
                    c.name, pings_per_run, pingers);
        std::printf("  delay  family     n   error p50     p99     max |  error2 p50     p99     "
                    "max | request p50     p99\n");
        // The worst p99 of error over the non-zero delays: what "within X us
        // at p99" can claim for this configuration.
        nanoseconds worst_p99{0};
        for (std::size_t k = 0; k < delays.size(); ++k) {
            for (const bool v6 : {false, true}) {
                const nanoseconds delay = delays[k].delay;
                INFO("delay " << delays[k].name << (v6 ? " IPv6" : " IPv4"));
                std::vector<sample> samples(pings_per_run);
                eng.run(ping_paced(eng, samples, k, v6));
                REQUIRE(sim.wait_until_flushed(5s));

                std::map<std::pair<testing::sim_address, std::uint16_t>, testing::request_record>
                    records;
                for (auto& r : sim.requests())
                    records.emplace(std::pair{r.target, r.sequence}, r);
                std::vector<nanoseconds> error;
                std::vector<nanoseconds> error2;
                std::vector<nanoseconds> request_path;
                for (const sample& s : samples) {
                    INFO("ping to " << s.target.to_string() << " seq " << s.result.sequence << ": "
                                    << to_string(s.result.status) << " rtt " << s.result.rtt.count()
                                    << " ns");
                    REQUIRE(s.result.status == ping_status::reply); // no loss in this profile
                    CHECK(s.result.from == s.target);
                    const auto it = records.find(
                        {testing::sim_address::parse(s.target.to_string()), s.result.sequence});
                    REQUIRE(it != records.end());
                    INFO("simulator: " << it->second.to_string());
                    // The send time is taken before the request can reach the
                    // simulator, the receive stamp after the reply was written.
                    CHECK(s.result.rtt >= delay);
                    CHECK(s.result.rtt >= it->second.answer_delay());
                    error.push_back(s.result.rtt - delay);
                    error2.push_back(s.result.rtt - it->second.answer_delay());
                    request_path.push_back(it->second.received - s.called);
                }
                const row r{percentile(error, 0.5),        percentile(error, 0.99),
                            percentile(error, 1.0),        percentile(error2, 0.5),
                            percentile(error2, 0.99),      percentile(error2, 1.0),
                            percentile(request_path, 0.5), percentile(request_path, 0.99)};
                std::printf("  %-5s  %-6s %5zu %11.1f %7.1f %7.1f | %11.1f %7.1f %7.1f | %11.1f "
                            "%7.1f\n",
                            delays[k].name, v6 ? "IPv6" : "IPv4", error.size(), us(r.p50),
                            us(r.p99), us(r.max), us(r.p50_2), us(r.p99_2), us(r.max_2),
                            us(r.request_p50), us(r.request_p99));
                // Catches a wrong clock or a unit error, not a slow machine
                // (a busy-polling simulator preempted for milliseconds has
                // shown a median of 2 ms under sanitizers).
                CHECK(r.p50 < 1s);
                if (delay > 0ns)
                    worst_p99 = std::max(worst_p99, r.p99);
            }
        }
        std::printf("  worst p99 of error over 100us/1ms/10ms and both families: %.1f us\n",
                    us(worst_p99));
        if (worst_p99 < best_p99) {
            best_p99 = worst_p99;
            best = &c;
        }
        const auto st = eng.stats();
        CHECK(st.sent == st.replies);
        CHECK(st.invalid_packets + st.late_replies + st.duplicate_replies == 0);
    }
    REQUIRE(best != nullptr);
    std::printf("[rtt accuracy] best: %s, p99 of rtt - delay <= %.1f us\n", best->name,
                us(best_p99));
    std::fflush(stdout);
}
