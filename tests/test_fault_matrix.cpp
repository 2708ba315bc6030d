// SPDX-License-Identifier: MIT
// The engine against an imperfect network: for each impairment the network
// simulator (support/netsim.hpp) applies, every ping's status, source and RTT
// must match what the simulator did, and engine_stats must balance exactly.
// Runs in the private namespace support/system_main.cpp created; the
// simulator's prefixes (198.18.0.0/16, 2001:db8:5::/48) exist only there.
#include <catch2/catch.hpp>

#include "engine_test.hpp"
#include "netsim.hpp"
#include "seed.hpp"
#include "sim_targets.hpp"

#include <icmpengine/icmpengine.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using icmpengine::engine;
using icmpengine::ip_address;
using icmpengine::ping_result;
using icmpengine::ping_status;
using icmpengine::task;
namespace testing = icmpengine::testing;

namespace {

using testing::sim_target;
using testing::to_sim;

/// What a correct engine must report for the request the simulator recorded.
struct expectation {
    ping_status status;
    ip_address from;
    bool uncertain = false; ///< the reply arrived too close to the deadline to call
};

/// The time the request's way to the simulator and the answer's way back
/// may add to the simulator's delay before an answer counts as too close to
/// its deadline to call: tens of microseconds normally, far more only on a
/// machine stalled for a fifth of a second. No profile below puts a delay in
/// that window before the timeout, so it costs no coverage.
constexpr auto path_allowance = 200ms;

expectation expected_for(const testing::request_record& r, const ip_address& target,
                         std::chrono::nanoseconds timeout) {
    // The simulator's delay counts from when it read the request, which is
    // after the engine took the send time; it reads the time just before it
    // writes, so the kernel stamps the answer later still. An answer written
    // `timeout` or more after the read is therefore past the deadline for
    // certain; one written earlier is in time unless the ways there and back
    // took the rest.
    const auto near = [&](std::chrono::nanoseconds d) {
        return d < timeout && d >= timeout - path_allowance;
    };
    switch (r.fate) {
    case testing::request_fate::dropped:
    case testing::request_fate::late:
        return {ping_status::timeout, target};
    case testing::request_fate::error: {
        // ICMPv4 type 3 / ICMPv6 type 1: unreachable; v4 11 / v6 3: time exceeded.
        const bool unreach = r.target.family == AF_INET ? r.error_type == 3 : r.error_type == 1;
        const auto router = ip_address::parse(r.reply_source.to_string());
        return {unreach ? ping_status::unreachable : ping_status::time_exceeded, router,
                near(r.answer_delay())};
    }
    case testing::request_fate::replied:
        if (r.corruptions != 0)
            return {ping_status::timeout, target};
        if (r.answer_delay() >= timeout)
            return {ping_status::timeout, target, near(r.answer_delay())};
        return {ping_status::reply, target, near(r.answer_delay())};
    }
    return {ping_status::timeout, target};
}

/// Every uncorrupted duplicate of an answered ping is counted once as a
/// duplicate; nothing else is.
std::uint64_t expected_duplicates(const std::vector<testing::request_record>& records,
                                  std::chrono::nanoseconds timeout) {
    std::uint64_t duplicates = 0;
    for (const auto& r : records)
        if (r.fate == testing::request_fate::replied && r.corruptions == 0 &&
            r.answer_delay() < timeout)
            duplicates += r.duplicates;
    return duplicates;
}

/// Every uncorrupted reply after the deadline, and each copy of it, is
/// counted as late.
std::uint64_t expected_late(const std::vector<testing::request_record>& records,
                            std::chrono::nanoseconds timeout) {
    std::uint64_t late = 0;
    for (const auto& r : records)
        if (r.corruptions == 0 &&
            (r.fate == testing::request_fate::late ||
             (r.fate == testing::request_fate::replied && r.answer_delay() >= timeout)))
            late += 1 + r.duplicates;
    return late;
}

struct run_outcome {
    std::vector<ip_address> targets;
    std::vector<ping_result> results;
    std::vector<testing::request_record> records;
    icmpengine::engine_stats stats;
    testing::simulator_summary summary;
};

/// Pings `n` simulator targets (v4 and v6 alternating) once each through a
/// simulator running `profile_text`, keeps the engine running until every
/// scheduled reply was written and read, and returns both sides' records.
run_outcome run_through(const std::string& profile_text, std::uint64_t seed, std::uint32_t n,
                        std::chrono::nanoseconds timeout) {
    testing::simulator_config config;
    config.seed = seed;
    config.profile = testing::profile::parse(profile_text);
    config.realtime_priority = 0;
    testing::network_simulator sim(config);

    run_outcome out;
    for (std::uint32_t i = 0; i < n; ++i)
        out.targets.push_back(sim_target(i / 2, i % 2 == 1));
    engine eng;
    auto scenario = [&](engine& e) -> task<std::vector<ping_result>> {
        std::vector<task<ping_result>> pings;
        for (const auto& t : out.targets)
            pings.push_back(e.ping(t, timeout));
        auto results = co_await icmpengine::when_all(std::move(pings));
        // Stay in the loop until the simulator has written everything it
        // scheduled (late replies, duplicates), and then until the engine
        // has counted every duplicate and late reply the record says it
        // must: read, not waited for.
        const bool flushed = co_await testing::wait_until(
            e, [&] { return sim.wait_until_flushed(0ns); }, 20s, 10ms);
        CHECK(flushed);
        const auto records = sim.requests();
        const std::uint64_t duplicates = expected_duplicates(records, timeout);
        const std::uint64_t late = expected_late(records, timeout);
        const bool counted = co_await testing::wait_until(
            e,
            [&] {
                const auto s = e.stats();
                return s.duplicate_replies >= duplicates && s.late_replies >= late;
            },
            20s);
        CHECK(counted);
        co_return results;
    };
    out.results = eng.run(scenario(eng));
    out.stats = eng.stats();
    out.records = sim.requests();
    out.summary = sim.summary();
    return out;
}

/// Checks every ping against the simulator's record of its request; returns
/// how many were decided (not too close to their deadline to call).
std::size_t check_against_truth(const run_outcome& o, std::chrono::nanoseconds timeout) {
    std::map<std::pair<testing::sim_address, std::uint16_t>, const testing::request_record*> by_key;
    for (const auto& r : o.records)
        by_key[{r.target, r.sequence}] = &r;
    REQUIRE(o.results.size() == o.targets.size());
    std::size_t decided = 0;
    for (std::size_t i = 0; i < o.results.size(); ++i) {
        const ping_result& res = o.results[i];
        auto it = by_key.find({to_sim(o.targets[i]), res.sequence});
        INFO("ping " << i << " to " << o.targets[i].to_string() << " seq " << res.sequence << ": "
                     << to_string(res.status));
        REQUIRE(it != by_key.end()); // the simulator saw every request
        const testing::request_record& rec = *it->second;
        INFO("simulator: " << rec.to_string());
        const expectation e = expected_for(rec, o.targets[i], timeout);
        if (e.uncertain)
            continue;
        ++decided;
        CHECK(res.status == e.status);
        if (res.status == e.status && e.status != ping_status::timeout) {
            CHECK(res.from == e.from);
            // RTT: at least the simulator's delay, and within the timeout
            // (an answer stamped after the deadline is late, not a result);
            // tests/test_rtt_accuracy.cpp measures how close it is.
            CHECK(res.rtt >= rec.answer_delay());
            CHECK(res.rtt <= timeout);
        }
    }
    return decided;
}

void require_all_ended(const icmpengine::engine_stats& s) {
    testing::require_balanced(s);
    REQUIRE(s.in_flight == 0);
}

} // namespace

TEST_CASE("fault matrix: each impairment, every ping checked against the simulator",
          "[faults][netsim]") {
    // A fixed seed and a fresh one (printed) for every impairment.
    const std::uint64_t seed = GENERATE(std::uint64_t{42}, testing::test_seed("fault_matrix"));
    constexpr auto timeout = 300ms;
    constexpr std::uint32_t n = 400;

    struct impairment {
        const char* name;
        const char* profile;
    };
    const impairment cases[] = {
        {"clean", "delay=uniform:100us:2ms"},
        {"loss", "delay=uniform:100us:2ms,loss=0.3"},
        {"delay", "delay=uniform:1ms:40ms"},
        {"late", "delay=1ms,late=0.3:600ms"},
        {"duplicate", "delay=1ms,dup=0.3:2:1ms"},
        {"reorder", "delay=uniform:1ms:5ms,reorder=0.5:50ms"},
        {"corrupt checksum", "delay=1ms,corrupt=checksum:0.3"},
        {"corrupt truncate", "delay=1ms,corrupt=truncate:0.3"},
        {"corrupt type", "delay=1ms,corrupt=type:0.3"},
        {"corrupt code", "delay=1ms,corrupt=code:0.3"},
        {"corrupt sequence", "delay=1ms,corrupt=sequence:0.3"},
        {"corrupt identifier", "delay=1ms,corrupt=identifier:0.3"},
        {"corrupt token", "delay=1ms,corrupt=token:0.3"},
        {"wrong source", "delay=1ms,corrupt=source:0.3"},
        {"unreachable", "delay=1ms,error=unreach:0.3"},
        {"time exceeded", "delay=1ms,error=ttl:0.3"},
        {"everything", "delay=uniform:100us:20ms,loss=0.1,late=0.05:600ms,dup=0.05,"
                       "reorder=0.1:20ms,corrupt=checksum:0.02,corrupt=truncate:0.02,"
                       "corrupt=sequence:0.02,corrupt=token:0.02,corrupt=source:0.02,"
                       "error=unreach:0.05,error=ttl:0.05"},
    };
    for (const impairment& c : cases) {
        DYNAMIC_SECTION(c.name << " (seed " << seed << ")") {
            const run_outcome o = run_through(c.profile, seed, n, timeout);
            INFO("simulator: " << o.summary.to_string());
            INFO("engine: sent " << o.stats.sent << " send errors " << o.stats.send_errors);
            std::string send_errors;
            for (std::size_t i = 0; i < o.results.size(); ++i)
                if (o.results[i].status == ping_status::send_error)
                    send_errors +=
                        o.targets[i].to_string() + ": " + o.results[i].error.message() + "; ";
            INFO("send errors: " << send_errors);
            REQUIRE(o.records.size() >= n);
            const std::size_t decided = check_against_truth(o, timeout);
            CHECK(decided >= n * 9 / 10);
            require_all_ended(o.stats);
            CHECK(o.stats.sent == n);
            CHECK(o.stats.send_errors == 0);
            CHECK(o.stats.duplicate_replies == expected_duplicates(o.records, timeout));
            CHECK(o.stats.late_replies == expected_late(o.records, timeout));
            // Corrupted replies that reach the socket are invalid, never replies.
            if (o.summary.corrupted > 0)
                CHECK(o.stats.replies <= n - o.summary.corrupted);
        }
    }
}

TEST_CASE("unsolicited echo replies match nothing and disturb nothing", "[faults][netsim]") {
    testing::simulator_config config;
    config.seed = testing::test_seed("unsolicited");
    config.profile = testing::profile::parse("delay=1ms");
    config.realtime_priority = 0;
    testing::network_simulator sim(config);
    engine eng;
    // Open both sockets, then aim replies at them with plausible identifiers.
    REQUIRE_FALSE(eng.open(icmpengine::ip_family::v4));
    REQUIRE_FALSE(eng.open(icmpengine::ip_family::v6));
    std::vector<ping_result> results;
    auto scenario = [&](engine& e) -> task<void> {
        e.spawn([](engine& e2, std::vector<ping_result>& out) -> task<void> {
            std::vector<task<ping_result>> pings;
            for (std::uint32_t i = 0; i < 200; ++i)
                pings.push_back(e2.ping(sim_target(i, i % 2 == 1), 2s));
            out = co_await icmpengine::when_all(std::move(pings));
        }(e, results));
        // Once the simulator has the requests, they tell the identifiers the
        // kernel chose: aim replies that match nothing at exactly those.
        const bool all_read = co_await testing::wait_until(
            e, [&] { return sim.requests().size() >= 200; }, 20s);
        REQUIRE(all_read);
        std::size_t sent = 0;
        for (const auto& r : sim.requests())
            if (r.sequence < 2)
                for (std::uint16_t seq = 1000; seq < 1300; ++seq, ++sent)
                    sim.send_unsolicited(r.target, r.source, r.identifier, seq);
        CHECK(sent == 600);
        // Until the engine has read all of them, and every ping has ended.
        const bool read = co_await testing::wait_until(
            e, [&] { return e.stats().invalid_packets >= 600 && results.size() == 200; }, 20s);
        CHECK(read);
    };
    eng.run(scenario(eng));
    REQUIRE(results.size() == 200);
    for (const auto& r : results)
        CHECK(r.status == ping_status::reply);
    const auto s = eng.stats();
    CHECK(s.replies == 200);
    // Unsolicited replies carry no valid token: counted, never matched.
    CHECK(s.invalid_packets == 600);
    CHECK(s.late_replies + s.duplicate_replies == 0);
    require_all_ended(s);
}
