// SPDX-License-Identifier: MIT
// soak: millions of pings through the network simulator (issue 5,
// "Reliability"), checking that no result is attributed to the wrong ping,
// that the engine's counters balance and account for every packet the
// simulator wrote, and that memory stays flat after warm-up.
//
//     soak [--pings N] [--window K] [--seed S]
//
// It moves itself into a private network namespace (and refuses to run
// otherwise), starts the simulator (support/netsim.hpp) there, and keeps K
// pings in flight until N have ended, cycling over 198.18.0.0/16 and
// 2001:db8:5::/48 with timeouts of 50 ms, 200 ms and 1 s. The profile:
// delays uniform in 100 us .. 5 ms, 20 % loss, 1 % duplicates, 1 % late
// (2 s, past every timeout) and 1 % corrupted replies (see soak_profile()).
//
// What counts as a mis-attribution:
//   - any reply not from its target, with the wrong byte count or type, or
//     with an RTT below the shortest injected delay or not below its timeout;
//   - any status other than reply or timeout (the profile injects no errors);
//   - for the first pings, whose requests the simulator still holds in its
//     record (max_records keeps the first ones), any disagreement between
//     the ping's result and what the simulator did with its request;
//   - any stray (late or duplicate) reply the engine reports through
//     engine_config::on_stray that matches no recent ping with that source
//     and sequence, ended as timeout (late) or reply (duplicate).
// The aggregate checks (counters against the simulator's exact summary) are
// printed one per line, each with what it compares. Exit status: 0 if every
// check passed, 1 if one failed, 2 for bad arguments, 77 if no private
// namespace could be made (1 under CI=true), as for the system tests.
//
// Test tooling, not installed; needs root (or CAP_SYS_ADMIN + CAP_NET_ADMIN).
// The full run (10 million pings) is a benchmark-style command; the system
// suite runs a short one (tests/meson.build, soak_short).
#include "netns.hpp"
#include "netsim.hpp"
#include "seed.hpp"

#include <icmpengine/icmpengine.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <map>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define SOAK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SOAK_ASAN 1
#endif
#endif

namespace {

using namespace std::chrono_literals;
using icmpengine::engine;
using icmpengine::ip_address;
using icmpengine::ping_result;
using icmpengine::ping_status;
using icmpengine::stray_reply;
using icmpengine::task;
using std::chrono::nanoseconds;
using steady = std::chrono::steady_clock;
namespace testing = icmpengine::testing;

constexpr const char* usage =
    "usage: soak [--pings N] [--window K] [--seed S]\n"
    "\n"
    "Pings N targets' worth (default 10000000) through the network simulator in a\n"
    "private network namespace, K in flight (default 4096), and checks every result,\n"
    "the engine's counters and the process's memory. S seeds the simulator's\n"
    "decisions (default: ICMPENGINE_SEED or random; printed either way).\n";

/// Hosts per family: 198.18.0.1 .. 198.18.255.253 (the whole /16 but the
/// simulator's router, .255.254, and .255.255) and as many in the v6 /48,
/// 2001:db8:5::1 .. 2001:db8:5::fffd.
constexpr std::uint32_t hosts_per_family = 65533;
constexpr std::uint64_t target_cycle = 2 * std::uint64_t{hosts_per_family};
constexpr std::array<nanoseconds, 3> timeouts{50ms, 200ms, 1s};
constexpr auto shortest_delay = 100us; ///< the profile's lowest delay
constexpr auto late_delay = 2s;
constexpr std::uint32_t payload_size = 56; ///< the engine's default
/// Requests the simulator keeps records of (the first ones; past it only
/// its summary counts, which stay exact): bounds its memory.
constexpr std::size_t max_records = std::size_t{1} << 16;
/// A stray is checked against the last few pings that used its sequence
/// number (the engine reuses one every ~65,536 pings; strays come at most
/// 2 s after their request).
constexpr std::size_t history_depth = 4;

/// The simulator profile. Each corruption kind applies, at 4 %, to its own
/// sixteenth of the targets (a /20 of the v4 prefix, a /116 of the v6 one),
/// which gets no duplicates: 0.25 % of all replies per kind, 1 % in all, and
/// every corrupted request yields exactly one packet. The other targets get
/// 1.33 % duplicates (1 % in all). The simulator's per-kind counts are then
/// packet counts of disjoint sets, and the engine's packet counters can be
/// checked exactly: checksum-corrupted replies are dropped by the kernel,
/// truncated, token-flipped and wrong-source ones reach the engine, which
/// must count each as one invalid packet.
std::string soak_profile() {
    std::string p = "delay=uniform:100us:5ms,loss=0.2,dup=0.0133,late=0.01:2s";
    const char* kinds[] = {"checksum", "truncate", "token", "source"};
    const char* v4[] = {"198.18.0.0/20", "198.18.16.0/20", "198.18.32.0/20", "198.18.48.0/20"};
    const char* v6[] = {"[2001:db8:5::/116]", "[2001:db8:5::1000/116]", "[2001:db8:5::2000/116]",
                        "[2001:db8:5::3000/116]"};
    for (std::size_t i = 0; i < 4; ++i) {
        p += std::string(";") + v4[i] + ":dup=0,corrupt=" + kinds[i] + ":0.04";
        p += std::string(";") + v6[i] + ":dup=0,corrupt=" + kinds[i] + ":0.04";
    }
    return p;
}

/// Ping i's target: v4 and v6 alternate, each cycling over its hosts.
ip_address target_of(std::uint64_t i) {
    const std::uint64_t t = i % target_cycle;
    const auto host = static_cast<std::uint32_t>(t / 2) + 1;
    if (t % 2 == 0)
        return ip_address::from_v4(0xc6120000u + host); // 198.18.0.0 + host
    std::array<std::uint8_t, 16> b{0x20, 0x01, 0x0d, 0xb8, 0x00, 0x05};
    b[14] = static_cast<std::uint8_t>(host >> 8);
    b[15] = static_cast<std::uint8_t>(host);
    return ip_address::from_v6_bytes(b);
}

/// Ping i's timeout: 50 ms, 200 ms, 1 s in turn (with the alternating
/// families, every family meets every timeout).
nanoseconds timeout_of(std::uint64_t i) {
    return timeouts[i % timeouts.size()];
}

/// Resident set size of this process, in bytes (VmRSS of /proc/self/status).
std::uint64_t rss_bytes() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("VmRSS:", 0) == 0)
            return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
    return 0;
}

double mib(std::uint64_t bytes) {
    return static_cast<double>(bytes) / (1024.0 * 1024.0);
}

double seconds_since(steady::time_point t) {
    return std::chrono::duration<double>(steady::now() - t).count();
}

struct options {
    std::uint64_t pings = 10'000'000;
    std::uint32_t window = 4096;
    std::optional<std::uint64_t> seed;
};

/// A ping whose request the simulator still has a record of.
struct recorded_ping {
    ip_address target;
    nanoseconds timeout{0};
    steady::time_point called{}; ///< just before ping(): the engine's send time is later
    ping_result result;
    bool late_reply_seen = false; ///< on_stray reported a late reply to this ping
};

struct ended_ping {
    ip_address target;
    ping_status status = ping_status::timeout;
    bool used = false;
};

std::size_t corruption_index(testing::corruption c) {
    for (std::size_t i = 0; i < testing::corruption_kinds; ++i)
        if (testing::corruption_at(i) == c)
            return i;
    return 0;
}

/// Every packet the engine read ends in exactly one of these counters.
std::uint64_t packets_read(const icmpengine::engine_stats& e) {
    return e.replies + e.late_replies + e.duplicate_replies + e.invalid_packets +
           e.foreign_packets + e.receive_overruns;
}

/// Packets the simulator wrote that no socket gets: checksum-corrupted
/// replies, which the kernel drops.
std::uint64_t reaching_no_socket(const testing::simulator_summary& s) {
    return s.per_corruption[corruption_index(testing::corruption::checksum)];
}

std::string describe(std::uint64_t i, const ip_address& to, nanoseconds timeout,
                     const ping_result& r) {
    char line[320];
    std::snprintf(line, sizeof line,
                  "ping #%" PRIu64 " to %s (timeout %lld ms): %s from %s seq %u rtt %.1f us, %u "
                  "bytes, type %u",
                  i, to.to_string().c_str(),
                  static_cast<long long>(
                      std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()),
                  std::string(to_string(r.status)).c_str(), r.from.to_string().c_str(),
                  unsigned{r.sequence}, static_cast<double>(r.rtt.count()) / 1000.0, r.bytes,
                  unsigned{r.icmp_type});
    return line;
}

class soak {
  public:
    soak(const options& o, testing::network_simulator& sim)
        : m_options(o), m_sim(sim), m_history(65536), m_history_next(65536) {
        // Pings with an index below this are among the first max_records
        // requests the simulator reads: requests reach it in the order the
        // pings started, give or take the ones in flight.
        const std::uint64_t margin = 2 * std::uint64_t{o.window};
        m_recorded_limit =
            max_records > margin ? std::min<std::uint64_t>(o.pings, max_records - margin) : 0;
        m_recorded.resize(m_recorded_limit);
        // Warm-up: every target pinged once (the simulator keeps a count per
        // target), the engine's 65,536 slots and the simulator's record
        // filled; at least 5 % and at most half of the run.
        m_warm_up = std::max(o.pings / 20, std::min(o.pings / 2, target_cycle + o.window));
        m_strays.reserve(4096);
        m_strays_previous.reserve(4096);
    }

    /// engine_config::on_stray. Called from inside run() while the engine
    /// handles a packet, possibly before the coroutine of the ping it refers
    /// to has been resumed: strays are verified a checker period later.
    void on_stray(const stray_reply& s) { m_strays.push_back(s); }

    task<void> run(engine& eng) {
        std::vector<task<void>> parts;
        parts.push_back(ping_all(eng));
        parts.push_back(check_strays(eng));
        co_await icmpengine::when_all(std::move(parts));
    }

    /// Compares the first pings with the simulator's record, prints the
    /// results and every check; true if all passed.
    bool report(const engine& eng);

  private:
    task<void> pinger(engine& eng) {
        for (;;) {
            const std::uint64_t i = m_next++;
            if (i >= m_options.pings)
                co_return;
            const ip_address to = target_of(i);
            const nanoseconds timeout = timeout_of(i);
            const steady::time_point called =
                i < m_recorded_limit ? steady::now() : steady::time_point{};
            const ping_result r = co_await eng.ping(to, timeout);
            check(i, to, timeout, called, r);
        }
    }

    task<void> ping_all(engine& eng) {
        m_rss_start = rss_bytes();
        m_start = steady::now();
        std::vector<task<void>> pingers;
        for (std::uint32_t k = 0; k < m_options.window; ++k)
            pingers.push_back(pinger(eng));
        co_await icmpengine::when_all(std::move(pingers));
        m_elapsed = seconds_since(m_start);
        m_rss_end = rss_bytes();
        // Stay in the loop until the simulator has written everything it
        // scheduled (late replies come 2 s after their request), then until
        // the engine has read and counted every packet that reaches its
        // sockets (report() checks the same sum exactly): read, not waited for.
        const auto give_up = steady::now() + late_delay + 10s;
        while (!m_sim.wait_until_flushed(0ns) && steady::now() < give_up)
            co_await eng.sleep_for(10ms);
        m_flushed = m_sim.wait_until_flushed(0ns);
        const auto read_by = steady::now() + 20s;
        while (packets_read(eng.stats()) + reaching_no_socket(m_sim.summary()) <
                   m_sim.summary().packets_written &&
               steady::now() < read_by)
            co_await eng.sleep_for(10ms);
        m_stop.request_stop();
    }

    task<void> check_strays(engine& eng) {
        // Strays reported during one period are verified at the end of the
        // next: by then every ping they can refer to has been resumed and
        // recorded in m_history.
        for (;;) {
            // Not `while (co_await eng.sleep_for(...))`: GCC 12 miscompiles a
            // co_await in a loop condition (tests/gcc12_co_await_condition.cpp).
            const bool slept = co_await eng.sleep_for(20ms, m_stop.get_token());
            if (!slept)
                break; // stopped: every ping has ended
            verify_strays(m_strays_previous);
            std::swap(m_strays, m_strays_previous);
        }
        verify_strays(m_strays_previous);
        verify_strays(m_strays);
    }

    void check(std::uint64_t i, const ip_address& to, nanoseconds timeout,
               steady::time_point called, const ping_result& r) {
        ++m_done;
        switch (r.status) {
        case ping_status::reply:
            ++m_replies;
            if (r.from != to || r.bytes != payload_size || r.rtt < shortest_delay ||
                r.rtt > timeout || r.icmp_type != (to.is_v4() ? 0 : 129) || r.icmp_code != 0)
                misattributed(describe(i, to, timeout, r) + ": not a reply to this ping");
            break;
        case ping_status::timeout:
            ++m_timeouts;
            if (r.rtt != 0ns || r.fake_dropped)
                misattributed(describe(i, to, timeout, r) + ": a timeout with an RTT or dropped");
            break;
        default:
            misattributed(describe(i, to, timeout, r) +
                          ": neither reply nor timeout (the profile injects no errors)");
            break;
        }
        m_history[r.sequence][m_history_next[r.sequence]++ % history_depth] = {to, r.status, true};
        if (i < m_recorded_limit)
            m_recorded[i] = {to, timeout, called, r};
        if (m_done == m_warm_up) {
            m_rss_warm = rss_bytes();
            m_rss_max = m_rss_warm;
        }
        const std::uint64_t percent = std::max<std::uint64_t>(1, m_options.pings / 100);
        if (m_done % percent == 0 || m_done == m_options.pings) {
            const std::uint64_t rss = rss_bytes();
            if (m_done >= m_warm_up)
                m_rss_max = std::max(m_rss_max, rss);
            if (m_done % (10 * percent) == 0 || m_done == m_options.pings) {
                const double t = seconds_since(m_start);
                std::printf("[soak] %3.0f%%  %10" PRIu64 " pings  %7.1f s  %7.0f pings/s  RSS %.1f "
                            "MiB%s\n",
                            100.0 * static_cast<double>(m_done) /
                                static_cast<double>(m_options.pings),
                            m_done, t, static_cast<double>(m_done) / t, mib(rss),
                            m_done >= m_warm_up ? "" : "  (warming up)");
                std::fflush(stdout);
            }
        }
    }

    void verify_strays(std::vector<stray_reply>& strays) {
        for (const stray_reply& s : strays) {
            const bool duplicate = s.what == stray_reply::kind::duplicate;
            ++(duplicate ? m_stray_duplicates : m_stray_late);
            // A duplicate repeats a reply the ping got; a late reply belongs
            // to a ping that timed out.
            const ping_status wanted = duplicate ? ping_status::reply : ping_status::timeout;
            bool found = false;
            std::string recent;
            for (const ended_ping& e : m_history[s.sequence]) {
                found = found || (e.used && e.target == s.from && e.status == wanted);
                if (e.used)
                    recent += " " + e.target.to_string() + " " + std::string(to_string(e.status));
            }
            // The first pings use sequence numbers 0, 1, ... in order (the
            // engine grows to 65,536 slots before reusing one): note late
            // replies to them for compare_with_record().
            if (!duplicate && s.sequence < m_recorded_limit &&
                m_recorded[s.sequence].target == s.from &&
                m_recorded[s.sequence].result.sequence == s.sequence)
                m_recorded[s.sequence].late_reply_seen = true;
            if (!found)
                misattributed(std::string(duplicate ? "duplicate" : "late") + " reply from " +
                                  s.from.to_string() + " seq " + std::to_string(s.sequence) +
                                  ": no recent ping to it with that sequence ended as " +
                                  (duplicate ? "reply" : "timeout") +
                                  " (recent pings with it:" + recent + ")",
                              true);
        }
        strays.clear();
    }

    /// The first pings against what the simulator did with their requests
    /// (as test_fault_matrix.cpp does for every ping). Only what holds
    /// however the threads were scheduled: the engine's send time lies
    /// between `called` and the simulator's read, the kernel's receive stamp
    /// after the simulator's write began.
    void compare_with_record(const std::vector<testing::request_record>& records, bool overruns) {
        std::map<std::pair<testing::sim_address, std::uint16_t>, const testing::request_record*>
            by_key;
        for (const auto& r : records)
            by_key.emplace(std::pair{r.target, r.sequence}, &r);
        for (std::uint64_t i = 0; i < m_recorded_limit; ++i) {
            const recorded_ping& p = m_recorded[i];
            const std::string what = describe(i, p.target, p.timeout, p.result);
            const auto it =
                by_key.find({testing::sim_address::parse(p.target.to_string()), p.result.sequence});
            if (it == by_key.end()) {
                ++m_unrecorded; // dropped by the TUN queue, or arrived past the record
                if (p.result.status != ping_status::timeout)
                    misattributed(what + ": the simulator never saw this request");
                continue;
            }
            ++m_compared;
            const testing::request_record& rec = *it->second;
            const bool answered =
                rec.fate == testing::request_fate::replied && rec.corruptions == 0;
            const nanoseconds delay = rec.answer_delay();
            std::string wrong;
            if (rec.fate == testing::request_fate::error || rec.payload_size != payload_size) {
                wrong = "not what the profile asks for";
            } else if (p.result.status == ping_status::reply) {
                // A reply needs an intact answer that the simulator wrote
                // before the deadline could have passed, and its RTT spans
                // the simulator's delay.
                if (!answered || delay > p.timeout)
                    wrong = "a reply, but the simulator sent none in time";
                else if (p.result.rtt < delay)
                    wrong = "RTT shorter than the simulator's delay";
            } else if (answered && rec.received + delay < p.called + p.timeout - 5ms &&
                       !p.late_reply_seen && !overruns) {
                // The reply was written well before any possible deadline:
                // the engine must have read it, and if its kernel stamp came
                // after the deadline (a stalled simulator thread), counted it
                // as a late reply to this very ping.
                wrong = "a timeout, but the simulator's reply was neither matched nor counted late";
            }
            if (!wrong.empty())
                misattributed(what + ": " + wrong + " | simulator: " + rec.to_string());
        }
    }

    void misattributed(std::string what, bool stray = false) {
        ++m_misattributions;
        m_stray_misattributions += stray ? 1 : 0;
        auto& examples = stray ? m_stray_examples : m_examples;
        if (examples.size() < 10)
            examples.push_back(std::move(what));
    }

    options m_options;
    testing::network_simulator& m_sim;
    std::uint64_t m_next = 0;
    std::uint64_t m_done = 0;
    std::uint64_t m_replies = 0;
    std::uint64_t m_timeouts = 0;
    std::uint64_t m_misattributions = 0;
    std::uint64_t m_stray_misattributions = 0; ///< of m_misattributions
    std::vector<std::string> m_examples;       ///< the first results mis-attributed
    std::vector<std::string> m_stray_examples; ///< the first strays mis-attributed

    std::uint64_t m_recorded_limit = 0;
    std::vector<recorded_ping> m_recorded;
    std::uint64_t m_compared = 0;
    std::uint64_t m_unrecorded = 0;

    /// Per sequence number, the last pings that used it.
    std::vector<std::array<ended_ping, history_depth>> m_history;
    std::vector<std::uint8_t> m_history_next;
    std::vector<stray_reply> m_strays;
    std::vector<stray_reply> m_strays_previous;
    std::uint64_t m_stray_late = 0;
    std::uint64_t m_stray_duplicates = 0;
    std::stop_source m_stop;

    std::uint64_t m_warm_up = 0;
    std::uint64_t m_rss_start = 0;
    std::uint64_t m_rss_warm = 0;
    std::uint64_t m_rss_max = 0;
    std::uint64_t m_rss_end = 0;
    steady::time_point m_start{};
    double m_elapsed = 0;
    bool m_flushed = false;
};

bool soak::report(const engine& eng) {
    const icmpengine::engine_stats e = eng.stats();
    compare_with_record(m_sim.requests(), e.receive_overruns > 0);
    const testing::simulator_summary s = m_sim.summary();
    using testing::corruption;
    const std::uint64_t checksum = s.per_corruption[corruption_index(corruption::checksum)];
    // Corrupted replies that reach the socket, one packet each (disjoint
    // sets without duplicates: see soak_profile()).
    const std::uint64_t reaching = s.per_corruption[corruption_index(corruption::truncate)] +
                                   s.per_corruption[corruption_index(corruption::token)] +
                                   s.per_corruption[corruption_index(corruption::source)];
    const std::uint64_t accounted = packets_read(e);

    std::printf("[soak] %" PRIu64 " pings in %.1f s (%.0f pings/s), %u in flight\n",
                m_options.pings, m_elapsed, static_cast<double>(m_options.pings) / m_elapsed,
                m_options.window);
    std::printf("[soak] engine: sent %" PRIu64 " = replies %" PRIu64 " + timeouts %" PRIu64
                " + icmp_errors %" PRIu64 " + send_errors %" PRIu64 " + cancelled %" PRIu64
                " + in_flight %" PRIu64 "\n",
                e.sent, e.replies, e.timeouts, e.icmp_errors, e.send_errors, e.cancelled,
                e.in_flight);
    std::printf("[soak] engine: late replies %" PRIu64 ", duplicate replies %" PRIu64
                ", invalid packets %" PRIu64 ", foreign packets %" PRIu64
                ", receive overruns %" PRIu64 ", submissions %" PRIu64 "\n",
                e.late_replies, e.duplicate_replies, e.invalid_packets, e.foreign_packets,
                e.receive_overruns, e.submissions);
    std::string summary = s.to_string();
    for (std::size_t at = 0, nl; (nl = summary.find('\n', at)) != std::string::npos; at = nl + 1)
        std::printf("[soak] simulator: %s\n", summary.substr(at, nl - at).c_str());
    std::printf("[soak] mis-attributions: %" PRIu64 " (%" PRIu64
                " results checked, the first %" PRIu64 " against the simulator's record (%" PRIu64
                " not in it), %" PRIu64 " stray replies checked)\n",
                m_misattributions, m_done, m_recorded_limit, m_unrecorded,
                m_stray_late + m_stray_duplicates);
    for (const std::string& x : m_examples)
        std::printf("[soak]   result: %s\n", x.c_str());
    for (const std::string& x : m_stray_examples)
        std::printf("[soak]   stray: %s\n", x.c_str());
    const std::uint64_t tolerance =
        std::max<std::uint64_t>(std::uint64_t{8} << 20, m_rss_warm / 10);
    std::printf("[soak] RSS: %.1f MiB at start, %.1f MiB after warm-up (%" PRIu64
                " pings), %.1f MiB at end, %.1f MiB max after warm-up (growth %+.1f MiB, limit "
                "+%.1f MiB)\n",
                mib(m_rss_start), mib(m_rss_warm), m_warm_up, mib(m_rss_end), mib(m_rss_max),
                mib(m_rss_max) - mib(m_rss_warm), mib(tolerance));

    bool all = true;
    auto expect = [&](bool ok, const std::string& what) {
        std::printf("[soak]   %-4s %s\n", ok ? "ok" : "FAIL", what.c_str());
        all = all && ok;
    };
    auto n = [](std::uint64_t v) { return std::to_string(v); };
    std::printf("[soak] checks:\n");
    expect(m_misattributions == 0, "mis-attributions: " + n(m_misattributions) + " (results " +
                                       n(m_misattributions - m_stray_misattributions) +
                                       ", stray replies " + n(m_stray_misattributions) + ")");
    expect(e.sent == e.replies + e.timeouts + e.icmp_errors + e.send_errors + e.cancelled +
                         e.in_flight &&
               e.in_flight == 0 && e.sent == m_options.pings && m_done == m_options.pings,
           "balance: sent " + n(e.sent) +
               " == replies + timeouts + icmp_errors + send_errors + cancelled + in_flight, "
               "in_flight 0, every ping ended once");
    expect(m_replies == e.replies && m_timeouts == e.timeouts,
           "results seen == engine counters (replies " + n(m_replies) + ", timeouts " +
               n(m_timeouts) + ")");
    expect(e.icmp_errors + e.send_errors + e.cancelled == 0,
           "no ICMP errors, send errors or cancellations");
    expect(m_flushed, "the simulator wrote everything it scheduled");
    // The TUN queue's drop count also counts the odd packet that is not an
    // echo request (IPv6 router solicitations, MLD reports).
    expect(s.requests <= e.sent && e.sent <= s.requests + s.kernel_dropped,
           "every request reached the simulator or was dropped by the TUN queue: requests " +
               n(s.requests) + " <= sent " + n(e.sent) + " <= requests + TUN queue drops " +
               n(s.requests + s.kernel_dropped));
    expect(m_unrecorded <= s.kernel_dropped,
           "pings missing from the record (" + n(m_unrecorded) + ") <= TUN queue drops");
    expect(e.replies <= s.replied + s.late - s.corrupted, "replies " + n(e.replies) +
                                                              " <= uncorrupted replies written " +
                                                              n(s.replied + s.late - s.corrupted));
    expect(e.timeouts >= s.dropped + s.late + s.kernel_dropped,
           "timeouts " + n(e.timeouts) + " >= dropped + late + TUN queue drops " +
               n(s.dropped + s.late + s.kernel_dropped));
    expect(m_stray_late == e.late_replies && m_stray_duplicates == e.duplicate_replies,
           "on_stray calls == late_replies + duplicate_replies (" + n(m_stray_late) + " + " +
               n(m_stray_duplicates) + ")");
    expect(e.duplicate_replies <= s.duplicate_packets,
           "duplicate replies " + n(e.duplicate_replies) + " <= duplicate packets written " +
               n(s.duplicate_packets));
    // Receive overruns (counted, but unread) could hide invalid packets.
    expect(e.invalid_packets <= reaching && e.invalid_packets + e.receive_overruns >= reaching,
           "invalid packets " + n(e.invalid_packets) +
               " == truncated + token + source-corrupted replies " + n(reaching));
    expect(accounted + checksum == s.packets_written,
           "packets read " + n(accounted) +
               " (replies + late + duplicates + invalid + foreign + overruns) == written " +
               n(s.packets_written) + " - checksum-corrupted " + n(checksum));
#ifdef SOAK_ASAN
    expect(true, "RSS not checked under AddressSanitizer: its quarantine keeps freed memory "
                 "resident (LeakSanitizer checks for leaks at exit)");
#else
    expect(m_rss_max <= m_rss_warm + tolerance,
           "RSS after warm-up within +" + std::to_string(static_cast<int>(mib(tolerance))) +
               " MiB (max(8 MiB, 10 %))");
#endif
    std::printf("[soak] %s\n", all ? "PASS" : "FAIL");
    std::fflush(stdout);
    return all;
}

bool parse_number(const char* text, std::uint64_t& out) {
    try {
        std::size_t used = 0;
        const std::string s = text;
        out = std::stoull(s, &used, 10);
        return used == s.size() && s[0] != '-';
    } catch (const std::exception&) {
        return false;
    }
}

} // namespace

int main(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        std::uint64_t v = 0;
        if (arg == "--help" || arg == "-h") {
            std::fputs(usage, stdout);
            return 0;
        }
        if (i + 1 >= argc || !parse_number(argv[i + 1], v)) {
            std::fprintf(stderr, "soak: bad or missing value for '%s'\n%s", argv[i], usage);
            return 2;
        }
        ++i;
        if (arg == "--pings" && v >= 1) {
            o.pings = v;
        } else if (arg == "--window" && v >= 1 && v <= 65536) {
            o.window = static_cast<std::uint32_t>(v);
        } else if (arg == "--seed") {
            o.seed = v;
        } else {
            std::fprintf(stderr, "soak: bad argument '%s %s'\n%s", argv[i - 1], argv[i], usage);
            return 2;
        }
    }

    // Every packet stays inside a namespace this process creates: refuse to
    // run anywhere else.
    if (const std::string why = testing::enter_private_netns(); !why.empty()) {
        const char* ci = std::getenv("CI");
        const bool in_ci = ci != nullptr && std::strcmp(ci, "true") == 0;
        std::fprintf(stderr,
                     "soak: refusing to run: cannot create a private network namespace (%s); "
                     "needs root or CAP_SYS_ADMIN.%s\n",
                     why.c_str(), in_ci ? " CI=true: a skip is a failure." : "");
        return in_ci ? 1 : 77;
    }
    try {
        testing::simulator_config sc;
        if (o.seed) {
            sc.seed = *o.seed;
            std::printf("[soak] seed: %" PRIu64 "\n", sc.seed);
        } else {
            sc.seed = testing::test_seed("soak");
        }
        sc.profile = testing::profile::parse(soak_profile());
        // Thousands of replies per second: a real-time thread spinning
        // between them would keep a core busy (see support/netsim.hpp).
        sc.realtime_priority = 0;
        sc.spin_window = 20us;
        sc.max_records = max_records;
        testing::network_simulator sim(sc);
        std::printf("[soak] profile: %s\n", soak_profile().c_str());
        std::printf("[soak] %" PRIu64 " pings, %u in flight, timeouts 50 ms / 200 ms / 1 s, "
                    "targets cycling over 198.18.0.0/16 and 2001:db8:5::/48\n",
                    o.pings, o.window);
        std::fflush(stdout);

        soak s(o, sim);
        icmpengine::engine_config ec;
        ec.on_stray = [&s](const stray_reply& r) { s.on_stray(r); };
        engine eng(ec);
        eng.run(s.run(eng));
        return s.report(eng) ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "soak: %s\n", e.what());
        return 1;
    }
}
