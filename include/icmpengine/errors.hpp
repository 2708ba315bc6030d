// SPDX-License-Identifier: MIT
// icmpengine's error codes: errors a person can act on.
#pragma once

#include <icmpengine/export.hpp>

#include <system_error>
#include <type_traits>

namespace icmpengine {

/// Errors the engine reports in ping_result::error (or from engine::open)
/// beyond plain errno values. Their messages say what to change.
enum class errc {
    /// The kernel refused an ICMP datagram socket: the process's group is
    /// outside net.ipv4.ping_group_range, and there is no CAP_NET_RAW for the
    /// raw-socket fallback.
    ping_group_range = 1,
    /// A raw ICMP socket was asked for (socket_mode::raw) but the process
    /// lacks CAP_NET_RAW.
    no_cap_net_raw,
    /// The kernel does not support ICMP datagram sockets for this family.
    family_not_supported,
    /// io_uring could not be set up (kernel too old, or disabled through
    /// the kernel.io_uring_disabled sysctl, or RLIMIT_MEMLOCK too low).
    io_uring_unavailable,
    /// The engine was stopped.
    stopped,
    /// engine_config::fwmark (SO_MARK) was asked for but the process lacks
    /// CAP_NET_ADMIN (and CAP_NET_RAW, which Linux 5.17+ also accepts).
    no_cap_net_admin,
};

ICMPENGINE_API const std::error_category& error_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), error_category()};
}

} // namespace icmpengine

template <>
struct std::is_error_code_enum<icmpengine::errc> : std::true_type {};
