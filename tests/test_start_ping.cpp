// SPDX-License-Identifier: MIT
// System tests of icmpengine::engine::start_ping: pings without a coroutine
// frame, their results handed to a ping_handler from inside run(). Each
// result is delivered once, never from start_ping itself; pings beyond
// max_in_flight wait their turn; stop() and exceptions; invalid arguments.
// support/system_main.cpp has moved this process into a private network
// namespace: packets go to loopback and to a peer namespace created below.
#include <catch2/catch.hpp>

#include "engine_test.hpp"
#include "netns.hpp"
#include "result_collector.hpp"

#include <icmpengine/icmpengine.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using namespace icmpengine;
using namespace icmpengine::testing;

namespace {

/// Another host: a second namespace behind a veth pair. Here 198.18.7.1 and
/// 2001:db8:7::1, there 198.18.7.2 and 2001:db8:7::2 (it answers pings), and
/// 198.18.8.0/24 and 2001:db8:8::/64 routed through it into blackhole
/// routes: pings to those vanish without an ICMP error and time out. These
/// benchmarking / documentation prefixes exist only inside our namespaces.
class silent_peer {
  public:
    silent_peer() {
        testing::run("ip link add veth-h type veth peer name veth-p");
        testing::run("ip link set veth-p netns " + std::to_string(m_peer.pid()));
        m_peer.exec("ip addr add 198.18.7.2/24 dev veth-p && "
                    "ip -6 addr add 2001:db8:7::2/64 dev veth-p nodad && ip link set veth-p up && "
                    "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 "
                    "net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0 && "
                    "ip route add blackhole 198.18.8.0/24 && "
                    "ip -6 route add blackhole 2001:db8:8::/64");
        testing::run("ip addr add 198.18.7.1/24 dev veth-h && "
                     "ip -6 addr add 2001:db8:7::1/64 dev veth-h nodad && ip link set veth-h up && "
                     "ip route add 198.18.8.0/24 via 198.18.7.2 && "
                     "ip -6 route add 2001:db8:8::/64 via 2001:db8:7::2");
        // Resolve the neighbours both ways first: a burst sent while ARP / ND
        // is pending would overflow the kernel's queue of unresolved packets.
        engine warm;
        for (const ping_result& r :
             warm.run(ping_each(warm, {addr("198.18.7.2"), addr("2001:db8:7::2")}, 5s)))
            REQUIRE(r.status == ping_status::reply);
    }
    ~silent_peer() {
        try {
            testing::run("ip link del veth-h");
        } catch (...) {
            // The peer's end goes with its namespace anyway.
        }
    }
    silent_peer(const silent_peer&) = delete;
    silent_peer& operator=(const silent_peer&) = delete;

  private:
    testing::peer_netns m_peer;
};

} // namespace

TEST_CASE("start_ping: 1000 pings, each result delivered once, from run(), never from start_ping",
          "[engine][start_ping]") {
    silent_peer peer;
    const std::array<ip_address, 6> answering{addr("127.0.0.1"),  addr("::1"),
                                              addr("198.18.7.1"), addr("2001:db8:7::1"),
                                              addr("198.18.7.2"), addr("2001:db8:7::2")};
    constexpr std::size_t n = 1000;
    // Cookies are handed back whole: use all 64 bits.
    constexpr std::uint64_t first = 0xc0ffee0000000000u;
    auto silent = [](std::size_t i) { return i % 50 == 49; };
    std::vector<ip_address> targets;
    for (std::size_t i = 0; i < n; ++i) {
        if (silent(i))
            targets.push_back(i % 100 == 99 ? addr("2001:db8:8::1")
                                            : ip_address::from_v4(static_cast<std::uint32_t>(
                                                  0xc6120801u + i % 200)));
        else if (i % 7 == 6)
            targets.push_back(loopback_v4(static_cast<std::uint32_t>(i)));
        else
            targets.push_back(answering[i % 7]);
    }
    result_collector c; // declared first: it outlives the engine
    engine eng;
    for (std::size_t i = 0; i < n; ++i)
        c.start(eng, targets[i], silent(i) ? 300ms : 5s, first + i);
    CHECK(c.delivered() == 0);
    CHECK(eng.stats().sent == n);
    c.run(eng, c.wait_for(n));
    c.require_each_once(first, n);
    CHECK(c.outside_run() == 0);
    std::size_t silent_count = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const ping_result& r = c.result(first + i);
        INFO("ping " << i << " to " << targets[i].to_string() << ": " << to_string(r.status));
        CHECK(r.from == targets[i]);
        if (silent(i)) {
            ++silent_count;
            CHECK(r.status == ping_status::timeout);
            CHECK(r.rtt == 0ns);
        } else {
            CHECK(r.status == ping_status::reply);
            CHECK(r.rtt > 0ns);
            CHECK(r.bytes == 56);
        }
    }
    const engine_stats s = eng.stats();
    CHECK(s.sent == n);
    CHECK(s.replies == n - silent_count);
    CHECK(s.timeouts == silent_count);
    CHECK(s.late_replies == 0);
    CHECK(s.invalid_packets == 0);
    require_balanced(s);
}

TEST_CASE("start_ping: a handler starting the next ping from on_ping_result",
          "[engine][start_ping]") {
    // Eight chains of 50 pings each; every result starts its chain's next ping.
    constexpr std::uint64_t chains = 8;
    constexpr std::uint64_t steps = 50;
    auto target_of = [](std::uint64_t cookie) {
        const std::uint64_t chain = cookie / steps;
        return chain % 2 ? addr("::1") : loopback_v4(static_cast<std::uint32_t>(cookie));
    };
    result_collector c;
    engine eng;
    std::uint64_t max_in_flight = 0;
    c.then = [&](std::uint64_t cookie, const ping_result& r) {
        max_in_flight = std::max(max_in_flight, eng.stats().in_flight);
        if (r.status == ping_status::reply && cookie % steps + 1 < steps)
            c.start(eng, target_of(cookie + 1), 2s, cookie + 1);
    };
    for (std::uint64_t chain = 0; chain < chains; ++chain)
        c.start(eng, target_of(chain * steps), 2s, chain * steps);
    c.run(eng, c.wait_for(chains * steps));
    c.require_each_once(0, chains * steps);
    CHECK(c.outside_run() == 0);
    for (std::uint64_t cookie = 0; cookie < chains * steps; ++cookie) {
        const ping_result& r = c.result(cookie);
        INFO("cookie " << cookie);
        CHECK(r.status == ping_status::reply);
        CHECK(r.from == target_of(cookie));
    }
    // One ping per chain at a time: a chain's next ping starts only after
    // its previous one ended.
    CHECK(max_in_flight < chains);
    const engine_stats s = eng.stats();
    CHECK(s.replies == chains * steps);
    require_balanced(s);
}

TEST_CASE("start_ping: beyond max_in_flight pings wait their turn", "[engine][start_ping]") {
    constexpr std::uint64_t window = 4;
    constexpr std::size_t n = 100;
    result_collector c;
    engine eng({.max_in_flight = window});
    std::uint64_t max_in_flight = 0;
    std::uint64_t max_waiting = 0;
    c.then = [&](std::uint64_t, const ping_result&) {
        const engine_stats s = eng.stats();
        max_in_flight = std::max(max_in_flight, s.in_flight);
        max_waiting = std::max(max_waiting, s.waiting);
    };
    std::vector<ip_address> targets;
    for (std::size_t i = 0; i < n; ++i)
        targets.push_back(i % 2 ? addr("::1") : loopback_v4(static_cast<std::uint32_t>(i)));
    for (std::size_t i = 0; i < n; ++i)
        c.start(eng, targets[i], 5s, i);
    const engine_stats queued = eng.stats();
    CHECK(queued.sent == window);
    CHECK(queued.in_flight == window);
    CHECK(queued.waiting == n - window);
    CHECK(c.delivered() == 0);
    c.run(eng, c.wait_for(n));
    c.require_each_once(0, n);
    CHECK(c.outside_run() == 0);
    for (std::size_t i = 0; i < n; ++i) {
        INFO("ping " << i);
        CHECK(c.result(i).status == ping_status::reply);
        CHECK(c.result(i).from == targets[i]);
    }
    CHECK(max_in_flight <= window);
    CHECK(max_waiting > 0);
    // In turn: ping k is admitted only when at most window - 1 of the pings
    // before it are still in flight, so at least k - (window - 1) results
    // arrive before its own.
    for (std::size_t pos = 0; pos < c.order().size(); ++pos) {
        const std::uint64_t cookie = c.order()[pos];
        INFO("ping " << cookie << " delivered as result " << pos);
        CHECK(pos + window - 1 >= cookie);
    }
    const engine_stats s = eng.stats();
    CHECK(s.sent == n);
    CHECK(s.replies == n);
    require_balanced(s);
}

TEST_CASE("start_ping: coroutine pings and start_ping share one engine and its slots",
          "[engine][start_ping]") {
    constexpr std::uint64_t window = 8;
    constexpr std::size_t n = 300;
    result_collector c;
    engine eng({.max_in_flight = window});
    std::uint64_t max_in_flight = 0;
    c.then = [&](std::uint64_t, const ping_result&) {
        max_in_flight = std::max(max_in_flight, eng.stats().in_flight);
    };
    std::vector<ip_address> targets;
    for (std::size_t i = 0; i < n; ++i)
        targets.push_back(i % 3 == 0 ? addr("::1") : loopback_v4(static_cast<std::uint32_t>(i)));
    auto scenario = [&](engine& e) -> task<std::vector<ping_result>> {
        // Half of the handler's pings before the coroutines' and half after:
        // all of them queue for the same eight slots.
        for (std::size_t i = 0; i < n / 2; ++i)
            c.start(e, targets[i], 5s, i);
        std::vector<task<ping_result>> pings;
        for (std::size_t i = 0; i < n; ++i)
            pings.push_back(e.ping(targets[i], 5s));
        e.spawn([](engine& e2, result_collector& rc, const std::vector<ip_address>& t,
                   std::size_t from) -> task<void> {
            for (std::size_t i = from; i < t.size(); ++i)
                rc.start(e2, t[i], 5s, i);
            co_return;
        }(e, c, targets, n / 2));
        auto results = co_await icmpengine::when_all(std::move(pings));
        co_await c.arrivals(n);
        co_return results;
    };
    const std::vector<ping_result> coroutine_results = c.run(eng, scenario(eng));
    c.require_each_once(0, n);
    CHECK(c.outside_run() == 0);
    REQUIRE(coroutine_results.size() == n);
    for (std::size_t i = 0; i < n; ++i) {
        INFO("ping " << i);
        CHECK(coroutine_results[i].status == ping_status::reply);
        CHECK(coroutine_results[i].from == targets[i]);
        CHECK(c.result(i).status == ping_status::reply);
        CHECK(c.result(i).from == targets[i]);
    }
    CHECK(max_in_flight <= window);
    const engine_stats s = eng.stats();
    CHECK(s.sent == 2 * n);
    CHECK(s.replies == 2 * n);
    require_balanced(s);
}

TEST_CASE("start_ping: stop() ends pings in flight and queued as cancelled, later ones too",
          "[engine][start_ping][stop]") {
    // ::1 ignores echo requests: its pings stay in flight until stopped.
    testing::scoped_sysctl ignore6("net.ipv6.icmp.echo_ignore_all", "1");
    constexpr std::uint64_t window = 16;
    constexpr std::size_t n = 100;
    auto require_cancelled = [](const ping_result& r, const ip_address& to) {
        CHECK(r.status == ping_status::cancelled);
        CHECK(r.error == icmpengine::errc::stopped);
        CHECK(r.rtt == 0ns);
        CHECK(r.from == to);
    };

    SECTION("stop() from a coroutine inside run(); start_ping after it, inside and outside run()") {
        result_collector c;
        engine eng({.max_in_flight = window});
        for (std::size_t i = 0; i < n; ++i)
            c.start(eng, addr("::1"), 1h, i);
        auto scenario = [&](engine& e) -> task<void> {
            co_await e.sleep_for(10ms); // the first sixteen went out
            const engine_stats before = e.stats();
            CHECK(before.in_flight == window);
            CHECK(before.waiting == n - window);
            e.stop();
            const engine_stats after = e.stats();
            CHECK(after.in_flight == 0);
            CHECK(after.waiting == 0);
            CHECK(after.cancelled == n);
            c.start(e, addr("127.0.0.1"), 1s, n); // stopped: cancelled, delivered by the loop
            co_await c.arrivals(n + 1);
        };
        c.run(eng, scenario(eng));
        c.require_each_once(0, n + 1);
        CHECK(c.outside_run() == 0);
        for (std::size_t i = 0; i < n; ++i) {
            INFO("ping " << i);
            require_cancelled(c.result(i), addr("::1"));
        }
        require_cancelled(c.result(n), addr("127.0.0.1"));
        // Outside run(): nothing happens until the next run() delivers it.
        c.start(eng, addr("::1"), 1s, n + 1);
        CHECK(c.delivered() == n + 1);
        c.run(eng, c.wait_for(n + 2));
        c.require_each_once(0, n + 2);
        CHECK(c.outside_run() == 0);
        require_cancelled(c.result(n + 1), addr("::1"));
        const engine_stats s = eng.stats();
        CHECK(s.sent == n + 2);
        CHECK(s.cancelled == n + 2);
        require_balanced(s);
    }
    SECTION("stop() from inside on_ping_result") {
        result_collector c;
        engine eng({.max_in_flight = window});
        c.then = [&](std::uint64_t cookie, const ping_result& r) {
            if (cookie == 0) {
                CHECK(r.status == ping_status::reply);
                eng.stop();
            }
        };
        c.start(eng, addr("127.0.0.1"), 5s, 0); // answered: its handler stops the engine
        for (std::size_t i = 1; i < n; ++i)
            c.start(eng, addr("::1"), 1h, i);
        c.run(eng, c.wait_for(n));
        c.require_each_once(0, n);
        CHECK(c.outside_run() == 0);
        CHECK(c.order().front() == 0);
        for (std::size_t i = 1; i < n; ++i) {
            INFO("ping " << i);
            require_cancelled(c.result(i), addr("::1"));
        }
        const engine_stats s = eng.stats();
        CHECK(s.replies == 1);
        CHECK(s.cancelled == n - 1);
        require_balanced(s);
    }
    SECTION("stop() outside run() ends each ping once") {
        result_collector c;
        engine eng({.max_in_flight = window});
        for (std::size_t i = 0; i < n; ++i)
            c.start(eng, addr("::1"), 1h, i);
        CHECK(c.run(eng, eng.sleep_for(10ms)));
        CHECK(eng.stats().in_flight == window);
        eng.stop();
        c.run(eng, c.wait_for(n));
        c.require_each_once(0, n);
        for (std::size_t i = 0; i < n; ++i)
            require_cancelled(c.result(i), addr("::1"));
        require_balanced(eng.stats());
    }
    SECTION("the destructor ends each ping once") {
        result_collector c;
        {
            engine eng({.max_in_flight = window});
            for (std::size_t i = 0; i < n; ++i)
                c.start(eng, addr("::1"), 1h, i);
            CHECK(c.run(eng, eng.sleep_for(10ms)));
            const engine_stats s = eng.stats();
            CHECK(s.in_flight == window);
            CHECK(s.waiting == n - window);
        } // with pings in flight and queued
        c.require_each_once(0, n);
        for (std::size_t i = 0; i < n; ++i)
            require_cancelled(c.result(i), addr("::1"));
    }
}

TEST_CASE("start_ping: an exception from on_ping_result is rethrown by run(), the rest delivered",
          "[engine][start_ping]") {
    constexpr std::size_t n = 200;
    result_collector c;
    engine eng;
    c.then = [](std::uint64_t cookie, const ping_result&) {
        if (cookie == 37)
            throw std::runtime_error("handler failed on 37");
    };
    for (std::size_t i = 0; i < n; ++i)
        c.start(eng, i % 2 ? addr("::1") : loopback_v4(static_cast<std::uint32_t>(i)), 5s, i);
    CHECK_THROWS_WITH(c.run(eng, c.wait_for(n)), "handler failed on 37");
    c.require_each_once(0, n);
    CHECK(c.outside_run() == 0);
    for (std::size_t i = 0; i < n; ++i)
        CHECK(c.result(i).status == ping_status::reply);
    // Rethrown once: the engine goes on.
    c.start(eng, addr("127.0.0.1"), 5s, n);
    CHECK_NOTHROW(c.run(eng, c.wait_for(n + 1)));
    CHECK(c.result(n).status == ping_status::reply);
    const engine_stats s = eng.stats();
    CHECK(s.replies == n + 1);
    require_balanced(s);
}

TEST_CASE("start_ping: invalid arguments throw at the call; refusals are results from run()",
          "[engine][start_ping][args]") {
    SECTION("invalid arguments throw std::invalid_argument naming the value, start nothing") {
        result_collector c;
        engine eng;
        const auto ten_years = std::chrono::hours(24 * 365 * 10);
        CHECK_THROWS_AS(c.start(eng, addr("127.0.0.1"), 0ns, 1), std::invalid_argument);
        CHECK_THROWS_WITH(c.start(eng, addr("127.0.0.1"), 0ns, 1),
                          Catch::Contains("timeout = 0 ns"));
        CHECK_THROWS_AS(c.start(eng, addr("127.0.0.1"), -5ms, 2), std::invalid_argument);
        CHECK_THROWS_WITH(c.start(eng, addr("127.0.0.1"), -5ms, 2), Catch::Contains("-5000000"));
        CHECK_THROWS_AS(c.start(eng, addr("::1"), ten_years + 1ns, 3), std::invalid_argument);
        CHECK_THROWS_WITH(c.start(eng, addr("::1"), ten_years + 1ns, 3),
                          Catch::Contains("ten years"));
        CHECK_THROWS_AS(c.start(eng, addr("::1"), 1s, 4, {.payload_size = 65508}),
                        std::invalid_argument);
        CHECK_THROWS_WITH(c.start(eng, addr("::1"), 1s, 4, {.payload_size = 65508}),
                          Catch::Contains("65508"));
        CHECK(eng.stats().sent == 0);
        CHECK(eng.stats().waiting == 0);
        // The limits themselves are accepted.
        c.start(eng, addr("::1"), ten_years, 5);
        c.start(eng, addr("127.0.0.1"), 5s, 6, {.payload_size = 65507});
        c.run(eng, c.wait_for(2));
        CHECK(c.delivered() == 2);
        CHECK(c.result(5).status == ping_status::reply);
        CHECK(c.result(6).status == ping_status::reply);
        CHECK(c.result(6).bytes == 65507);
        require_balanced(eng.stats());
    }
    SECTION("no route: send_error, delivered from run()") {
        result_collector c;
        engine eng;
        c.start(eng, addr("198.51.100.1"), 2s, 1);
        c.start(eng, addr("127.0.0.1"), 2s, 2);
        CHECK(c.delivered() == 0);
        c.run(eng, c.wait_for(2));
        c.require_each_once(1, 2);
        CHECK(c.outside_run() == 0);
        CHECK(c.result(1).status == ping_status::send_error);
        CHECK(c.result(1).error == std::errc::network_unreachable);
        CHECK(c.result(2).status == ping_status::reply);
        require_balanced(eng.stats());
    }
    SECTION("a socket that cannot be opened: send_error, delivered from run()") {
        testing::scoped_sysctl forbid("net.ipv4.ping_group_range", "1 0");
        result_collector c;
        engine eng({.mode = icmpengine::socket_mode::datagram});
        c.start(eng, addr("127.0.0.1"), 1s, 1);
        CHECK(c.delivered() == 0);
        c.run(eng, c.wait_for(1));
        c.require_each_once(1, 1);
        CHECK(c.outside_run() == 0);
        CHECK(c.result(1).status == ping_status::send_error);
        CHECK(c.result(1).error == icmpengine::errc::ping_group_range);
        require_balanced(eng.stats());
    }
}
