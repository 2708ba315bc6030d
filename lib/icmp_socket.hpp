// SPDX-License-Identifier: MIT
// detail::icmp_socket: opening and configuring the engine's ICMP sockets.
#pragma once

#include <icmpengine/engine.hpp>

#include <string>
#include <system_error>

namespace icmpengine::detail {

/// One ICMP socket as the engine uses it: SOCK_DGRAM ("ping socket", the
/// kernel owns the echo identifier and hands us only our own replies) or
/// SOCK_RAW (we own the identifier and see every ICMP message of the family).
struct icmp_socket {
    int fd = -1;
    ip_family family = ip_family::v4;
    socket_mode kind = socket_mode::datagram; ///< datagram or raw, never automatic
    int receive_buffer = 0;                   ///< SO_RCVBUF as the kernel reports it
    bool receive_buffer_capped = false;       ///< got less than asked (rmem_max)
};

struct socket_open_result {
    icmp_socket socket;
    std::error_code error; ///< set if no socket could be opened
    std::string message;   ///< for the log: what failed and how to fix it
};

/// Opens and configures the socket for `family` per `config`: socket mode
/// fallback, IP_RECVERR / IPV6_RECVERR (datagram sockets), TTL / hop limit
/// reception, SO_TIMESTAMPNS, SO_RXQ_OVFL, SO_RCVBUF(FORCE), DSCP, TTL, DF,
/// source address, interface, and ICMP filters for raw sockets.
socket_open_result open_icmp_socket(ip_family family, const engine_config& config);

/// Whether the kernel has a route to `target` as this engine's sockets would
/// use it (same interface and source address): 0, or the errno of the route
/// lookup (ENETUNREACH, EHOSTUNREACH, EACCES, EINVAL for a blackhole ...).
/// Done by connect()ing `probe_fd`, a UDP socket of the target's family
/// (opened on first use): a UDP connect looks the route up and sends nothing.
int check_route(int& probe_fd, const ip_address& target, const engine_config& config);

/// The receive buffer size the engine asks for with this config.
int wanted_receive_buffer(const engine_config& config) noexcept;

} // namespace icmpengine::detail
