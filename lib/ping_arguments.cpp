// SPDX-License-Identifier: MIT
// See ping_arguments.hpp.
#include "ping_arguments.hpp"

#include <fmt/format.h>
#include <stdexcept>
#include <string>

namespace icmpengine::detail {

void throw_invalid_ping_arguments(std::string_view where, std::chrono::nanoseconds timeout,
                                  const ping_options& options) {
    if (timeout.count() <= 0 || timeout > max_ping_timeout)
        throw std::invalid_argument(fmt::format(
            "{}: timeout = {} ns: must be positive and at most ten years", where, timeout.count()));
    if (options.payload_size > max_payload_size)
        throw std::invalid_argument(fmt::format("{}: payload_size = {}: must be at most {} bytes",
                                                where, options.payload_size, max_payload_size));
}

void throw_invalid_ping_arguments(const ip_address& to, std::chrono::nanoseconds timeout,
                                  const ping_options& options) {
    throw_invalid_ping_arguments(std::string("ping to ") + to.to_string(), timeout, options);
}

} // namespace icmpengine::detail

namespace icmpengine {

void check_ping_arguments(const ip_address& to, std::chrono::nanoseconds timeout,
                          const ping_options& options) {
    detail::check_ping_arguments(to, timeout, options);
}

} // namespace icmpengine
