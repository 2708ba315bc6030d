// SPDX-License-Identifier: MIT
// history_ring (tools/exporter/history.hpp): bins, gaps, late and dropped
// records, quantiles against exact ones within history.cpp's stated
// resolution, the window summary, bounded memory.
#include <catch2/catch.hpp>

#include "history.hpp"
#include "seed.hpp"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

using namespace icmpengine_exporter;
using namespace std::chrono_literals;
using clock_type = std::chrono::system_clock;

namespace {

// A minute boundary, well after the epoch.
const clock_type::time_point t0 = clock_type::time_point(std::chrono::seconds(1'700'000'040));

std::chrono::nanoseconds exact_quantile(std::vector<std::chrono::nanoseconds> v, double q) {
    std::sort(v.begin(), v.end());
    return v[static_cast<std::size_t>(std::floor(q * static_cast<double>(v.size() - 1)))];
}

double relative_error(std::chrono::nanoseconds got, std::chrono::nanoseconds want) {
    return std::abs(static_cast<double>(got.count()) / static_cast<double>(want.count()) - 1.0);
}

constexpr std::array<double, 7> ranks{0.0, 0.10, 0.25, 0.50, 0.75, 0.90, 1.0};

} // namespace

TEST_CASE("history_ring: an empty ring has no bins", "[history]") {
    history_ring ring;
    CHECK(ring.capacity() == 60);
    CHECK(ring.step() == 60s);
    CHECK(ring.bins(t0).empty());
    const history_bin s = ring.summary(t0);
    CHECK(s.sent == 0);
    CHECK(s.received == 0);
}

TEST_CASE("history_ring: bins are aligned to the step and counted exactly", "[history]") {
    history_ring ring(60, 60s);
    ring.record(t0 + 5s, 10ms);
    ring.record(t0 + 59s, std::nullopt);
    ring.record(t0 + 60s, 20ms); // the next bin
    const auto bins = ring.bins(t0 + 61s);
    REQUIRE(bins.size() == 2);
    CHECK(bins[0].start == t0);
    CHECK(bins[0].sent == 2);
    CHECK(bins[0].received == 1);
    CHECK(bins[1].start == t0 + 60s);
    CHECK(bins[1].sent == 1);
    CHECK(bins[1].received == 1);
    CHECK(relative_error(bins[1].rtt[3], 20ms) < 0.003);
    // A time inside a bin, not at its start: the bin still starts at the boundary.
    history_ring other(10, 10s);
    other.record(t0 + 17s, 1ms);
    REQUIRE(other.bins(t0 + 17s).size() == 1);
    CHECK(other.bins(t0 + 17s)[0].start == t0 + 10s);
}

TEST_CASE("history_ring: a jump forward leaves gaps; the window slides", "[history]") {
    history_ring ring(5, 10s);
    ring.record(t0, 1ms);
    ring.record(t0 + 30s, 2ms); // bins t0+10 and t0+20 are gaps
    auto bins = ring.bins(t0 + 30s);
    REQUIRE(bins.size() == 4);
    CHECK(bins[0].sent == 1);
    CHECK(bins[1].sent == 0);
    CHECK(bins[1].start == t0 + 10s);
    CHECK(bins[2].sent == 0);
    CHECK(bins[3].sent == 1);
    CHECK(relative_error(bins[3].rtt[0], 2ms) < 0.003);

    // Later than the open bin: trailing gaps up to now, never more than capacity.
    bins = ring.bins(t0 + 50s);
    REQUIRE(bins.size() == 5);
    CHECK(bins.front().start == t0 + 10s);
    CHECK(bins[2].sent == 1); // t0 + 30
    CHECK(bins.back().start == t0 + 50s);
    CHECK(bins.back().sent == 0);

    // A jump of many windows: everything before is gone.
    ring.record(t0 + 1000s, 3ms);
    bins = ring.bins(t0 + 1000s);
    REQUIRE(bins.size() == 5);
    for (std::size_t i = 0; i + 1 < bins.size(); ++i)
        CHECK(bins[i].sent == 0);
    CHECK(bins.back().sent == 1);
    CHECK(ring.summary(t0 + 1000s).sent == 1);
}

TEST_CASE("history_ring: a late record within a step counts, older ones are dropped", "[history]") {
    history_ring ring(10, 10s);
    ring.record(t0 + 20s, 1ms);
    ring.record(t0 + 19s, 1ms);          // 1 s before the open bin: counted in it
    ring.record(t0 + 10s, std::nullopt); // exactly one step before: counted
    ring.record(t0 + 9s, 1ms);           // more than a step before: dropped
    const auto bins = ring.bins(t0 + 20s);
    REQUIRE(bins.size() == 1);
    CHECK(bins[0].sent == 3);
    CHECK(bins[0].received == 2);
}

TEST_CASE("history_ring: a ring of one bin keeps only the open one", "[history]") {
    history_ring ring(1, 10s);
    ring.record(t0, 1ms);
    ring.record(t0 + 10s, 2ms);
    const auto bins = ring.bins(t0 + 10s);
    REQUIRE(bins.size() == 1);
    CHECK(bins[0].sent == 1);
    CHECK(ring.bins(t0 + 20s)[0].sent == 0);
}

TEST_CASE("history_ring: bad sizes are rejected", "[history]") {
    CHECK_THROWS_AS(history_ring(0, 60s), std::invalid_argument);
    CHECK_THROWS_AS(history_ring(60, 0s), std::invalid_argument);
}

TEST_CASE("history_ring: memory is fixed and about 1 KB per target at 60 bins", "[history]") {
    history_ring ring(60, 60s);
    // The object plus its 59 closed bins of 15 bytes; recording never grows it.
    const std::size_t bytes = sizeof(history_ring) + 59 * 15;
    INFO("sizeof(history_ring) = " << sizeof(history_ring) << ", total " << bytes);
    CHECK(sizeof(history_ring) <= 208);
    CHECK(bytes <= 1100);
    for (int i = 0; i < 100000; ++i)
        ring.record(t0 + std::chrono::milliseconds(i * 50),
                    std::chrono::microseconds(100 + i % 900));
    CHECK(ring.bins(t0 + 5000s).size() == 60);
}

TEST_CASE("history_ring: closed-bin quantiles are within 2.6 % of exact ones", "[history]") {
    const auto seed = icmpengine::testing::test_seed("history_quantiles");
    std::mt19937_64 rng(seed);
    for (int round = 0; round < 200; ++round) {
        // A lognormal spread around a median of 50 us .. 50 ms, at most 300x wide.
        std::uniform_real_distribution<double> median_ms(0.05, 50.0);
        std::uniform_real_distribution<double> sigma(0.01, 0.8);
        std::uniform_int_distribution<int> count(1, 240);
        const double m = median_ms(rng);
        std::lognormal_distribution<double> rtt_ms(std::log(m), sigma(rng));
        const int n = count(rng);
        std::vector<std::chrono::nanoseconds> rtts;
        history_ring ring(4, 60s);
        for (int i = 0; i < n; ++i) {
            const double v = std::clamp(rtt_ms(rng), m / 15.0, m * 15.0); // within 225x
            rtts.emplace_back(static_cast<std::int64_t>(v * 1e6));
            ring.record(t0 + std::chrono::milliseconds(i * 60000 / n), rtts.back());
            if (i % 7 == 0)
                ring.record(t0 + std::chrono::milliseconds(i * 60000 / n), std::nullopt);
        }
        ring.record(t0 + 60s, 1ms); // closes the bin under test
        const auto bins = ring.bins(t0 + 60s);
        REQUIRE(bins.size() == 2);
        const history_bin& b = bins[0];
        REQUIRE(b.received == static_cast<std::uint32_t>(n));
        CHECK(b.sent == static_cast<std::uint32_t>(n + (n + 6) / 7));
        for (std::size_t q = 0; q < ranks.size(); ++q) {
            const auto want = exact_quantile(rtts, ranks[q]);
            const double tolerance = (q == 0 || q == 6) ? 0.003 : 0.026;
            INFO("round " << round << " n " << n << " q " << ranks[q] << " got " << b.rtt[q].count()
                          << " want " << want.count());
            CHECK(relative_error(b.rtt[q], want) <= tolerance);
        }
    }
}

TEST_CASE("history_ring: the open bin's quantiles are the same as when it closes", "[history]") {
    history_ring ring(4, 60s);
    for (int i = 1; i <= 50; ++i)
        ring.record(t0 + std::chrono::seconds(i), std::chrono::microseconds(i * 100));
    const history_bin open = ring.bins(t0 + 59s).back();
    ring.record(t0 + 60s, std::nullopt);
    const history_bin closed = ring.bins(t0 + 60s).front();
    CHECK(open.rtt == closed.rtt);
    CHECK(open.sent == closed.sent);
}

TEST_CASE("history_ring: a wide or dense bin keeps its extremes and its order", "[history]") {
    history_ring ring(2, 60s);
    // 10 us .. 10 s in no particular order: far wider than the open
    // histogram's window; 30,000 pings, so counters halve.
    for (int i = 0; i < 30000; ++i) {
        const double ms = 0.01 * std::pow(10.0, 6.0 * ((i * 7919) % 1000) / 999.0);
        ring.record(t0 + std::chrono::milliseconds(i),
                    std::chrono::nanoseconds(static_cast<std::int64_t>(ms * 1e6)));
    }
    const history_bin b = ring.bins(t0).back();
    CHECK(b.sent == 30000);
    CHECK(b.received == 30000);
    CHECK(relative_error(b.rtt[0], 10us) < 0.003);
    CHECK(relative_error(b.rtt[6], 10s) < 0.003);
    CHECK(std::is_sorted(b.rtt.begin(), b.rtt.end()));
    // Log-uniform over six decades: the high quantiles stay close.
    CHECK(relative_error(b.rtt[5], std::chrono::nanoseconds(static_cast<std::int64_t>(
                                       0.01e6 * std::pow(10.0, 5.4)))) < 0.10);
}

TEST_CASE("history_ring: the summary counts exactly and mixes the bins' quantiles", "[history]") {
    const auto seed = icmpengine::testing::test_seed("history_summary");
    std::mt19937_64 rng(seed);
    history_ring ring(60, 60s);
    std::vector<std::chrono::nanoseconds> rtts;
    std::lognormal_distribution<double> rtt_ms(std::log(20.0), 0.3);
    std::bernoulli_distribution lost(0.1);
    std::uint32_t sent = 0;
    // 90 minutes at 1 Hz: the window holds the last 60.
    const auto now = t0 + 90min - 1s;
    for (int s = 0; s < 90 * 60; ++s) {
        const auto when = t0 + std::chrono::seconds(s);
        const bool in_window = when >= t0 + 30min;
        if (lost(rng)) {
            ring.record(when, std::nullopt);
        } else {
            const std::chrono::nanoseconds rtt(static_cast<std::int64_t>(rtt_ms(rng) * 1e6));
            ring.record(when, rtt);
            if (in_window)
                rtts.push_back(rtt);
        }
        sent += in_window ? 1 : 0;
    }
    const history_bin s = ring.summary(now);
    CHECK(s.start == t0 + 30min);
    CHECK(s.sent == sent);
    CHECK(s.received == rtts.size());
    for (std::size_t q = 0; q < ranks.size(); ++q) {
        const auto want = exact_quantile(rtts, ranks[q]);
        INFO("q " << ranks[q] << " got " << s.rtt[q].count() << " want " << want.count());
        CHECK(relative_error(s.rtt[q], want) <= (q == 0 || q == 6 ? 0.003 : 0.05));
    }
}

TEST_CASE("history_ring: the summary of one bin is that bin", "[history]") {
    history_ring ring(60, 60s);
    for (int i = 1; i <= 40; ++i)
        ring.record(t0 + std::chrono::seconds(i), std::chrono::microseconds(1000 + i * 37));
    const history_bin bin = ring.bins(t0 + 59s).back();
    const history_bin s = ring.summary(t0 + 59s);
    CHECK(s.sent == bin.sent);
    for (std::size_t q = 0; q < ranks.size(); ++q)
        CHECK(relative_error(s.rtt[q], bin.rtt[q]) < 0.001);
    // A bin whose pings all had one RTT: a point, not a spread.
    history_ring one(60, 60s);
    for (int i = 0; i < 10; ++i)
        one.record(t0 + std::chrono::seconds(i), 5ms);
    for (const auto rtt : one.summary(t0 + 10s).rtt)
        CHECK(relative_error(rtt, 5ms) < 0.003);
}
