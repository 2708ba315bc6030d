// SPDX-License-Identifier: MIT
// System tests of icmpengine::engine: pings that are answered. Replies on
// both families, payload sizes, many pings in flight, backpressure, a small
// ring and a small receive buffer, fake drops. support/system_main.cpp has
// moved this process into a private network namespace (lo up,
// ping_group_range open): every packet here goes to loopback.
#include <catch2/catch.hpp>

#include "engine_test.hpp"
#include "seed.hpp"

#include <icmpengine/icmpengine.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <set>
#include <system_error>
#include <vector>

using namespace std::chrono_literals;
using namespace icmpengine;
using namespace icmpengine::testing;

TEST_CASE("IPv4 and IPv6 loopback pings get replies with sane RTTs", "[engine]") {
    engine eng;
    auto results = eng.run(
        ping_each(eng, {addr("127.0.0.1"), addr("::1"), addr("127.0.0.1"), addr("::1")}, 2s));
    REQUIRE(results.size() == 4);
    for (std::size_t i = 0; i < results.size(); ++i) {
        const ping_result& r = results[i];
        INFO("ping " << i << ": " << to_string(r.status));
        REQUIRE(r.status == ping_status::reply);
        CHECK(r.rtt > 0ns);
        // No tighter bound: a reply stamped after its deadline would be late,
        // not a reply (test_rtt_accuracy.cpp checks RTTs against known delays).
        CHECK(r.rtt <= 2s);
        CHECK(r.bytes == 56);
        CHECK(r.ttl == 64);
        CHECK(r.from == (i % 2 == 0 ? addr("127.0.0.1") : addr("::1")));
        CHECK(r.icmp_type == (i % 2 == 0 ? 0 : 129));
        CHECK(r.error == std::error_code{});
    }
    // Each of the four got its own sequence number.
    std::set<std::uint16_t> sequences;
    for (const auto& r : results)
        sequences.insert(r.sequence);
    CHECK(sequences.size() == 4);
    CHECK(eng.socket_kind(icmpengine::ip_family::v4) == icmpengine::socket_mode::datagram);
    CHECK(eng.socket_kind(icmpengine::ip_family::v6) == icmpengine::socket_mode::datagram);
    const engine_stats s = eng.stats();
    CHECK(s.sent == 4);
    CHECK(s.replies == 4);
    require_balanced(s);
}

TEST_CASE("payload sizes from 0 to the maximum, with and without a token", "[engine]") {
    engine eng;
    // 0..15 bytes carry no token: matched by address and sequence.
    const std::vector<std::uint32_t> sizes{0, 1, 8, 15, 16, 17, 56, 1000, 1472, 9000, 65000};
    std::vector<task<ping_result>> pings;
    for (auto size : sizes) {
        pings.push_back(eng.ping(addr("127.0.0.1"), 2s, {.payload_size = size}));
        pings.push_back(eng.ping(addr("::1"), 2s, {.payload_size = size}));
    }
    pings.push_back(eng.ping(addr("127.0.0.1"), 2s, {.payload_size = 65507}));
    auto results = eng.run(icmpengine::when_all(std::move(pings)));
    for (std::size_t i = 0; i + 1 < results.size(); ++i) {
        INFO("payload " << sizes[i / 2] << (i % 2 ? " v6" : " v4"));
        REQUIRE(results[i].status == ping_status::reply);
        CHECK(results[i].bytes == sizes[i / 2]);
    }
    CHECK(results.back().status == ping_status::reply);
    CHECK(results.back().bytes == 65507);
    require_balanced(eng.stats());
    CHECK(eng.stats().invalid_packets == 0);
}

TEST_CASE("many token-less pings to one address in flight at once", "[engine]") {
    engine eng;
    std::vector<ip_address> targets(2000, addr("127.0.0.1"));
    auto results = eng.run(ping_each(eng, targets, 5s, {.payload_size = 4}));
    std::set<std::uint16_t> sequences;
    for (const auto& r : results) {
        REQUIRE(r.status == ping_status::reply);
        REQUIRE(r.bytes == 4);
        sequences.insert(r.sequence);
    }
    CHECK(sequences.size() == results.size());
    require_balanced(eng.stats());
}

TEST_CASE("two pings to the same address in flight at once each get their own reply", "[engine]") {
    engine eng;
    auto both = [](engine& e) -> task<std::vector<ping_result>> {
        std::vector<task<ping_result>> pings;
        pings.push_back(e.ping(addr("127.0.0.1"), 2s, {.payload_size = 56}));
        pings.push_back(e.ping(addr("127.0.0.1"), 2s, {.payload_size = 300}));
        pings.push_back(e.ping(addr("::1"), 2s, {.payload_size = 56}));
        pings.push_back(e.ping(addr("::1"), 2s, {.payload_size = 300}));
        co_return co_await icmpengine::when_all(std::move(pings));
    };
    auto r = eng.run(both(eng));
    for (const auto& x : r)
        REQUIRE(x.status == ping_status::reply);
    // A reply credited to the wrong ping would show the other payload size.
    CHECK(r[0].bytes == 56);
    CHECK(r[1].bytes == 300);
    CHECK(r[2].bytes == 56);
    CHECK(r[3].bytes == 300);
    CHECK(r[0].sequence != r[1].sequence);
    CHECK(r[2].sequence != r[3].sequence);
    require_balanced(eng.stats());
}

TEST_CASE("100k pings in flight at once to distinct addresses all resolve correctly",
          "[engine][scale]") {
    engine eng;
    constexpr std::uint32_t n = 100'000;
    std::vector<ip_address> targets;
    targets.reserve(n);
    for (std::uint32_t i = 0; i < n; ++i)
        targets.push_back(loopback_v4(i));
    auto results = eng.run(ping_each(eng, targets, 10s));
    REQUIRE(results.size() == n);
    std::size_t replies = 0;
    for (std::uint32_t i = 0; i < n; ++i) {
        if (results[i].status == ping_status::reply && results[i].from == targets[i])
            ++replies;
    }
    CHECK(replies == n);
    const engine_stats s = eng.stats();
    CHECK(s.replies == n);
    CHECK(s.invalid_packets == 0);
    CHECK(s.duplicate_replies == 0);
    CHECK(s.late_replies == 0);
    CHECK(s.receive_overruns == 0);
    // Submissions are batched: nowhere near one io_uring_enter per ping.
    CHECK(s.submissions < n / 8);
    require_balanced(s);
}

TEST_CASE("a receive buffer too small for a burst: every dropped reply counts as an overrun",
          "[engine][overrun]") {
    // About five replies fit in 4 KiB (each costs ~832 bytes of kernel
    // memory); 2000 requests leave in batches of 16 before the engine reads.
    engine eng({.socket_receive_buffer = 4096});
    constexpr std::uint32_t n = 2000;
    std::vector<ip_address> targets;
    for (std::uint32_t i = 0; i < n; ++i)
        targets.push_back(loopback_v4(i));
    const auto results = eng.run(ping_each(eng, targets, 300ms));
    const engine_stats s = eng.stats();
    INFO("replies " << s.replies << " timeouts " << s.timeouts << " overruns "
                    << s.receive_overruns);
    CHECK(s.receive_overruns > 0);
    // On loopback nothing else loses a reply: each drop is one timeout.
    CHECK(s.timeouts == s.receive_overruns);
    CHECK(s.replies + s.receive_overruns == n);
    CHECK(
        static_cast<std::uint64_t>(std::count_if(results.begin(), results.end(), [](const auto& r) {
            return r.status == ping_status::timeout;
        })) == s.timeouts);
    require_balanced(s);
    // Still counted once the sockets are closed (read before they close).
    eng.stop();
    CHECK(eng.stats().receive_overruns == s.receive_overruns);
}

TEST_CASE("fake drop: exactly the dropped pings time out", "[engine][fake_drop]") {
    const std::uint64_t seed = testing::test_seed("fake_drop");
    engine eng({.fake_drop_probability = 0.3, .fake_drop_seed = seed});
    constexpr std::uint32_t n = 10'000;
    std::vector<ip_address> targets;
    for (std::uint32_t i = 0; i < n; ++i)
        targets.push_back(loopback_v4(i));
    auto results = eng.run(ping_each(eng, targets, 300ms));
    std::size_t dropped = 0;
    for (const auto& r : results) {
        if (r.fake_dropped) {
            ++dropped;
            REQUIRE(r.status == ping_status::timeout);
        } else {
            REQUIRE(r.status == ping_status::reply);
        }
    }
    // Binomial(10000, 0.3): the standard deviation is ~46; allow 6 of them.
    CHECK(dropped > 2700);
    CHECK(dropped < 3300);
    const engine_stats s = eng.stats();
    CHECK(s.fake_dropped == dropped);
    CHECK(s.timeouts == dropped);
    CHECK(s.replies == n - dropped);
    require_balanced(s);
}

TEST_CASE("backpressure: beyond max_in_flight, ping() waits for a slot", "[engine]") {
    std::uint64_t max_seen = 0;
    bool done = false;
    engine eng({.max_in_flight = 16});
    auto watcher = [](engine& e, std::uint64_t& seen, const bool& done) -> task<void> {
        while (!done) {
            seen = std::max(seen, e.stats().in_flight);
            co_await e.ping(addr("::1"), 1s);
        }
    };
    auto scenario = [&](engine& e) -> task<std::vector<ping_result>> {
        std::vector<ip_address> targets;
        for (std::uint32_t i = 0; i < 3000; ++i)
            targets.push_back(loopback_v4(i));
        e.spawn(watcher(e, max_seen, done));
        auto r = co_await ping_each(e, targets, 5s);
        done = true;
        co_return r;
    };
    auto results = eng.run(scenario(eng));
    for (const auto& r : results)
        REQUIRE(r.status == ping_status::reply);
    CHECK(max_seen <= 16);
    CHECK(max_seen >= 1);
    require_balanced(eng.stats());
}

TEST_CASE("a tiny ring and few receive buffers: a full SQ and ENOBUFS lose nothing",
          "[engine][ring]") {
    engine eng({.queue_depth = 8, .send_batch = 8, .receive_buffers = 16});
    std::vector<ip_address> targets;
    for (std::uint32_t i = 0; i < 5000; ++i)
        targets.push_back(i % 3 == 0 ? addr("::1") : loopback_v4(i));
    auto results = eng.run(ping_each(eng, targets, 5s));
    std::size_t replies = 0;
    for (std::size_t i = 0; i < results.size(); ++i)
        replies += results[i].status == ping_status::reply && results[i].from == targets[i];
    CHECK(replies == targets.size());
    require_balanced(eng.stats());
    CHECK(eng.stats().receive_overruns == 0);
}

namespace {

/// `n` pings to 127.0.0.1, one after another; their sequence numbers.
task<std::vector<std::uint16_t>> sequential_sequences(engine& eng, int n) {
    std::vector<std::uint16_t> out;
    for (int i = 0; i < n; ++i) {
        const ping_result r = co_await eng.ping(addr("127.0.0.1"), 10s);
        if (r.status == ping_status::reply)
            out.push_back(r.sequence);
    }
    co_return out;
}

} // namespace

TEST_CASE("reuse_slots_after bounds the slot table: sequence numbers cycle through it",
          "[engine][slots]") {
    SECTION("by default a slot is reused only after 65,536: 40 pings, 40 sequence numbers") {
        engine eng;
        const auto seqs = eng.run(sequential_sequences(eng, 40));
        REQUIRE(seqs.size() == 40);
        CHECK(std::set<std::uint16_t>(seqs.begin(), seqs.end()).size() == 40);
    }
    SECTION("reuse_slots_after = 8: the same 8 slots, the longest-free first") {
        engine eng({.reuse_slots_after = 8});
        const auto seqs = eng.run(sequential_sequences(eng, 40));
        REQUIRE(seqs.size() == 40);
        CHECK(std::set<std::uint16_t>(seqs.begin(), seqs.end()).size() == 8);
        for (std::size_t i = 8; i < seqs.size(); ++i)
            CHECK(seqs[i] == seqs[i - 8]); // round robin: the longest-free slot
        require_balanced(eng.stats());
    }
}
