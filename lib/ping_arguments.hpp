// SPDX-License-Identifier: MIT
// The one check of a ping's arguments, shared by every entry point:
// engine::ping and engine::start_ping, ping_all, engine_pool::ping_all,
// ping_fanout and ping_series. The limits are public (limits.hpp); the
// message has one format everywhere:
//
//     <where>: timeout = <n> ns: must be positive and at most ten years
//     <where>: payload_size = <n>: must be at most 65507 bytes
//
// where <where> says which call or field the value came from ("ping to
// 127.0.0.1", "series_options", "ping_all_options.timeouts[3]").
#pragma once

#include <icmpengine/engine.hpp>
#include <icmpengine/ip_address.hpp>
#include <icmpengine/limits.hpp>

#include <chrono>
#include <string_view>

namespace icmpengine::detail {

/// True if a ping with these arguments is accepted.
constexpr bool ping_arguments_valid(std::chrono::nanoseconds timeout,
                                    const ping_options& options) noexcept {
    return timeout.count() > 0 && timeout <= max_ping_timeout &&
           options.payload_size <= max_payload_size;
}

/// Throws std::invalid_argument for the first argument out of range (see
/// above); does nothing if ping_arguments_valid().
void throw_invalid_ping_arguments(std::string_view where, std::chrono::nanoseconds timeout,
                                  const ping_options& options);
/// The same with <where> = "ping to <address>".
void throw_invalid_ping_arguments(const ip_address& to, std::chrono::nanoseconds timeout,
                                  const ping_options& options);

/// Throws std::invalid_argument naming the value if a ping with these
/// arguments would be refused. Inline and cheap when they are valid: the
/// message is only formatted on failure (engine::start_ping checks every
/// ping of a fan-out).
inline void check_ping_arguments(std::string_view where, std::chrono::nanoseconds timeout,
                                 const ping_options& options) {
    if (!ping_arguments_valid(timeout, options)) [[unlikely]]
        throw_invalid_ping_arguments(where, timeout, options);
}
inline void check_ping_arguments(const ip_address& to, std::chrono::nanoseconds timeout,
                                 const ping_options& options) {
    if (!ping_arguments_valid(timeout, options)) [[unlikely]]
        throw_invalid_ping_arguments(to, timeout, options);
}

} // namespace icmpengine::detail
