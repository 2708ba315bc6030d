// SPDX-License-Identifier: MIT
// System tests of icmpengine::engine: its sockets. Raw sockets when
// net.ipv4.ping_group_range forbids datagram ones; the error that names the
// fix when neither is allowed; socket options (source, interface, DSCP, TTL,
// DF, SO_MARK) and the TOS byte of replies. support/system_main.cpp has moved this process into a
// private network namespace: every packet here goes to loopback.
#include <catch2/catch.hpp>

#include "engine_test.hpp"
#include "netns.hpp"

#include <icmpengine/icmpengine.hpp>

#include <chrono>
#include <cstdlib>
#include <string>
#include <sys/types.h>
#include <sys/wait.h>
#include <system_error>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using namespace icmpengine;
using namespace icmpengine::testing;

TEST_CASE("raw sockets when ping_group_range forbids datagram sockets", "[engine][raw]") {
    testing::scoped_sysctl forbid("net.ipv4.ping_group_range", "1 0");
    SECTION("automatic mode falls back to raw") {
        engine eng;
        auto r = eng.run(ping_each(eng, {addr("127.0.0.1"), addr("::1"), addr("127.0.0.1")}, 2s));
        for (const auto& x : r) {
            CHECK(x.status == ping_status::reply);
            CHECK(x.rtt > 0ns);
        }
        CHECK(r[0].ttl == 64);
        // Longer than a receive buffer: the kernel truncates the datagram
        // (IP header included on raw IPv4) and the prefix still matches.
        auto big =
            eng.run(ping_each(eng, {addr("127.0.0.1"), addr("::1")}, 2s, {.payload_size = 3000}));
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
            auto r = co_await ping_each(e, std::move(t), 5s);
            (void)r;
        }(b, targets));
        auto ra = a.run(ping_each(a, targets, 5s));
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

TEST_CASE("socket options: source address, interface, DSCP, TTL, DF", "[engine][options]") {
    SECTION("all set, still answered") {
        engine eng({.dscp = 46,
                    .ttl = 3,
                    .dont_fragment = true,
                    .source_v4 = addr("127.0.0.9"),
                    .source_v6 = addr("::1"),
                    .interface = "lo"});
        auto r = eng.run(ping_each(eng, {addr("127.0.0.1"), addr("::1")}, 2s));
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

TEST_CASE("fwmark: the mark picks the route; without CAP_NET_ADMIN a named error",
          "[engine][options][fwmark]") {
    // In this namespace only: marked packets meet a "prohibit" rule ahead
    // of the local table, unmarked ones the local table as usual.
    struct mark_rules {
        mark_rules() {
            for (const char* ip : {"ip", "ip -6"}) {
                testing::run(std::string(ip) + " rule add pref 10 fwmark 7 prohibit");
                testing::run(std::string(ip) + " rule add pref 20 lookup local");
                testing::run(std::string(ip) + " rule del pref 0 lookup local");
            }
        }
        ~mark_rules() { // never throws: std::system, not testing::run
            for (const std::string ip : {"ip", "ip -6"}) {
                (void)std::system((ip + " rule add pref 0 lookup local").c_str());
                (void)std::system((ip + " rule del pref 20").c_str());
                (void)std::system((ip + " rule del pref 10").c_str());
            }
        }
    } rules;
    SECTION("marked: refused by the rule, on both sockets") {
        engine eng({.fwmark = 7});
        auto r = eng.run(ping_each(eng, {addr("127.0.0.1"), addr("::1")}, 2s));
        for (const auto& x : r) {
            CHECK(x.status == ping_status::send_error);
            CHECK(x.error == std::errc::permission_denied);
        }
        require_balanced(eng.stats());
    }
    SECTION("another mark, or none: answered") {
        for (std::uint32_t mark : {0u, 8u}) {
            engine eng({.fwmark = mark});
            auto r = eng.run(ping_each(eng, {addr("127.0.0.1"), addr("::1")}, 2s));
            CHECK(r[0].status == ping_status::reply);
            CHECK(r[1].status == ping_status::reply);
        }
    }
    SECTION("without CAP_NET_ADMIN") {
        testing::scoped_sysctl allow("net.ipv4.ping_group_range", "0 2147483647");
        const pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) {
            // nobody: datagram sockets allowed, no capabilities.
            if (::setgid(65534) != 0 || ::setuid(65534) != 0)
                ::_exit(10);
            engine eng({.fwmark = 7});
            const std::error_code ec = eng.open(icmpengine::ip_family::v4);
            if (ec != icmpengine::errc::no_cap_net_admin)
                ::_exit(11);
            if (ec.message().find("CAP_NET_ADMIN") == std::string::npos)
                ::_exit(12);
            engine unmarked;
            if (unmarked.open(icmpengine::ip_family::v4))
                ::_exit(13);
            ::_exit(0);
        }
        int status = 0;
        REQUIRE(::waitpid(child, &status, 0) == child);
        REQUIRE(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0);
    }
}

TEST_CASE("the TOS byte / traffic class of replies", "[engine][options][tos]") {
    const auto mode = GENERATE(socket_mode::datagram, socket_mode::raw);
    const std::uint8_t dscp = GENERATE(0, 8, 46);
    INFO("raw " << (mode == socket_mode::raw) << ", dscp " << int{dscp});
    engine eng({.dscp = dscp, .mode = mode});
    auto r = eng.run(ping_each(eng, {addr("127.0.0.1"), addr("::1")}, 2s));
    REQUIRE(r[0].status == ping_status::reply);
    REQUIRE(r[1].status == ping_status::reply);
    // Linux answers an echo request with its TOS / traffic class.
    CHECK(r[0].tos == dscp << 2);
    CHECK(r[1].tos == dscp << 2);
}
