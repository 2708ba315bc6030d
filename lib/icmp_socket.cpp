// SPDX-License-Identifier: MIT
#include "icmp_socket.hpp"

#include "packet.hpp"

#include <icmpengine/errors.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <linux/errqueue.h>
#include <linux/icmp.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace icmpengine::detail {
namespace {

std::string read_first_line(const char* path) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    return line;
}

int set_int(int fd, int level, int name, int value) noexcept {
    return ::setsockopt(fd, level, name, &value, sizeof value) == 0 ? 0 : errno;
}

struct option_error {
    int err = 0;
    std::string what;
    std::error_code code{}; ///< when set, the error to report instead of err
};

// Applies one option; records the first failure.
void apply(option_error& first, int fd, int level, int name, int value, const char* what) {
    if (first.err != 0)
        return;
    if (int e = set_int(fd, level, name, value); e != 0)
        first = {e, what};
}

// IPv4 options: error reporting and TTL reception (datagram sockets) or
// the ICMP filter (raw), then TOS, TTL and DF.
void configure_v4(option_error& first, int fd, socket_mode kind, const engine_config& config) {
    if (kind == socket_mode::datagram) {
        // ICMP errors about our requests go to the error queue (and set
        // sk_err); raw sockets see them in-band instead, so no RECVERR.
        apply(first, fd, IPPROTO_IP, IP_RECVERR, 1, "IP_RECVERR");
        apply(first, fd, IPPROTO_IP, IP_RECVTTL, 1, "IP_RECVTTL");
        // The reply's TOS byte (ping_result::tos); raw sockets read it
        // from the IP header.
        apply(first, fd, IPPROTO_IP, IP_RECVTOS, 1, "IP_RECVTOS");
    } else {
        // Only what the engine reads: echo replies and the errors that can
        // be about our requests (icmp(7), ICMP_FILTER: a set bit filters
        // that type out).
        icmp_filter filter{};
        filter.data = ~((1u << icmp4_echo_reply) | (1u << icmp4_dest_unreachable) |
                        (1u << icmp4_time_exceeded) | (1u << icmp4_parameter_problem));
        if (first.err == 0 && ::setsockopt(fd, SOL_RAW, ICMP_FILTER, &filter, sizeof filter))
            first = {errno, "ICMP_FILTER"};
    }
    if (config.dscp != 0)
        apply(first, fd, IPPROTO_IP, IP_TOS, config.dscp << 2, "IP_TOS");
    if (config.ttl != 0)
        apply(first, fd, IPPROTO_IP, IP_TTL, config.ttl, "IP_TTL");
    if (config.dont_fragment)
        apply(first, fd, IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO, "IP_MTU_DISCOVER");
}

// IPv6 options: error reporting (datagram sockets) or the ICMPv6 filter
// (raw), hop limit reception, then traffic class, hop limit and DONTFRAG.
void configure_v6(option_error& first, int fd, socket_mode kind, const engine_config& config) {
    if (kind == socket_mode::datagram) {
        apply(first, fd, IPPROTO_IPV6, IPV6_RECVERR, 1, "IPV6_RECVERR");
    } else {
        icmp6_filter filter;
        ICMP6_FILTER_SETBLOCKALL(&filter);
        ICMP6_FILTER_SETPASS(icmp6_echo_reply, &filter);
        ICMP6_FILTER_SETPASS(icmp6_dest_unreachable, &filter);
        ICMP6_FILTER_SETPASS(icmp6_packet_too_big, &filter);
        ICMP6_FILTER_SETPASS(icmp6_time_exceeded, &filter);
        ICMP6_FILTER_SETPASS(icmp6_parameter_problem, &filter);
        if (first.err == 0 &&
            ::setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof filter))
            first = {errno, "ICMP6_FILTER"};
    }
    apply(first, fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1, "IPV6_RECVHOPLIMIT");
    apply(first, fd, IPPROTO_IPV6, IPV6_RECVTCLASS, 1, "IPV6_RECVTCLASS");
    if (config.dscp != 0)
        apply(first, fd, IPPROTO_IPV6, IPV6_TCLASS, config.dscp << 2, "IPV6_TCLASS");
    if (config.ttl != 0)
        apply(first, fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, config.ttl, "IPV6_UNICAST_HOPS");
    if (config.dont_fragment)
        apply(first, fd, IPPROTO_IPV6, IPV6_DONTFRAG, 1, "IPV6_DONTFRAG");
}

// Binds the socket to the configured source address of its family.
void bind_source(option_error& first, int fd, const ip_address& source) {
    int rc = 0;
    if (source.is_v4()) {
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        std::memcpy(&sa.sin_addr, source.bytes().data(), 4);
        rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
    } else {
        sockaddr_in6 sa{};
        sa.sin6_family = AF_INET6;
        std::memcpy(&sa.sin6_addr, source.bytes().data(), 16);
        sa.sin6_scope_id = source.scope_id();
        rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
    }
    if (rc != 0)
        first = {errno, fmt::format("bind to source address {}", source.to_string())};
}

option_error configure(int fd, ip_family family, socket_mode kind, const engine_config& config,
                       icmp_socket& out) {
    option_error first;
    const bool v4 = family == ip_family::v4;

    // Kernel receive timestamps for RTT (SCM_TIMESTAMPNS on every message).
    // Packets dropped for a full receive buffer are read with SO_MEMINFO
    // when stats are asked for, not with SO_RXQ_OVFL: that would cost a
    // control message on every reply.
    apply(first, fd, SOL_SOCKET, SO_TIMESTAMPNS, 1, "SO_TIMESTAMPNS");
    if (v4)
        configure_v4(first, fd, kind, config);
    else
        configure_v6(first, fd, kind, config);

    // The default receive buffer holds only ~255 replies (832 bytes of
    // truesize each); a wide window needs more. SO_RCVBUFFORCE ignores
    // net.core.rmem_max but needs CAP_NET_ADMIN; fall back to SO_RCVBUF.
    const int want = wanted_receive_buffer(config);
    if (first.err == 0 && set_int(fd, SOL_SOCKET, SO_RCVBUFFORCE, want) != 0)
        apply(first, fd, SOL_SOCKET, SO_RCVBUF, want, "SO_RCVBUF");
    int got = 0;
    socklen_t len = sizeof got;
    if (::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &len) == 0) {
        out.receive_buffer = got;
        // The kernel doubles the value it was given (socket(7)).
        out.receive_buffer_capped = got < want;
    }

    if (first.err == 0 && !config.interface.empty()) {
        if (::setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, config.interface.c_str(),
                         static_cast<socklen_t>(config.interface.size())) != 0)
            first = {errno, fmt::format("SO_BINDTODEVICE \"{}\"", config.interface)};
    }

    // SO_MARK (socket(7)): the kernel allows it only with CAP_NET_ADMIN.
    if (first.err == 0 && config.fwmark != 0) {
        if (int e = set_int(fd, SOL_SOCKET, SO_MARK, static_cast<int>(config.fwmark)); e != 0) {
            first = {e, fmt::format("SO_MARK {}", config.fwmark)};
            if (e == EPERM)
                first.code = make_error_code(errc::no_cap_net_admin);
        }
    }

    const std::optional<ip_address>& source = v4 ? config.source_v4 : config.source_v6;
    if (first.err == 0 && source)
        bind_source(first, fd, *source);
    return first;
}

} // namespace

int check_route(int& probe_fd, const ip_address& target, const engine_config& config) {
    const bool v4 = target.is_v4();
    if (probe_fd < 0) {
        probe_fd = ::socket(v4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
        if (probe_fd < 0)
            return errno;
        if (!config.interface.empty())
            (void)::setsockopt(probe_fd, SOL_SOCKET, SO_BINDTODEVICE, config.interface.c_str(),
                               static_cast<socklen_t>(config.interface.size()));
        // The mark picks the routing table as it does for the ICMP sockets.
        if (config.fwmark != 0)
            (void)set_int(probe_fd, SOL_SOCKET, SO_MARK, static_cast<int>(config.fwmark));
        const std::optional<ip_address>& source = v4 ? config.source_v4 : config.source_v6;
        if (source) {
            sockaddr_storage sa{};
            socklen_t len = 0;
            if (v4) {
                auto* in = reinterpret_cast<sockaddr_in*>(&sa);
                in->sin_family = AF_INET;
                std::memcpy(&in->sin_addr, source->bytes().data(), 4);
                len = sizeof(sockaddr_in);
            } else {
                auto* in6 = reinterpret_cast<sockaddr_in6*>(&sa);
                in6->sin6_family = AF_INET6;
                std::memcpy(&in6->sin6_addr, source->bytes().data(), 16);
                in6->sin6_scope_id = source->scope_id();
                len = sizeof(sockaddr_in6);
            }
            (void)::bind(probe_fd, reinterpret_cast<const sockaddr*>(&sa), len);
        }
    }
    sockaddr_storage sa{};
    socklen_t len = 0;
    if (v4) {
        auto* in = reinterpret_cast<sockaddr_in*>(&sa);
        in->sin_family = AF_INET;
        in->sin_port = htons(9); // any port: nothing is sent
        std::memcpy(&in->sin_addr, target.bytes().data(), 4);
        len = sizeof(sockaddr_in);
    } else {
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&sa);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(9);
        std::memcpy(&in6->sin6_addr, target.bytes().data(), 16);
        in6->sin6_scope_id = target.scope_id();
        len = sizeof(sockaddr_in6);
    }
    return ::connect(probe_fd, reinterpret_cast<const sockaddr*>(&sa), len) == 0 ? 0 : errno;
}

int wanted_receive_buffer(const engine_config& config) noexcept {
    if (config.socket_receive_buffer != 0)
        return static_cast<int>(std::min<std::uint32_t>(config.socket_receive_buffer, 1u << 30));
    const std::uint32_t replies = std::min<std::uint32_t>(config.max_in_flight, 32768);
    return static_cast<int>(std::max<std::uint32_t>(replies * 1024u, 1u << 20));
}

socket_open_result open_icmp_socket(ip_family family, const engine_config& config) {
    socket_open_result r;
    r.socket.family = family;
    const bool v4 = family == ip_family::v4;
    const int domain = v4 ? AF_INET : AF_INET6;
    const int protocol = v4 ? IPPROTO_ICMP : IPPROTO_ICMPV6;
    const char* name = v4 ? "IPv4" : "IPv6";

    int dgram_errno = 0;
    int fd = -1;
    socket_mode kind = socket_mode::datagram;
    if (config.mode != socket_mode::raw) {
        fd = ::socket(domain, SOCK_DGRAM | SOCK_CLOEXEC, protocol);
        if (fd < 0)
            dgram_errno = errno;
    }
    if (fd < 0 && dgram_errno == EAFNOSUPPORT) {
        r.error = make_error_code(errc::family_not_supported);
        r.message = fmt::format("{} ICMP socket: {}", name, r.error.message());
        return r;
    }
    const bool try_raw =
        config.mode == socket_mode::raw ||
        (config.mode == socket_mode::automatic &&
         (dgram_errno == EACCES || dgram_errno == EPERM || dgram_errno == EPROTONOSUPPORT));
    if (fd < 0 && try_raw) {
        fd = ::socket(domain, SOCK_RAW | SOCK_CLOEXEC, protocol);
        kind = socket_mode::raw;
        if (fd < 0) {
            const int raw_errno = errno;
            if (raw_errno == EPERM || raw_errno == EACCES) {
                r.error = make_error_code(config.mode == socket_mode::raw ? errc::no_cap_net_raw
                                                                          : errc::ping_group_range);
            } else {
                r.error = std::error_code(raw_errno, std::system_category());
            }
        }
    } else if (fd < 0) {
        r.error = dgram_errno == EACCES || dgram_errno == EPERM
                      ? make_error_code(errc::ping_group_range)
                      : std::error_code(dgram_errno, std::system_category());
    }
    if (fd < 0) {
        r.message = fmt::format(
            "cannot open an {} ICMP socket: {} (process gid {}, net.ipv4.ping_group_range is "
            "\"{}\")",
            name, r.error.message(), ::getgid(),
            read_first_line("/proc/sys/net/ipv4/ping_group_range"));
        return r;
    }

    r.socket.fd = fd;
    r.socket.kind = kind;
    if (option_error e = configure(fd, family, kind, config, r.socket); e.err != 0) {
        ::close(fd);
        r.socket.fd = -1;
        r.error = e.code ? e.code : std::error_code(e.err, std::system_category());
        r.message = fmt::format("configuring the {} ICMP socket: {}: {}", name, e.what,
                                e.code ? e.code.message() : std::strerror(e.err));
    }
    return r;
}

} // namespace icmpengine::detail
