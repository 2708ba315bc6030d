// SPDX-License-Identifier: MIT
// icmpengine::ping_result: what became of one echo request.
#pragma once

#include <icmpengine/export.hpp>
#include <icmpengine/ip_address.hpp>

#include <chrono>
#include <cstdint>
#include <string_view>
#include <system_error>

namespace icmpengine {

/// The fate of one ping. Exactly one per ping; none of these is an exception.
enum class ping_status : std::uint8_t {
    reply,             ///< An echo reply from the target arrived in time.
    timeout,           ///< No reply before the deadline (a reply after it counts as late).
    unreachable,       ///< ICMP destination unreachable (`from` is the reporting router).
    time_exceeded,     ///< ICMP time exceeded: TTL / hop limit ran out on the way.
    packet_too_big,    ///< ICMP fragmentation needed (v4, with DF) or packet too big (v6).
    parameter_problem, ///< ICMP parameter problem about our request.
    send_error,        ///< The request could not be sent; see `error`.
    cancelled,         ///< engine::stop() or the engine's destructor ended the ping.
};

/// "reply", "timeout", ... (stable, for logs and JSON).
ICMPENGINE_API std::string_view to_string(ping_status s) noexcept;

struct ping_result {
    ping_status status = ping_status::timeout;
    /// Round-trip time, for `reply` and for ICMP errors (time until the error
    /// arrived); zero otherwise. Kernel receive timestamp minus the time taken
    /// just before the request was submitted (see README, "RTT").
    std::chrono::nanoseconds rtt{0};
    /// Who answered: the target for `reply`, the router that sent the ICMP
    /// error for `unreachable` / `time_exceeded` / ...; the target otherwise.
    ip_address from{};
    /// The ICMP sequence number on the wire.
    std::uint16_t sequence = 0;
    /// TTL (IPv4) or hop limit (IPv6) of the reply as received; 0 if unknown.
    std::uint8_t ttl = 0;
    /// TOS byte (IPv4) or traffic class (IPv6) of the reply as received
    /// (IP_RECVTOS / IPV6_RECVTCLASS, or the raw IPv4 header); -1 if unknown.
    std::int16_t tos = -1;
    /// ICMP type and code of the answer (0/0 for an IPv4 echo reply, 129/0
    /// for IPv6; e.g. 3/1 for an IPv4 host unreachable). Zero if none.
    std::uint8_t icmp_type = 0;
    std::uint8_t icmp_code = 0;
    /// True if the engine's fake-drop test hook dropped this request instead of
    /// sending it (the ping then ends as `timeout`).
    bool fake_dropped = false;
    /// Bytes of ICMP payload in the reply (excluding the 8-byte ICMP header).
    std::uint32_t bytes = 0;
    /// For `send_error`: why the request could not be sent.
    std::error_code error{};
};

} // namespace icmpengine
