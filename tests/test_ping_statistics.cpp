// SPDX-License-Identifier: MIT
#include <icmpengine/ping_statistics.hpp>

#include "seed.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

using icmpengine::ping_result;
using icmpengine::ping_statistics;
using icmpengine::ping_status;
using namespace std::chrono_literals;

namespace {

ping_result outcome(ping_status status, std::chrono::nanoseconds rtt = 0ns) {
    ping_result r;
    r.status = status;
    r.rtt = rtt;
    return r;
}

ping_result reply(std::chrono::nanoseconds rtt) {
    return outcome(ping_status::reply, rtt);
}

// The textbook two-pass formulas, in long double, as the reference.
struct two_pass {
    long double mean = 0;
    long double m2 = 0; // sum of squared deviations

    explicit two_pass(const std::vector<std::int64_t>& xs) {
        for (const auto x : xs)
            mean += static_cast<long double>(x);
        mean /= static_cast<long double>(xs.size());
        for (const auto x : xs) {
            const long double d = static_cast<long double>(x) - mean;
            m2 += d * d;
        }
    }
};

void check_same(const ping_statistics& a, const ping_statistics& b) {
    CHECK(a.resolved() == b.resolved());
    CHECK(a.received() == b.received());
    CHECK(a.timeouts() == b.timeouts());
    CHECK(a.icmp_errors() == b.icmp_errors());
    CHECK(a.send_errors() == b.send_errors());
    CHECK(a.cancelled() == b.cancelled());
    CHECK(a.duplicates() == b.duplicates());
    CHECK(a.loss_fraction() == b.loss_fraction());
    CHECK(a.rtt_min() == b.rtt_min());
    CHECK(a.rtt_max() == b.rtt_max());
    REQUIRE(a.rtt_mean().has_value() == b.rtt_mean().has_value());
    if (a.rtt_mean()) {
        CHECK(a.rtt_mean()->count() == Approx(b.rtt_mean()->count()).epsilon(1e-11));
        CHECK(a.rtt_stddev_population()->count() ==
              Approx(b.rtt_stddev_population()->count()).epsilon(1e-9));
    }
    REQUIRE(a.rtt_stddev_sample().has_value() == b.rtt_stddev_sample().has_value());
    if (a.rtt_stddev_sample())
        CHECK(a.rtt_stddev_sample()->count() ==
              Approx(b.rtt_stddev_sample()->count()).epsilon(1e-9));
}

} // namespace

TEST_CASE("no pings: every statistic has its defined empty value", "[stats]") {
    const ping_statistics s;
    CHECK(s.resolved() == 0);
    CHECK(s.received() == 0);
    CHECK(s.timeouts() == 0);
    CHECK(s.icmp_errors() == 0);
    CHECK(s.send_errors() == 0);
    CHECK(s.cancelled() == 0);
    CHECK(s.duplicates() == 0);
    CHECK(s.out_of_order() == 0);
    CHECK(s.loss_fraction() == 0.0);
    CHECK_FALSE(s.rtt_min());
    CHECK_FALSE(s.rtt_max());
    CHECK_FALSE(s.rtt_mean());
    CHECK_FALSE(s.rtt_stddev_population());
    CHECK_FALSE(s.rtt_stddev_sample());
    CHECK(s.rtt_history_capacity() == 0);
    CHECK(s.rtt_history().empty());
}

TEST_CASE("one reply: population stddev 0, sample stddev undefined", "[stats]") {
    ping_statistics s;
    s.add(0, reply(1234567ns));
    CHECK(s.resolved() == 1);
    CHECK(s.received() == 1);
    CHECK(s.loss_fraction() == 0.0);
    CHECK(s.rtt_min() == 1234567ns);
    CHECK(s.rtt_max() == 1234567ns);
    CHECK(s.rtt_mean()->count() == 1234567.0);
    CHECK(s.rtt_stddev_population()->count() == 0.0);
    CHECK_FALSE(s.rtt_stddev_sample());
}

TEST_CASE("hand-computed RTT statistics", "[stats]") {
    SECTION("1, 2, 3, 4 ms") {
        ping_statistics s;
        for (std::uint64_t i = 0; i < 4; ++i)
            s.add(i, reply(std::chrono::milliseconds(i + 1)));
        CHECK(s.rtt_min() == 1ms);
        CHECK(s.rtt_max() == 4ms);
        CHECK(s.rtt_mean()->count() == 2.5e6);
        // Squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5 ms^2.
        CHECK(s.rtt_stddev_population()->count() == Approx(std::sqrt(5.0 / 4) * 1e6));
        CHECK(s.rtt_stddev_sample()->count() == Approx(std::sqrt(5.0 / 3) * 1e6));
    }
    SECTION("2, 4, 4, 4, 5, 5, 7, 9 ns: mean 5, population stddev exactly 2") {
        ping_statistics s;
        std::uint64_t i = 0;
        for (const auto ns : {2, 4, 4, 4, 5, 5, 7, 9})
            s.add(i++, reply(std::chrono::nanoseconds(ns)));
        CHECK(s.rtt_mean()->count() == 5.0);
        CHECK(s.rtt_stddev_population()->count() == 2.0);
        CHECK(s.rtt_stddev_sample()->count() == Approx(std::sqrt(32.0 / 7)));
        CHECK(s.rtt_min() == 2ns);
        CHECK(s.rtt_max() == 9ns);
    }
    SECTION("a zero RTT is a valid sample") {
        ping_statistics s;
        s.add(0, reply(0ns));
        s.add(1, reply(10ns));
        CHECK(s.rtt_min() == 0ns);
        CHECK(s.rtt_mean()->count() == 5.0);
        CHECK(s.rtt_stddev_population()->count() == 5.0);
    }
}

TEST_CASE("loss counts only pings whose fate is known", "[stats]") {
    ping_statistics s;
    std::uint64_t i = 0;
    for (int k = 0; k < 6; ++k)
        s.add(i++, reply(1ms));
    s.add(i++, outcome(ping_status::timeout));
    s.add(i++, outcome(ping_status::timeout));
    s.add(i++, outcome(ping_status::unreachable, 5ms));
    s.add(i++, outcome(ping_status::send_error));
    for (int k = 0; k < 3; ++k)
        s.add(i++, outcome(ping_status::cancelled));

    CHECK(s.resolved() == 10);
    CHECK(s.received() == 6);
    CHECK(s.timeouts() == 2);
    CHECK(s.icmp_errors() == 1);
    CHECK(s.send_errors() == 1);
    CHECK(s.cancelled() == 3);
    CHECK(s.loss_fraction() == Approx(0.4));
    // The unreachable's RTT is not a reply RTT.
    CHECK(s.rtt_max() == 1ms);
    CHECK(s.rtt_stddev_population()->count() == 0.0);
}

TEST_CASE("every ICMP error status counts as an ICMP error and a loss", "[stats]") {
    ping_statistics s;
    s.add(0, outcome(ping_status::unreachable, 1ms));
    s.add(1, outcome(ping_status::time_exceeded, 2ms));
    s.add(2, outcome(ping_status::packet_too_big, 3ms));
    s.add(3, outcome(ping_status::parameter_problem, 4ms));
    CHECK(s.icmp_errors() == 4);
    CHECK(s.resolved() == 4);
    CHECK(s.received() == 0);
    CHECK(s.loss_fraction() == 1.0);
    CHECK_FALSE(s.rtt_min());
    CHECK_FALSE(s.rtt_mean());
}

TEST_CASE("cancelled pings are excluded from everything", "[stats]") {
    ping_statistics s(8);
    s.add(0, outcome(ping_status::cancelled));
    s.add(5, outcome(ping_status::cancelled));
    CHECK(s.cancelled() == 2);
    CHECK(s.resolved() == 0);
    CHECK(s.loss_fraction() == 0.0);
    CHECK_FALSE(s.rtt_mean());
    CHECK(s.rtt_history().empty());

    s.add(1, reply(3ms));
    CHECK(s.resolved() == 1);
    CHECK(s.loss_fraction() == 0.0);
    CHECK(s.out_of_order() == 0);
}

TEST_CASE("out-of-order replies: lower index than the highest already replied", "[stats]") {
    ping_statistics s;
    s.add(0, reply(1ms));
    s.add(2, reply(1ms));
    CHECK(s.out_of_order() == 0);
    s.add(1, reply(3ms)); // 1 < 2
    CHECK(s.out_of_order() == 1);
    s.add(3, reply(1ms));
    CHECK(s.out_of_order() == 1);
    // Timeouts and errors at higher indices do not make a later reply late.
    s.add(9, outcome(ping_status::timeout));
    s.add(8, outcome(ping_status::unreachable));
    s.add(6, reply(1ms));
    CHECK(s.out_of_order() == 1);
    s.add(5, reply(1ms));
    s.add(4, reply(1ms));
    CHECK(s.out_of_order() == 3);
    CHECK(s.received() == 7);
}

TEST_CASE("duplicates are counted apart from replies", "[stats]") {
    ping_statistics s;
    s.add(0, reply(2ms));
    s.add_duplicate();
    s.add_duplicate();
    CHECK(s.duplicates() == 2);
    CHECK(s.received() == 1);
    CHECK(s.resolved() == 1);
    CHECK(s.loss_fraction() == 0.0);
    CHECK(s.rtt_mean()->count() == 2e6);
}

TEST_CASE("a reply with a negative RTT is rejected and changes nothing", "[stats]") {
    ping_statistics s(4);
    s.add(0, reply(5ns));
    try {
        s.add(1, reply(-7ns));
        FAIL("no exception");
    } catch (const std::invalid_argument& e) {
        CHECK_THAT(e.what(), Catch::Matchers::Contains("-7 ns"));
        CHECK_THAT(e.what(), Catch::Matchers::Contains("ping 1"));
    }
    CHECK(s.received() == 1);
    CHECK(s.rtt_min() == 5ns);
    CHECK(s.rtt_history().size() == 1);
    // Other statuses carry no RTT that matters.
    s.add(2, outcome(ping_status::unreachable, -1ns));
    CHECK(s.icmp_errors() == 1);
}

TEST_CASE("per-ping RTT history for fping -C", "[stats]") {
    SECTION("bounded by its capacity, filled by index") {
        ping_statistics s(3);
        CHECK(s.rtt_history_capacity() == 3);
        s.add(2, reply(30us));
        CHECK(s.rtt_history().size() == 3);
        s.add(0, reply(10us));
        s.add(1, outcome(ping_status::timeout));
        s.add(3, reply(40us)); // beyond the capacity: counted, not kept
        s.add(1000000, reply(50us));
        const auto h = s.rtt_history();
        REQUIRE(h.size() == 3);
        CHECK(h[0] == 10us);
        CHECK_FALSE(h[1]);
        CHECK(h[2] == 30us);
        CHECK(s.received() == 4);
    }
    SECTION("grows with the highest known index") {
        ping_statistics s(10);
        s.add(0, reply(1ms));
        s.add(3, outcome(ping_status::send_error));
        CHECK(s.rtt_history().size() == 4);
    }
    SECTION("none without a capacity") {
        ping_statistics s;
        s.add(0, reply(1ms));
        CHECK(s.rtt_history().empty());
    }
}

TEST_CASE("Welford matches a two-pass reference on random data", "[stats]") {
    const auto seed = icmpengine::testing::test_seed("ping_statistics");
    std::mt19937_64 rng(seed);
    std::lognormal_distribution<double> rtt_ms(0.0, 1.5);
    std::uniform_int_distribution<int> count(2, 5000);
    for (int round = 0; round < 50; ++round) {
        ping_statistics s;
        std::vector<std::int64_t> xs;
        const int n = count(rng);
        for (int i = 0; i < n; ++i) {
            const auto ns = static_cast<std::int64_t>(rtt_ms(rng) * 1e6);
            xs.push_back(ns);
            s.add(static_cast<std::uint64_t>(i), reply(std::chrono::nanoseconds(ns)));
        }
        const two_pass ref(xs);
        INFO("seed " << seed << " round " << round << " n " << n);
        CHECK(s.rtt_min()->count() == *std::min_element(xs.begin(), xs.end()));
        CHECK(s.rtt_max()->count() == *std::max_element(xs.begin(), xs.end()));
        CHECK(s.rtt_mean()->count() == Approx(static_cast<double>(ref.mean)).epsilon(1e-11));
        CHECK(s.rtt_stddev_population()->count() ==
              Approx(static_cast<double>(std::sqrt(ref.m2 / n))).epsilon(1e-9));
        CHECK(s.rtt_stddev_sample()->count() ==
              Approx(static_cast<double>(std::sqrt(ref.m2 / (n - 1)))).epsilon(1e-9));
    }
}

TEST_CASE("merge equals feeding one object sequentially", "[stats]") {
    const auto seed = icmpengine::testing::test_seed("ping_statistics merge");
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int> status_pick(0, 9);
    std::exponential_distribution<double> rtt_ms(0.1);
    for (int round = 0; round < 50; ++round) {
        const int n = 1 + static_cast<int>(rng() % 2000);
        const int split = static_cast<int>(rng() % static_cast<unsigned>(n + 1));
        ping_statistics all(64), first(64), second(64);
        for (int i = 0; i < n; ++i) {
            ping_result r;
            switch (status_pick(rng)) {
            case 0:
                r = outcome(ping_status::timeout);
                break;
            case 1:
                r = outcome(ping_status::time_exceeded, 1ms);
                break;
            case 2:
                r = outcome(ping_status::cancelled);
                break;
            case 3:
                r = outcome(ping_status::send_error);
                break;
            default:
                r = reply(std::chrono::nanoseconds(static_cast<std::int64_t>(rtt_ms(rng) * 1e6)));
                break;
            }
            const auto index = static_cast<std::uint64_t>(i);
            all.add(index, r);
            (i < split ? first : second).add(index, r);
            if (rng() % 50 == 0) {
                all.add_duplicate();
                (i < split ? first : second).add_duplicate();
            }
        }
        INFO("seed " << seed << " round " << round << " n " << n << " split " << split);
        ping_statistics merged = first;
        merged.merge(second);
        check_same(merged, all);
        // In send order, neither part has late replies, nor does the whole.
        CHECK(merged.out_of_order() == 0);
        CHECK(std::equal(merged.rtt_history().begin(), merged.rtt_history().end(),
                         all.rtt_history().begin(), all.rtt_history().end()));

        // The other way round, too.
        ping_statistics reversed = second;
        reversed.merge(first);
        check_same(reversed, all);
    }
}

TEST_CASE("merge edge cases", "[stats]") {
    ping_statistics a;
    a.add(0, reply(4ms));
    a.add(1, reply(6ms));

    SECTION("with an empty one, either way") {
        ping_statistics empty;
        ping_statistics left = a;
        left.merge(empty);
        check_same(left, a);
        empty.merge(a);
        check_same(empty, a);
    }
    SECTION("with itself: counts double, mean and population stddev stay") {
        a.merge(a);
        CHECK(a.received() == 4);
        CHECK(a.rtt_mean()->count() == 5e6);
        CHECK(a.rtt_stddev_population()->count() == Approx(1e6));
        CHECK(a.rtt_stddev_sample()->count() == Approx(std::sqrt(4.0 / 3) * 1e6));
    }
    SECTION("out-of-order counts add up") {
        ping_statistics b;
        b.add(3, reply(1ms));
        b.add(2, reply(1ms));
        a.add(5, reply(1ms));
        a.add(4, reply(1ms));
        a.merge(b);
        CHECK(a.out_of_order() == 2);
        // The highest replied index carries over: 4 is below 5.
        a.add(4, reply(1ms));
        CHECK(a.out_of_order() == 3);
    }
    SECTION("history keeps this capacity and fills gaps from the other") {
        ping_statistics h(3), g(5);
        h.add(0, reply(1ms));
        h.add(1, outcome(ping_status::timeout));
        g.add(1, reply(2ms));
        g.add(2, reply(3ms));
        g.add(4, reply(5ms));
        h.merge(g);
        const auto hist = h.rtt_history();
        REQUIRE(hist.size() == 3);
        CHECK(hist[0] == 1ms);
        CHECK(hist[1] == 2ms);
        CHECK(hist[2] == 3ms);
    }
}

TEST_CASE("numerical stability over 1e6 samples", "[stats]") {
    constexpr int n = 1'000'000;
    SECTION("huge RTTs with a tiny spread") {
        // 10^15 ns (11.6 days) + 0..9 ns: the sum of squares is ~10^36, where
        // a double's ulp is ~10^20; only a stable algorithm sees the spread.
        ping_statistics s;
        constexpr std::int64_t base = 1'000'000'000'000'000;
        for (int i = 0; i < n; ++i)
            s.add(static_cast<std::uint64_t>(i), reply(std::chrono::nanoseconds(base + i % 10)));
        CHECK(s.rtt_min()->count() == base);
        CHECK(s.rtt_max()->count() == base + 9);
        CHECK(s.rtt_mean()->count() == Approx(static_cast<double>(base) + 4.5).margin(0.125));
        // Population variance of 0..9 is 8.25.
        CHECK(s.rtt_stddev_population()->count() == Approx(std::sqrt(8.25)).epsilon(1e-9));
        CHECK(s.rtt_stddev_sample()->count() ==
              Approx(std::sqrt(8.25 * n / (n - 1))).epsilon(1e-9));
    }
    SECTION("constant RTT near the int64 limit: stddev exactly 0") {
        ping_statistics s;
        const auto big = std::chrono::nanoseconds(INT64_MAX - 1000);
        for (int i = 0; i < n; ++i)
            s.add(static_cast<std::uint64_t>(i), reply(big));
        CHECK(s.rtt_min() == big);
        CHECK(s.rtt_max() == big);
        CHECK(s.rtt_mean()->count() == static_cast<double>(big.count()));
        CHECK(s.rtt_stddev_population()->count() == 0.0);
        CHECK(s.rtt_stddev_sample()->count() == 0.0);
    }
    SECTION("tiny RTTs: alternating 0 and 1 ns") {
        ping_statistics s;
        for (int i = 0; i < n; ++i)
            s.add(static_cast<std::uint64_t>(i), reply(std::chrono::nanoseconds(i % 2)));
        CHECK(s.rtt_mean()->count() == Approx(0.5).epsilon(1e-12));
        CHECK(s.rtt_stddev_population()->count() == Approx(0.5).epsilon(1e-9));
    }
    SECTION("tiny and huge mixed, merged from halves") {
        ping_statistics a, b, all;
        for (int i = 0; i < n; ++i) {
            const auto rtt = std::chrono::nanoseconds(i % 2 == 0 ? 1 : 1'000'000'000'000);
            all.add(static_cast<std::uint64_t>(i), reply(rtt));
            (i < n / 2 ? a : b).add(static_cast<std::uint64_t>(i), reply(rtt));
        }
        a.merge(b);
        const double mean = (1.0 + 1e12) / 2;
        const double sd = (1e12 - 1.0) / 2;
        CHECK(all.rtt_mean()->count() == Approx(mean).epsilon(1e-12));
        CHECK(all.rtt_stddev_population()->count() == Approx(sd).epsilon(1e-9));
        CHECK(a.rtt_mean()->count() == Approx(mean).epsilon(1e-12));
        CHECK(a.rtt_stddev_population()->count() == Approx(sd).epsilon(1e-9));
    }
}
