// SPDX-License-Identifier: MIT
// System tests of icmpengine::engine: no reply is ever credited to the wrong
// ping. A forger on loopback answers the engine's request with every kind of
// wrong reply before the genuine one. support/system_main.cpp has moved this
// process into a private network namespace: every packet here stays on lo.
#include <catch2/catch.hpp>

#include "engine_test.hpp"
#include "netns.hpp"
#include "packet.hpp"

#include <icmpengine/icmpengine.hpp>

#include <arpa/inet.h>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using namespace icmpengine;
using namespace icmpengine::testing;

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
    // The duplicate came after the genuine reply: keep the loop turning until
    // the engine has read it (or, if it never counts it, for 20 s).
    CHECK(eng.run(testing::wait_until(
        eng, [&] { return eng.stats().duplicate_replies > 0; }, 20s)));
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
