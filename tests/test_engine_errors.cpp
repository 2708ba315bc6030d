// SPDX-License-Identifier: MIT
// System tests of icmpengine::engine: pings that end in an error. ICMP
// errors from a router (in a namespace behind a veth pair) end the ping at
// once with the router in `from`; a send error for one target leaves the
// others alone. support/system_main.cpp has moved this process into a
// private network namespace; the router's prefixes exist only there.
#include <catch2/catch.hpp>

#include "engine_test.hpp"
#include "netns.hpp"

#include <icmpengine/icmpengine.hpp>

#include <chrono>
#include <string>
#include <system_error>
#include <vector>

using namespace std::chrono_literals;
using namespace icmpengine;
using namespace icmpengine::testing;

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
            ping_each(eng, {addr("198.19.0.1"), addr("2001:db8:ff::1"), addr("198.19.0.2")}, 5s));
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
        auto r = eng.run(ping_each(eng, {addr("198.19.1.1"), addr("2001:db8:fe::1")}, 5s));
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
        auto r = eng.run(ping_each(eng, {addr("198.19.0.1"), addr("2001:db8:ff::1")}, 5s));
        CHECK(r[0].status == ping_status::unreachable);
        CHECK(r[0].from == addr("198.18.0.2"));
        CHECK(r[1].status == ping_status::unreachable);
        CHECK(r[1].from == addr("2001:db8:1::2"));
        require_balanced(eng.stats());
    }
    testing::run("ip link del veth-a");
}

TEST_CASE("a send error for one target does not disturb the others", "[engine]") {
    // No route to 198.51.100.0/24 in this namespace: sendto fails at once.
    engine eng;
    auto r = eng.run(ping_each(
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
