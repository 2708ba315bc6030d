// System tests of icmpengine::engine. support/system_main.cpp has moved this
// process into a private network namespace (lo up, ping_group_range open):
// every packet here goes to loopback or to namespaces created below.
#include <catch2/catch.hpp>

#include "engine_core.hpp"
#include "netns.hpp"
#include "packet.hpp"
#include "seed.hpp"

#include <icmpengine/icmpengine.hpp>

#include <algorithm>
#include <arpa/inet.h>
#include <array>
#include <chrono>
#include <coroutine>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <netinet/in.h>
#include <optional>
#include <poll.h>
#include <random>
#include <set>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using icmpengine::engine;
using icmpengine::engine_config;
using icmpengine::engine_stats;
using icmpengine::ip_address;
using icmpengine::ping_result;
using icmpengine::ping_status;
using icmpengine::task;
namespace testing = icmpengine::testing;

namespace {

using clock_type = std::chrono::steady_clock;

ip_address addr(const char* text) {
    return ip_address::parse(text);
}

// 127.1.0.1 upward: distinct loopback targets (all of 127/8 is local).
ip_address loopback_v4(std::uint32_t i) {
    return ip_address::from_v4(0x7f010001u + i);
}

/// The engine's counters balance: every accepted ping ended exactly once or
/// is still in flight.
void require_balanced(const engine_stats& s) {
    INFO("sent " << s.sent << " replies " << s.replies << " timeouts " << s.timeouts
                 << " icmp_errors " << s.icmp_errors << " send_errors " << s.send_errors
                 << " cancelled " << s.cancelled << " in_flight " << s.in_flight);
    REQUIRE(s.sent ==
            s.replies + s.timeouts + s.icmp_errors + s.send_errors + s.cancelled + s.in_flight);
    REQUIRE(s.waiting == 0);
}

task<std::vector<ping_result>> ping_all(engine& eng, std::vector<ip_address> targets,
                                        std::chrono::nanoseconds timeout,
                                        icmpengine::ping_options options = {}) {
    std::vector<task<ping_result>> pings;
    pings.reserve(targets.size());
    for (const auto& t : targets)
        pings.push_back(eng.ping(t, timeout, options));
    co_return co_await icmpengine::when_all(std::move(pings));
}

/// A ping together with when it ended, as seen by the awaiting coroutine.
struct timed_result {
    ping_result result;
    clock_type::time_point started;
    clock_type::time_point ended;
};

task<timed_result> timed_ping(engine& eng, ip_address to, std::chrono::nanoseconds timeout) {
    timed_result t;
    t.started = clock_type::now();
    t.result = co_await eng.ping(to, timeout);
    t.ended = clock_type::now();
    co_return t;
}

/// An awaitable nobody ever resumes (for run()'s deadlock detection).
struct never {
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<>) const noexcept {}
    void await_resume() const noexcept {}
};

// The lateness allowed when checking that a timeout fired on time. The
// machines are small and noisy, and sanitizers slow everything.
constexpr auto timing_slack = 30ms;

} // namespace

TEST_CASE("IPv4 and IPv6 loopback pings get replies with sane RTTs", "[engine]") {
    engine eng;
    auto results = eng.run(
        ping_all(eng, {addr("127.0.0.1"), addr("::1"), addr("127.0.0.1"), addr("::1")}, 2s));
    REQUIRE(results.size() == 4);
    for (std::size_t i = 0; i < results.size(); ++i) {
        const ping_result& r = results[i];
        INFO("ping " << i << ": " << to_string(r.status));
        REQUIRE(r.status == ping_status::reply);
        CHECK(r.rtt > 0ns);
        CHECK(r.rtt < 100ms);
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
    auto results = eng.run(ping_all(eng, targets, 5s, {.payload_size = 4}));
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

namespace {

/// A raw IPv4 ICMP socket bound to `source`: what it sends comes from there.
int raw_socket_from(const char* source) {
    const int fd = ::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
    REQUIRE(fd >= 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    ::inet_pton(AF_INET, source, &sa.sin_addr);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    return fd;
}

/// Waits for the engine's echo request to `target` and returns its ICMP
/// message (header + payload), as a sniffer on the path would see it.
std::vector<std::byte> capture_request(int raw, const char* target) {
    in_addr want{};
    ::inet_pton(AF_INET, target, &want);
    for (int i = 0; i < 1000; ++i) {
        pollfd p{raw, POLLIN, 0};
        if (::poll(&p, 1, 5000) != 1)
            break;
        std::array<std::byte, 2048> buf{};
        const ssize_t n = ::recv(raw, buf.data(), buf.size(), 0);
        const std::size_t ihl = (std::to_integer<std::size_t>(buf[0]) & 0x0f) * 4;
        if (n < static_cast<ssize_t>(ihl + 8) || std::to_integer<int>(buf[ihl]) != 8 ||
            std::memcmp(buf.data() + 16, &want, 4) != 0)
            continue;
        return {buf.begin() + static_cast<std::ptrdiff_t>(ihl), buf.begin() + n};
    }
    FAIL("the engine's echo request never appeared");
    return {};
}

/// Sends `message` as an echo reply (type 0, checksum fixed) to 127.0.0.1.
void send_reply(int raw, std::vector<std::byte> message) {
    message[0] = std::byte{0};
    message[2] = message[3] = std::byte{0};
    const std::uint16_t sum = icmpengine::detail::internet_checksum(message);
    message[2] = std::byte(sum >> 8);
    message[3] = std::byte(sum & 0xff);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    REQUIRE(::sendto(raw, message.data(), message.size(), 0, reinterpret_cast<sockaddr*>(&to),
                     sizeof to) == static_cast<ssize_t>(message.size()));
}

} // namespace

TEST_CASE("forged, corrupted, truncated and duplicate replies never resolve a ping",
          "[engine][matching]") {
    // The kernel does not answer; a forger on the path does, with what it
    // sniffed from our request.
    testing::scoped_sysctl ignore4("net.ipv4.icmp_echo_ignore_all", "1");
    const int sniffer = raw_socket_from("127.0.0.5");
    const int impostor = raw_socket_from("127.0.0.6");
    std::thread forger([&] {
        const std::vector<std::byte> request = capture_request(sniffer, "127.0.0.5");
        auto variant = [&](auto change) {
            std::vector<std::byte> m = request;
            change(m);
            return m;
        };
        send_reply(impostor, request); // right bytes, wrong source
        send_reply(sniffer, variant([](auto& m) { m[8 + 12] ^= std::byte{1}; }));   // bad tag
        send_reply(sniffer, variant([](auto& m) { m[8 + 4] ^= std::byte{1}; }));    // generation
        send_reply(sniffer, variant([](auto& m) { m.back() ^= std::byte{0x80}; })); // payload
        send_reply(sniffer, variant([](auto& m) { m.resize(m.size() - 1); }));      // truncated
        send_reply(sniffer, variant([](auto& m) { m[7] ^= std::byte{1}; })); // other sequence
        send_reply(sniffer, request);                                        // the genuine reply
        send_reply(sniffer, request); // and a duplicate of it
    });
    engine eng;
    const ping_result r = eng.run(eng.ping(addr("127.0.0.5"), 5s));
    forger.join();
    // One more turn of the loop so that the duplicate is read too.
    CHECK(eng.run(eng.ping(addr("127.0.0.7"), 100ms)).status == ping_status::timeout);
    ::close(sniffer);
    ::close(impostor);

    CHECK(r.status == ping_status::reply);
    CHECK(r.from == addr("127.0.0.5"));
    CHECK(r.bytes == 56);
    const engine_stats s = eng.stats();
    CHECK(s.replies == 1);
    CHECK(s.invalid_packets == 6);
    CHECK(s.duplicate_replies == 1);
    CHECK(s.late_replies == 0);
    require_balanced(s);
}

TEST_CASE("timeouts when the target ignores echo requests", "[engine][timeout]") {
    testing::scoped_sysctl ignore4("net.ipv4.icmp_echo_ignore_all", "1");
    testing::scoped_sysctl ignore6("net.ipv6.icmp.echo_ignore_all", "1");
    engine eng;
    const auto t0 = clock_type::now();
    auto results = eng.run(ping_all(eng, {addr("127.0.0.1"), addr("::1")}, 100ms));
    const auto elapsed = clock_type::now() - t0;
    for (const auto& r : results) {
        CHECK(r.status == ping_status::timeout);
        CHECK(r.rtt == 0ns);
        CHECK_FALSE(r.fake_dropped);
    }
    CHECK(elapsed >= 100ms);
    CHECK(elapsed < 100ms + timing_slack);
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
        CHECK(took >= expected[i]);
        CHECK(took < expected[i] + timing_slack);
    }
    // Deadline order: each resolved no earlier than the one before it.
    for (std::size_t i = 1; i < 6; ++i)
        CHECK(done[i].ended >= done[i - 1].ended);
    eng.stop();
    REQUIRE(done.size() == 8);
    CHECK(done[7].result.status == ping_status::cancelled);
    CHECK(done[7].ended - done[7].started < 10s);
    const engine_stats s = eng.stats();
    CHECK(s.timeouts == 7);
    CHECK(s.cancelled == 1);
    require_balanced(s);
}

TEST_CASE("100k pings in flight at once to distinct addresses all resolve correctly",
          "[engine][scale]") {
    engine eng;
    constexpr std::uint32_t n = 100'000;
    std::vector<ip_address> targets;
    targets.reserve(n);
    for (std::uint32_t i = 0; i < n; ++i)
        targets.push_back(loopback_v4(i));
    auto results = eng.run(ping_all(eng, targets, 10s));
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
    const auto results = eng.run(ping_all(eng, targets, 300ms));
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

TEST_CASE("stop() called again from inside stop(): each result once, no frame freed early",
          "[engine][stop]") {
    SECTION("from a handler that starts a ping and stops") {
        struct handler final : icmpengine::ping_handler {
            engine* eng = nullptr;
            std::map<std::uint64_t, int> calls;
            void on_ping_result(std::uint64_t cookie, const ping_result& r) override {
                CHECK(r.status == ping_status::cancelled);
                if (calls[cookie]++ == 0 && calls.size() == 1) {
                    eng->start_ping(ip_address::parse("127.0.0.1"), 1s, *this, 100);
                    eng->stop();
                }
            }
        } h;
        engine eng({.fake_drop_probability = 1.0}); // nothing answers before stop()
        h.eng = &eng;
        for (std::uint64_t i = 0; i < 3; ++i)
            eng.start_ping(ip_address::parse("127.0.0.1"), 5s, h, i);
        eng.stop();
        REQUIRE(h.calls.size() == 4);
        for (const auto& [cookie, n] : h.calls) {
            INFO("cookie " << cookie);
            CHECK(n == 1);
        }
        const engine_stats s = eng.stats();
        CHECK(s.cancelled == 4);
        require_balanced(s);
    }
    SECTION("from a spawned task whose ping stop() cancelled") {
        engine eng({.fake_drop_probability = 1.0});
        bool after_stop = false;
        auto worker = [](engine& e, bool& after) -> task<void> {
            const ping_result r = co_await e.ping(ip_address::parse("127.0.0.1"), 5s);
            CHECK(r.status == ping_status::cancelled);
            e.stop();
            after = true; // the frame must still be alive here
        };
        eng.spawn(worker(eng, after_stop));
        eng.run(eng.sleep_for(1ms)); // the worker is now waiting for its reply
        eng.stop();
        CHECK(after_stop);
        require_balanced(eng.stats());
    }
}

TEST_CASE("forget(): a handler's pending pings end without it; a ping_all task destroyed early",
          "[engine][start_ping][forget]") {
    SECTION("in flight, waiting and ended but undelivered") {
        struct counting final : icmpengine::ping_handler {
            int calls = 0;
            void on_ping_result(std::uint64_t, const ping_result&) override { ++calls; }
        } forgotten, kept;
        engine eng({.max_in_flight = 8, .fake_drop_probability = 1.0}); // all time out
        for (std::uint64_t i = 0; i < 6; ++i)
            eng.start_ping(ip_address::parse("127.0.0.1"), 20ms, forgotten, i);
        for (std::uint64_t i = 0; i < 6; ++i)
            eng.start_ping(ip_address::parse("127.0.0.1"), 20ms, kept, i);
        CHECK(eng.stats().in_flight == 8);
        CHECK(eng.stats().waiting == 4);
        eng.forget(forgotten); // 6 in flight; none of its own waiting
        CHECK(eng.stats().waiting == 4);
        eng.run(eng.sleep_for(200ms));
        CHECK(forgotten.calls == 0);
        CHECK(kept.calls == 6);
        const engine_stats s = eng.stats();
        CHECK(s.sent == 12);
        CHECK(s.timeouts == 12);
        require_balanced(s);

        // Waiting for a slot: withdrawn, never sent.
        for (std::uint64_t i = 0; i < 12; ++i)
            eng.start_ping(ip_address::parse("127.0.0.1"), 20ms, i < 8 ? kept : forgotten, i);
        CHECK(eng.stats().waiting == 4);
        eng.forget(forgotten);
        CHECK(eng.stats().waiting == 0);
        eng.run(eng.sleep_for(200ms));
        CHECK(forgotten.calls == 0);
        CHECK(kept.calls == 14);
        CHECK(eng.stats().sent == 20);
        require_balanced(eng.stats());
    }
    SECTION("a ping_all task destroyed with its pings in flight") {
        engine eng({.fake_drop_probability = 1.0}); // all time out
        const std::vector<ip_address> targets(64, ip_address::parse("127.0.0.1"));
        std::vector<ping_result> results(targets.size());
        {
            task<void> all = icmpengine::ping_all(eng, targets, results, {.timeout = 50ms});
            auto start = [](engine& e, task<void>& t) -> task<void> {
                // Started by hand, not awaited: it starts its pings and waits.
                icmpengine::detail::task_access::handle(t).resume();
                co_await e.sleep_for(1ms);
            };
            eng.run(start(eng, all));
            CHECK(eng.stats().in_flight == 64);
        }                              // destroyed here, its pings still in flight
        eng.run(eng.sleep_for(150ms)); // they time out with nobody to tell
        const engine_stats s = eng.stats();
        CHECK(s.timeouts == 64);
        require_balanced(s);
    }
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
        co_return co_await ping_all(e, targets, 1s);
    };
    const auto results = eng.run(scenario(eng));
    CHECK(in_flight_seen == n);
    REQUIRE(results.size() == n);
    CHECK(std::all_of(results.begin(), results.end(),
                      [](const ping_result& r) { return r.status == ping_status::timeout; }));
    CHECK(eng.stats().timeouts == n);
    require_balanced(eng.stats());
}

TEST_CASE("fake drop: exactly the dropped pings time out", "[engine][fake_drop]") {
    const std::uint64_t seed = testing::test_seed("fake_drop");
    engine eng({.fake_drop_probability = 0.3, .fake_drop_seed = seed});
    constexpr std::uint32_t n = 10'000;
    std::vector<ip_address> targets;
    for (std::uint32_t i = 0; i < n; ++i)
        targets.push_back(loopback_v4(i));
    auto results = eng.run(ping_all(eng, targets, 300ms));
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

TEST_CASE("stop() with 10k pings in flight resumes each exactly once as cancelled",
          "[engine][stop]") {
    testing::scoped_sysctl ignore4("net.ipv4.icmp_echo_ignore_all", "1");
    testing::scoped_sysctl ignore6("net.ipv6.icmp.echo_ignore_all", "1");
    std::vector<int> resumed(10'000, 0);
    std::vector<ping_status> statuses(10'000, ping_status::reply);
    engine eng;
    auto one = [](engine& e, ip_address a, int& count, ping_status& status) -> task<void> {
        const ping_result r = co_await e.ping(a, 1h);
        ++count;
        status = r.status;
    };
    auto scenario = [&](engine& e) -> task<void> {
        std::vector<task<void>> pings;
        for (std::uint32_t i = 0; i < resumed.size(); ++i)
            pings.push_back(one(e, i % 2 ? addr("::1") : loopback_v4(i), resumed[i], statuses[i]));
        e.spawn([](engine& e2) -> task<void> {
            co_await e2.ping(addr("127.0.0.1"), 20ms); // times out
            e2.stop();
        }(e));
        co_await icmpengine::when_all(std::move(pings));
    };
    eng.run(scenario(eng));
    CHECK(std::all_of(resumed.begin(), resumed.end(), [](int c) { return c == 1; }));
    CHECK(std::all_of(statuses.begin(), statuses.end(),
                      [](ping_status s) { return s == ping_status::cancelled; }));
    CHECK(eng.stopped());
    // Later pings end at once as cancelled.
    auto late = eng.run(eng.ping(addr("127.0.0.1"), 1s));
    CHECK(late.status == ping_status::cancelled);
    CHECK(late.error == icmpengine::errc::stopped);
    const engine_stats s = eng.stats();
    CHECK(s.cancelled == 10'001);
    CHECK(s.in_flight == 0);
    require_balanced(s);
}

TEST_CASE("destroying the engine with 10k pings in flight cancels them all", "[engine][stop]") {
    testing::scoped_sysctl ignore4("net.ipv4.icmp_echo_ignore_all", "1");
    std::vector<int> resumed(10'000, 0);
    std::vector<ping_status> statuses(10'000, ping_status::reply);
    {
        engine eng;
        for (std::uint32_t i = 0; i < resumed.size(); ++i)
            eng.spawn([](engine& e, ip_address a, int& count, ping_status& status) -> task<void> {
                const ping_result r = co_await e.ping(a, 1h);
                ++count;
                status = r.status;
            }(eng, loopback_v4(i), resumed[i], statuses[i]));
        // Let them all go out, then leave with them pending.
        auto r = eng.run(eng.ping(addr("127.0.0.1"), 30ms));
        CHECK(r.status == ping_status::timeout);
        CHECK(eng.stats().in_flight == resumed.size());
        require_balanced(eng.stats());
    }
    CHECK(std::all_of(resumed.begin(), resumed.end(), [](int c) { return c == 1; }));
    CHECK(std::all_of(statuses.begin(), statuses.end(),
                      [](ping_status s) { return s == ping_status::cancelled; }));
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
        auto r = co_await ping_all(e, targets, 5s);
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

namespace {

/// A ping_handler for engine::start_ping that keeps every result by cookie
/// and checks where it is called from: start() and run() mark their spans,
/// and results that arrive inside start_ping or outside run() are counted.
/// `then` runs after each result is recorded; it may start further pings or
/// throw. A coroutine waits for results with `co_await arrivals(n)`: the
/// n-th result resumes it from inside the handler, and so from inside run().
class result_collector final : public icmpengine::ping_handler {
  public:
    result_collector() = default;
    result_collector(const result_collector&) = delete;
    result_collector& operator=(const result_collector&) = delete;
    ~result_collector() = default;

    void start(engine& e, ip_address to, std::chrono::nanoseconds timeout, std::uint64_t cookie,
               icmpengine::ping_options options = {}) {
        struct span {
            int& depth;
            ~span() { --depth; }
        } inside{++m_starting};
        e.start_ping(to, timeout, *this, cookie, options);
    }

    template <typename T>
    T run(engine& e, task<T> t) {
        struct span {
            bool& flag;
            ~span() { flag = false; }
        } inside{m_running = true};
        return e.run(std::move(t));
    }

    struct arrival {
        result_collector& c;
        std::size_t n;
        bool await_ready() const noexcept { return c.m_delivered >= n; }
        void await_suspend(std::coroutine_handle<> h) noexcept {
            c.m_waiter = h;
            c.m_wanted = n;
        }
        void await_resume() const noexcept {}
    };
    /// Resumes the awaiting coroutine once `n` results have arrived in all.
    arrival arrivals(std::size_t n) noexcept { return {*this, n}; }
    task<void> wait_for(std::size_t n) { co_await arrivals(n); }

    void on_ping_result(std::uint64_t cookie, const ping_result& result) override {
        m_inside_start += m_starting > 0 ? 1 : 0;
        m_outside_run += m_running ? 0 : 1;
        m_results[cookie].push_back(result);
        m_order.push_back(cookie);
        ++m_delivered;
        std::exception_ptr error;
        if (then) {
            try {
                then(cookie, result);
            } catch (...) {
                error = std::current_exception();
            }
        }
        if (m_waiter && m_delivered >= m_wanted)
            std::exchange(m_waiter, {}).resume();
        if (error)
            std::rethrow_exception(error);
    }

    /// Each cookie in [first, first + n) got exactly one result, nothing else
    /// arrived, and nothing arrived inside start_ping.
    void require_each_once(std::uint64_t first, std::size_t n) const {
        CHECK(m_inside_start == 0);
        REQUIRE(m_delivered == n);
        REQUIRE(m_results.size() == n);
        for (const auto& [cookie, results] : m_results) {
            INFO("cookie " << cookie);
            REQUIRE(cookie - first < n);
            REQUIRE(results.size() == 1);
        }
    }

    const ping_result& result(std::uint64_t cookie) const {
        INFO("cookie " << cookie);
        REQUIRE(m_results.count(cookie) == 1);
        return m_results.at(cookie).front();
    }
    std::size_t delivered() const noexcept { return m_delivered; }
    std::size_t outside_run() const noexcept { return m_outside_run; }
    /// Cookies in the order their results arrived.
    const std::vector<std::uint64_t>& order() const noexcept { return m_order; }

    std::function<void(std::uint64_t, const ping_result&)> then;

  private:
    std::map<std::uint64_t, std::vector<ping_result>> m_results;
    std::vector<std::uint64_t> m_order;
    std::size_t m_delivered = 0;
    std::size_t m_inside_start = 0;
    std::size_t m_outside_run = 0;
    int m_starting = 0;
    bool m_running = false;
    std::coroutine_handle<> m_waiter;
    std::size_t m_wanted = 0;
};

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
             warm.run(ping_all(warm, {addr("198.18.7.2"), addr("2001:db8:7::2")}, 5s)))
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
        CHECK_THROWS_WITH(c.start(eng, addr("127.0.0.1"), 0ns, 1), Catch::Contains("timeout 0 ns"));
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

TEST_CASE("a tiny ring and few receive buffers: a full SQ and ENOBUFS lose nothing",
          "[engine][ring]") {
    engine eng({.queue_depth = 8, .send_batch = 8, .receive_buffers = 16});
    std::vector<ip_address> targets;
    for (std::uint32_t i = 0; i < 5000; ++i)
        targets.push_back(i % 3 == 0 ? addr("::1") : loopback_v4(i));
    auto results = eng.run(ping_all(eng, targets, 5s));
    std::size_t replies = 0;
    for (std::size_t i = 0; i < results.size(); ++i)
        replies += results[i].status == ping_status::reply && results[i].from == targets[i];
    CHECK(replies == targets.size());
    require_balanced(eng.stats());
    CHECK(eng.stats().receive_overruns == 0);
}

TEST_CASE("ICMP errors from a router resolve pings as unreachable / time_exceeded",
          "[engine][icmp_error]") {
    // A router namespace behind a veth pair. It answers 198.19.0.0/24 and
    // 2001:db8:ff::/48 with "unreachable" and forwards 198.19.1.0/24 and
    // 2001:db8:fe::/48 (so a TTL of 1 expires there). These benchmarking /
    // documentation prefixes exist only inside our namespaces.
    testing::peer_netns router;
    const std::string pid = std::to_string(router.pid());
    testing::run("ip link add veth-a type veth peer name veth-r");
    testing::run("ip link set veth-r netns " + pid);
    testing::run("ip addr add 198.18.0.1/30 dev veth-a && "
                 "ip -6 addr add 2001:db8:1::1/64 dev veth-a nodad && ip link set veth-a up");
    router.exec("ip addr add 198.18.0.2/30 dev veth-r && "
                "ip -6 addr add 2001:db8:1::2/64 dev veth-r nodad && ip link set veth-r up && "
                "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 "
                "net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0 && "
                "ip route add unreachable 198.19.0.0/24 && "
                "ip -6 route add unreachable 2001:db8:ff::/48 && "
                "ip route add 198.19.1.0/24 via 198.18.0.1 && "
                "ip -6 route add 2001:db8:fe::/48 via 2001:db8:1::1");
    testing::run("ip route add 198.19.0.0/16 via 198.18.0.2 && "
                 "ip -6 route add 2001:db8:fe::/47 via 2001:db8:1::2");

    SECTION("unreachable") {
        engine eng;
        auto r = eng.run(
            ping_all(eng, {addr("198.19.0.1"), addr("2001:db8:ff::1"), addr("198.19.0.2")}, 5s));
        CHECK(r[0].status == ping_status::unreachable);
        CHECK(r[0].from == addr("198.18.0.2"));
        CHECK(r[0].icmp_type == 3);
        CHECK(r[0].rtt > 0ns);
        CHECK(r[1].status == ping_status::unreachable);
        CHECK(r[1].from == addr("2001:db8:1::2"));
        CHECK(r[1].icmp_type == 1);
        CHECK(r[2].status == ping_status::unreachable);
        const engine_stats s = eng.stats();
        CHECK(s.icmp_errors == 3);
        require_balanced(s);
        // The receive path survived the socket errors: loopback still works.
        CHECK(eng.run(eng.ping(addr("127.0.0.1"), 2s)).status == ping_status::reply);
        CHECK(eng.run(eng.ping(addr("::1"), 2s)).status == ping_status::reply);
    }
    SECTION("time exceeded") {
        engine eng({.ttl = 1});
        auto r = eng.run(ping_all(eng, {addr("198.19.1.1"), addr("2001:db8:fe::1")}, 5s));
        CHECK(r[0].status == ping_status::time_exceeded);
        CHECK(r[0].from == addr("198.18.0.2"));
        CHECK(r[0].icmp_type == 11);
        CHECK(r[1].status == ping_status::time_exceeded);
        CHECK(r[1].from == addr("2001:db8:1::2"));
        CHECK(r[1].icmp_type == 3);
        require_balanced(eng.stats());
    }
    SECTION("raw sockets see ICMP errors in-band") {
        engine eng({.mode = icmpengine::socket_mode::raw});
        auto r = eng.run(ping_all(eng, {addr("198.19.0.1"), addr("2001:db8:ff::1")}, 5s));
        CHECK(r[0].status == ping_status::unreachable);
        CHECK(r[0].from == addr("198.18.0.2"));
        CHECK(r[1].status == ping_status::unreachable);
        CHECK(r[1].from == addr("2001:db8:1::2"));
        require_balanced(eng.stats());
    }
    testing::run("ip link del veth-a");
}

TEST_CASE("raw sockets when ping_group_range forbids datagram sockets", "[engine][raw]") {
    testing::scoped_sysctl forbid("net.ipv4.ping_group_range", "1 0");
    SECTION("automatic mode falls back to raw") {
        engine eng;
        auto r = eng.run(ping_all(eng, {addr("127.0.0.1"), addr("::1"), addr("127.0.0.1")}, 2s));
        for (const auto& x : r) {
            CHECK(x.status == ping_status::reply);
            CHECK(x.rtt > 0ns);
        }
        CHECK(r[0].ttl == 64);
        // Longer than a receive buffer: the kernel truncates the datagram
        // (IP header included on raw IPv4) and the prefix still matches.
        auto big =
            eng.run(ping_all(eng, {addr("127.0.0.1"), addr("::1")}, 2s, {.payload_size = 3000}));
        CHECK(big[0].status == ping_status::reply);
        CHECK(big[0].bytes == 3000);
        CHECK(big[1].status == ping_status::reply);
        CHECK(big[1].bytes == 3000);
        CHECK(eng.socket_kind(icmpengine::ip_family::v4) == icmpengine::socket_mode::raw);
        CHECK(eng.socket_kind(icmpengine::ip_family::v6) == icmpengine::socket_mode::raw);
        require_balanced(eng.stats());
    }
    SECTION("datagram mode reports the sysctl to fix") {
        engine eng({.mode = icmpengine::socket_mode::datagram});
        const std::error_code ec = eng.open(icmpengine::ip_family::v4);
        CHECK(ec == icmpengine::errc::ping_group_range);
        CHECK_THAT(ec.message(), Catch::Contains("net.ipv4.ping_group_range"));
        auto r = eng.run(eng.ping(addr("127.0.0.1"), 1s));
        CHECK(r.status == ping_status::send_error);
        CHECK(r.error == icmpengine::errc::ping_group_range);
        require_balanced(eng.stats());
    }
    SECTION("many raw pings: other engines' replies are not ours") {
        engine a({.mode = icmpengine::socket_mode::raw});
        engine b({.mode = icmpengine::socket_mode::raw});
        std::vector<ip_address> targets;
        for (std::uint32_t i = 0; i < 2000; ++i)
            targets.push_back(loopback_v4(i));
        b.spawn([](engine& e, std::vector<ip_address> t) -> task<void> {
            auto r = co_await ping_all(e, std::move(t), 5s);
            (void)r;
        }(b, targets));
        auto ra = a.run(ping_all(a, targets, 5s));
        for (const auto& x : ra)
            REQUIRE(x.status == ping_status::reply);
        require_balanced(a.stats());
    }
}

TEST_CASE("without CAP_NET_RAW and outside ping_group_range the error names the fix",
          "[engine][raw]") {
    testing::scoped_sysctl forbid("net.ipv4.ping_group_range", "1 0");
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        // nobody: no capabilities, gid 65534 outside "1 0".
        if (::setgid(65534) != 0 || ::setuid(65534) != 0)
            ::_exit(10);
        engine eng;
        const std::error_code ec = eng.open(icmpengine::ip_family::v4);
        if (ec != icmpengine::errc::ping_group_range)
            ::_exit(11);
        if (ec.message().find("sysctl -w net.ipv4.ping_group_range") == std::string::npos)
            ::_exit(12);
        auto r = eng.run(eng.ping(addr("127.0.0.1"), 1s));
        if (r.status != ping_status::send_error || r.error != icmpengine::errc::ping_group_range)
            ::_exit(13);
        engine raw({.mode = icmpengine::socket_mode::raw});
        if (raw.open(icmpengine::ip_family::v6) != icmpengine::errc::no_cap_net_raw)
            ::_exit(14);
        ::_exit(0);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("a send error for one target does not disturb the others", "[engine]") {
    // No route to 198.51.100.0/24 in this namespace: sendto fails at once.
    engine eng;
    auto r = eng.run(ping_all(
        eng, {addr("127.0.0.1"), addr("198.51.100.1"), addr("::1"), addr("2001:db8:dead::1")}, 2s));
    CHECK(r[0].status == ping_status::reply);
    CHECK(r[1].status == ping_status::send_error);
    CHECK(r[1].error == std::errc::network_unreachable);
    CHECK(r[2].status == ping_status::reply);
    CHECK(r[3].status == ping_status::send_error);
    CHECK(r[3].error);
    const engine_stats s = eng.stats();
    CHECK(s.send_errors == 2);
    require_balanced(s);
}

TEST_CASE("socket options: source address, interface, DSCP, TTL, DF", "[engine][options]") {
    SECTION("all set, still answered") {
        engine eng({.dscp = 46,
                    .ttl = 3,
                    .dont_fragment = true,
                    .source_v4 = addr("127.0.0.9"),
                    .source_v6 = addr("::1"),
                    .interface = "lo"});
        auto r = eng.run(ping_all(eng, {addr("127.0.0.1"), addr("::1")}, 2s));
        CHECK(r[0].status == ping_status::reply);
        CHECK(r[1].status == ping_status::reply);
        require_balanced(eng.stats());
    }
    SECTION("an unknown interface is a clear send error") {
        engine eng({.interface = "nosuchif0"});
        auto ec = eng.open(icmpengine::ip_family::v4);
        CHECK(ec == std::errc::no_such_device);
        auto r = eng.run(eng.ping(addr("127.0.0.1"), 1s));
        CHECK(r.status == ping_status::send_error);
        CHECK(r.error == std::errc::no_such_device);
        require_balanced(eng.stats());
    }
    SECTION("DF with a packet larger than the MTU") {
        testing::run("ip link set lo mtu 1500");
        engine eng({.dont_fragment = true});
        auto r = eng.run(eng.ping(addr("127.0.0.1"), 1s, {.payload_size = 3000}));
        CHECK(r.status == ping_status::send_error);
        CHECK(r.error == std::errc::message_size);
        CHECK(eng.run(eng.ping(addr("127.0.0.1"), 1s)).status == ping_status::reply);
        require_balanced(eng.stats());
        testing::run("ip link set lo mtu 65536");
    }
}

TEST_CASE("invalid arguments throw std::invalid_argument naming the value", "[engine][args]") {
    engine eng;
    CHECK_THROWS_WITH(eng.ping(addr("127.0.0.1"), 0ns), Catch::Contains("timeout 0 ns"));
    CHECK_THROWS_WITH(eng.ping(addr("127.0.0.1"), -5ms), Catch::Contains("-5000000"));
    CHECK_THROWS_WITH(eng.ping(addr("127.0.0.1"), 1s, {.payload_size = 65508}),
                      Catch::Contains("65508"));
    CHECK_THROWS_AS(eng.ping(addr("::1"), std::chrono::hours(24 * 365 * 11)),
                    std::invalid_argument);
    CHECK_THROWS_WITH(engine({.queue_depth = 1000}), Catch::Contains("queue_depth = 1000"));
    CHECK_THROWS_WITH(engine({.max_in_flight = 0}), Catch::Contains("max_in_flight = 0"));
    CHECK_THROWS_WITH(engine({.send_batch = 0}), Catch::Contains("send_batch = 0"));
    CHECK_THROWS_WITH(engine({.receive_buffers = 100}), Catch::Contains("receive_buffers = 100"));
    CHECK_THROWS_WITH(engine({.receive_buffer_size = 10}),
                      Catch::Contains("receive_buffer_size = 10"));
    CHECK_THROWS_WITH(engine({.dscp = 64}), Catch::Contains("dscp = 64"));
    CHECK_THROWS_WITH(engine({.fake_drop_probability = 1.5}), Catch::Contains("1.5"));
    CHECK_THROWS_WITH(engine({.source_v4 = addr("::1")}), Catch::Contains("source_v4 = ::1"));
    CHECK_THROWS_WITH(engine({.interface = std::string(20, 'x')}), Catch::Contains("xxxx"));
    // Nothing was started by the rejected calls.
    CHECK(eng.stats().sent == 0);
}

TEST_CASE("spawn, exceptions and run() misuse", "[engine][task]") {
    SECTION("an exception in the run task propagates") {
        engine eng;
        auto thrower = [](engine& e) -> task<int> {
            co_await e.ping(addr("127.0.0.1"), 1s);
            throw std::runtime_error("boom");
        };
        CHECK_THROWS_WITH(eng.run(thrower(eng)), "boom");
        require_balanced(eng.stats());
    }
    SECTION("an exception escaping a spawned task is rethrown by run()") {
        engine eng;
        eng.spawn([](engine& e) -> task<void> {
            co_await e.ping(addr("127.0.0.1"), 1s);
            throw std::runtime_error("spawned boom");
        }(eng));
        CHECK_THROWS_WITH(eng.run(eng.ping(addr("::1"), 1s)), "spawned boom");
    }
    SECTION("waiting for something the engine does not drive is reported, not a hang") {
        engine eng;
        auto stuck = []() -> task<void> { co_await never{}; };
        CHECK_THROWS_AS(eng.run(stuck()), std::logic_error);
    }
}

TEST_CASE("logging: off costs nothing, on reports per component", "[engine][log]") {
    std::vector<std::pair<icmpengine::log_component, std::string>> lines;
    icmpengine::log_config log;
    log.sink = [&](icmpengine::log_component c, icmpengine::log_level, std::string_view m) {
        lines.emplace_back(c, std::string(m));
    };
    log.set(icmpengine::log_component::sockets, icmpengine::log_level::info);
    {
        engine eng({.log = log});
        CHECK(eng.run(eng.ping(addr("127.0.0.1"), 1s)).status == ping_status::reply);
        require_balanced(eng.stats());
    }
    REQUIRE_FALSE(lines.empty());
    CHECK(std::all_of(lines.begin(), lines.end(),
                      [](const auto& l) { return l.first == icmpengine::log_component::sockets; }));
    CHECK_THAT(lines.front().second, Catch::Contains("IPv4 ICMP socket"));
    lines.clear();
    log.levels.fill(icmpengine::log_level::off);
    {
        engine eng({.log = log});
        CHECK(eng.run(eng.ping(addr("127.0.0.1"), 1s)).status == ping_status::reply);
        require_balanced(eng.stats());
    }
    CHECK(lines.empty());
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
        CHECK(took < 20ms + timing_slack);
        const auto t1 = clock_type::now();
        CHECK(eng.run(eng.sleep_until(t1 - 1s)));
        CHECK(eng.run(eng.sleep_for(-5ms)));
        CHECK(clock_type::now() - t1 < timing_slack);
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
            CHECK(woke[k].second < std::chrono::milliseconds(woke[k].first) + timing_slack);
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
        CHECK(slept >= 15ms);
        CHECK(slept < 15ms + timing_slack);
        CHECK(short_ping.result.status == ping_status::timeout);
        CHECK(short_ping.ended - short_ping.started >= 15ms);
        CHECK(short_ping.ended - short_ping.started < 15ms + timing_slack);
        // stop() cancels the 1 h ping and wakes the 1 h sleeper early.
        eng.stop();
        CHECK(long_ping.result.status == ping_status::cancelled);
        CHECK_FALSE(long_sleep_result);
        // After stop, a sleep ends at once, early.
        CHECK_FALSE(eng.run(eng.sleep_for(1h)));
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
        CHECK_FALSE(result);
        CHECK(took >= 10ms);
        CHECK(took < 10ms + timing_slack);
        const auto t0 = clock_type::now();
        CHECK_FALSE(eng.run(eng.sleep_for(1h, source.get_token())));
        CHECK(clock_type::now() - t0 < timing_slack);
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
        CHECK(clock_type::now() - t0 < 5ms + timing_slack);
        // Nothing left behind: with no sleeper queued, waiting for something
        // the engine does not drive is still reported (a leftover would block
        // run() for an hour), and stop() touches no dead sleeper.
        auto stuck = []() -> task<void> { co_await never{}; };
        CHECK_THROWS_AS(eng.run(stuck()), std::logic_error);
        eng.stop();
    }
}

TEST_CASE("injected resource faults are survived: each ping ends exactly once",
          "[engine][faults]") {
    using icmpengine::detail::engine_access;
    auto fan_out = [](engine& e, std::uint32_t n) {
        std::vector<ip_address> targets;
        for (std::uint32_t i = 0; i < n; ++i)
            targets.push_back(i % 4 == 3 ? addr("::1") : loopback_v4(i));
        auto results = e.run(ping_all(e, targets, 5s));
        std::size_t replies = 0;
        for (std::size_t i = 0; i < results.size(); ++i)
            replies += results[i].status == ping_status::reply && results[i].from == targets[i];
        return replies;
    };

    SECTION("a full submission queue is flushed and retried") {
        engine eng;
        auto& core = engine_access::core(eng);
        core.faults().sq_full = 50;
        CHECK(fan_out(eng, 2000) == 2000);
        CHECK(core.faults().sq_full == 0);
        CHECK(core.recoveries().sq_full >= 50);
        require_balanced(eng.stats());
    }
    SECTION("io_uring_enter failing with EBUSY (CQ overflow backlog) is retried") {
        engine eng;
        auto& core = engine_access::core(eng);
        core.faults().submit_busy = 20;
        CHECK(fan_out(eng, 2000) == 2000);
        CHECK(core.faults().submit_busy == 0);
        CHECK(core.recoveries().submit_retries >= 20);
        require_balanced(eng.stats());
    }
    SECTION("a real CQ overflow loses no completion") {
        engine eng({.queue_depth = 8, .send_batch = 8});
        auto& core = engine_access::core(eng);
        core.faults().skip_harvests = 200;
        CHECK(fan_out(eng, 3000) == 3000);
        CHECK(core.recoveries().cq_overflow >= 1);
        require_balanced(eng.stats());
    }
    SECTION("sends failing with EAGAIN and ENOBUFS are sent again") {
        engine eng;
        auto& core = engine_access::core(eng);
        // Faults hit SQEs in order, resends included: 25 + 25 fail the first
        // requests once and some of their resends once more; every ping
        // still gets through within its four attempts.
        core.faults().send_eagain = 25;
        core.faults().send_enobufs = 25;
        CHECK(fan_out(eng, 2000) == 2000);
        CHECK(core.faults().send_eagain == 0);
        CHECK(core.faults().send_enobufs == 0);
        CHECK(core.recoveries().send_retries == 50);
        const engine_stats s = eng.stats();
        CHECK(s.send_errors == 0);
        require_balanced(s);
    }
    SECTION("a send that keeps failing ends as send_error, once") {
        engine eng;
        auto& core = engine_access::core(eng);
        core.faults().send_enobufs = 4; // every attempt the engine makes
        const ping_result failed = eng.run(eng.ping(addr("127.0.0.1"), 2s));
        CHECK(failed.status == ping_status::send_error);
        CHECK(failed.error == std::errc::no_buffer_space);
        CHECK(eng.run(eng.ping(addr("127.0.0.2"), 2s)).status == ping_status::reply);
        const engine_stats s = eng.stats();
        CHECK(s.send_errors == 1);
        require_balanced(s);
    }
    SECTION("an empty buffer ring ends the receive with ENOBUFS; it is re-armed") {
        engine eng({.receive_buffers = 16});
        auto& core = engine_access::core(eng);
        core.faults().hold_receive_buffers = 16;
        CHECK(fan_out(eng, 2000) == 2000);
        CHECK(core.recoveries().receive_enobufs >= 1);
        CHECK(eng.stats().receive_overruns == 0);
        require_balanced(eng.stats());
    }
    SECTION("a receive ended by a socket error is re-armed") {
        engine eng;
        auto& core = engine_access::core(eng);
        core.faults().receive_error = 3;
        CHECK(fan_out(eng, 3000) == 3000);
        CHECK(core.faults().receive_error == 0);
        CHECK(core.recoveries().receive_errors >= 3);
        require_balanced(eng.stats());
    }
}

TEST_CASE("a ping coroutine destroyed in any state of its ping leaves nothing behind",
          "[engine][start_ping][abandon]") {
    using icmpengine::detail::task_access;
    // Each scenario starts pings by hand (no awaiter) so that their tasks can
    // be destroyed while the ping is pending; then it pings once more and
    // sleeps so that whatever the engine still holds for them comes due.
    auto settle = [](engine& e) -> task<void> { CHECK(co_await e.sleep_for(50ms)); };

    SECTION("never started, or in flight") {
        engine eng;
        auto scenario = [](engine& e) -> task<ping_result> {
            { task<ping_result> never_started = e.ping(addr("127.0.0.1"), 1s); }
            {
                task<ping_result> inner = e.ping(addr("127.0.0.1"), 1s);
                task_access::handle(inner).resume();
                REQUIRE_FALSE(inner.is_ready());
                CHECK(e.stats().in_flight == 1);
            } // destroyed with its ping in flight
            co_return co_await e.ping(addr("::1"), 1s);
        };
        CHECK(eng.run(scenario(eng)).status == ping_status::reply);
        eng.run(settle(eng));
        const engine_stats s = eng.stats();
        CHECK(s.sent == 2);
        CHECK(s.replies == 2);
        CHECK(s.in_flight == 0);
        require_balanced(s);
    }
    SECTION("queued for a slot") {
        engine eng({.max_in_flight = 1});
        auto scenario = [](engine& e) -> task<ping_result> {
            task<ping_result> first = e.ping(addr("127.0.0.1"), 1s);
            task_access::handle(first).resume();
            {
                task<ping_result> queued = e.ping(addr("127.0.0.1"), 1s);
                task_access::handle(queued).resume();
                CHECK(e.stats().waiting == 1);
            } // destroyed while waiting for the slot
            CHECK(e.stats().waiting == 0);
            co_return co_await e.ping(addr("::1"), 1s);
        };
        CHECK(eng.run(scenario(eng)).status == ping_status::reply);
        eng.run(settle(eng));
        const engine_stats s = eng.stats();
        CHECK(s.sent == 2); // the destroyed one was never sent
        CHECK(s.replies == 2);
        require_balanced(s);
    }
    SECTION("ended by stop() while in flight, not yet delivered") {
        engine eng({.max_in_flight = 1});
        auto scenario = [](engine& e) -> task<void> {
            {
                task<ping_result> in_flight = e.ping(addr("127.0.0.1"), 1s);
                task_access::handle(in_flight).resume();
                CHECK(e.stats().in_flight == 1);
                e.stop(); // ends it; its result waits for the loop
                CHECK(e.stats().cancelled == 1);
            } // destroyed before the result is delivered
            co_await e.sleep_for(1ms);
        };
        eng.run(scenario(eng));
        const engine_stats s = eng.stats();
        CHECK(s.sent == 1);
        CHECK(s.cancelled == 1);
        require_balanced(s);
    }
    SECTION("ended by stop() while queued for a slot, not yet delivered") {
        engine eng({.max_in_flight = 1});
        auto scenario = [](engine& e) -> task<void> {
            {
                task<ping_result> in_flight = e.ping(addr("127.0.0.1"), 1s);
                task_access::handle(in_flight).resume();
                task<ping_result> queued = e.ping(addr("127.0.0.1"), 1s);
                task_access::handle(queued).resume();
                CHECK(e.stats().waiting == 1);
                e.stop(); // ends both; their results wait for the loop
                CHECK(e.stats().cancelled == 2);
            } // both destroyed before their results are delivered
            co_await e.sleep_for(1ms);
        };
        eng.run(scenario(eng));
        const engine_stats s = eng.stats();
        CHECK(s.sent == 2);
        CHECK(s.cancelled == 2);
        require_balanced(s);
    }
    SECTION("ended in the same turn as a start_ping ping whose handler destroys it") {
        // Deadlines 1 ns apart expire in one batch, the handler's ping's
        // first: its result is delivered while the victim's still waits.
        testing::scoped_sysctl ignore4("net.ipv4.icmp_echo_ignore_all", "1");
        result_collector c;
        engine eng;
        std::optional<task<ping_result>> victim;
        c.then = [&](std::uint64_t, const ping_result& r) {
            CHECK(r.status == ping_status::timeout);
            CHECK(eng.stats().in_flight == 0); // the victim's ping ended too
            victim.reset();
        };
        auto scenario = [&](engine& e) -> task<void> {
            c.start(e, addr("127.0.0.1"), 20ms, 1);
            victim.emplace(e.ping(addr("127.0.0.2"), 20ms + 1ns));
            task_access::handle(*victim).resume();
            co_await c.arrivals(1);
            co_await e.sleep_for(1ms);
        };
        c.run(eng, scenario(eng));
        CHECK_FALSE(victim.has_value());
        const engine_stats s = eng.stats();
        CHECK(s.sent == 2);
        CHECK(s.timeouts == 2);
        require_balanced(s);
    }
}
