// SPDX-License-Identifier: MIT
#include "lo_capture.hpp"

#include "received_message.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <array>
#include <cstdint>
#include <ctime>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace icmpengine::testing {
namespace {

/// Parses an echo request from the IP header on; false for anything else.
bool parse_echo_request(const std::uint8_t* ip, std::size_t size, wire_request& r) {
    char text[INET6_ADDRSTRLEN];
    if (size >= 28 && ip[0] >> 4 == 4) {
        const std::size_t ihl = (ip[0] & 0xfu) * 4u;
        if (ip[9] != IPPROTO_ICMP || size < ihl + 8 || ip[ihl] != 8)
            return false;
        r.family = AF_INET;
        r.traffic_class = ip[1];
        r.ttl = ip[8];
        r.dont_fragment = (ip[6] & 0x40) != 0;
        r.source = ::inet_ntop(AF_INET, ip + 12, text, sizeof text);
        r.destination = ::inet_ntop(AF_INET, ip + 16, text, sizeof text);
        r.payload = size - ihl - 8;
        return true;
    }
    if (size >= 48 && ip[0] >> 4 == 6) {
        if (ip[6] != IPPROTO_ICMPV6 || ip[40] != 128)
            return false;
        r.family = AF_INET6;
        r.traffic_class = static_cast<unsigned>((ip[0] & 0xf) << 4 | ip[1] >> 4);
        r.ttl = ip[7];
        r.source = ::inet_ntop(AF_INET6, ip + 8, text, sizeof text);
        r.destination = ::inet_ntop(AF_INET6, ip + 24, text, sizeof text);
        r.payload = size - 40 - 8;
        return true;
    }
    return false;
}

} // namespace

std::chrono::nanoseconds realtime_now() {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return std::chrono::nanoseconds(std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec);
}

lo_capture::lo_capture() {
    m_fd = ::socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ALL));
    REQUIRE(m_fd >= 0);
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = static_cast<int>(::if_nametoindex("lo"));
    REQUIRE(sll.sll_ifindex != 0);
    REQUIRE(::bind(m_fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) == 0);
    const int on = 1;
    REQUIRE(::setsockopt(m_fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) == 0);
    // Room for thousands of packets (each also seen incoming on lo).
    const int room = 64 << 20;
    REQUIRE(::setsockopt(m_fd, SOL_SOCKET, SO_RCVBUFFORCE, &room, sizeof room) == 0);
    wait_for_transmit_stamps();
}

lo_capture::~lo_capture() {
    ::close(m_fd);
}

std::vector<wire_request> lo_capture::requests() {
    std::vector<wire_request> out;
    static std::array<std::uint8_t, 70000> buffer;
    for (;;) {
        const received_message m = receive_message(m_fd, buffer, MSG_DONTWAIT);
        if (m.length <= 0)
            break;
        const auto& from = reinterpret_cast<const sockaddr_ll&>(m.from);
        wire_request r;
        if (from.sll_pkttype != PACKET_OUTGOING ||
            !parse_echo_request(buffer.data(), static_cast<std::size_t>(m.length), r))
            continue;
        const auto stamp = m.timestamp();
        INFO("an echo request to " << r.destination << " without a kernel timestamp");
        REQUIRE(stamp.has_value());
        r.sent = *stamp;
        out.push_back(std::move(r));
    }
    return out;
}

std::vector<std::chrono::nanoseconds> lo_capture::send_times() {
    std::vector<std::chrono::nanoseconds> out;
    for (const wire_request& r : requests())
        out.push_back(r.sent);
    return out;
}

// SO_TIMESTAMPNS turns on the kernel's packet timestamps through a deferred
// work item: packets that leave before it ran carry no transmit stamp and get
// the time they are read instead (seen as requests 150 ms out of order).
// Sends UDP probes on lo until one is stamped before it is read (the probes
// are no echo requests: requests() skips them). The deferred work runs when
// the machine gets to it, so there is no short limit.
void lo_capture::wait_for_transmit_stamps() {
    const int probe = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(probe >= 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(9);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::array<std::uint8_t, 2048> buffer;
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    bool live = false;
    while (!live && std::chrono::steady_clock::now() < give_up) {
        REQUIRE(::sendto(probe, "x", 1, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to) == 1);
        ::usleep(1000); // so that a stamp taken at the read is later than `before_read`
        const std::chrono::nanoseconds before_read = realtime_now();
        for (;;) {
            const received_message m = receive_message(m_fd, buffer, MSG_DONTWAIT);
            if (m.length <= 0)
                break;
            const auto stamp = m.timestamp();
            live = live || (stamp && *stamp < before_read);
        }
    }
    ::close(probe);
    REQUIRE(live);
}

} // namespace icmpengine::testing
