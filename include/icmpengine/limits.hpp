// SPDX-License-Identifier: MIT
// icmpengine limits: the ranges every entry point accepts for a ping's
// arguments (engine::ping, engine::start_ping, ping_all, engine_pool,
// ping_fanout, ping_series). Out of range, each throws
// std::invalid_argument naming the value.
#pragma once

#include <chrono>
#include <cstdint>

namespace icmpengine {

/// The longest ping timeout: ten years of 365 days. Timeouts must be
/// positive and at most this.
inline constexpr std::chrono::nanoseconds max_ping_timeout = std::chrono::hours(24 * 365 * 10);

/// The largest ICMP payload (ping_options::payload_size): 65535 bytes less
/// the IPv4 header (20) and the ICMP header (8).
inline constexpr std::uint32_t max_payload_size = 65507;

} // namespace icmpengine
