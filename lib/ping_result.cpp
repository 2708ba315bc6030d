// SPDX-License-Identifier: MIT
#include <icmpengine/engine.hpp>
#include <icmpengine/ping_result.hpp>

namespace icmpengine {

std::string_view to_string(ping_status s) noexcept {
    switch (s) {
    case ping_status::reply:
        return "reply";
    case ping_status::timeout:
        return "timeout";
    case ping_status::unreachable:
        return "unreachable";
    case ping_status::time_exceeded:
        return "time_exceeded";
    case ping_status::packet_too_big:
        return "packet_too_big";
    case ping_status::parameter_problem:
        return "parameter_problem";
    case ping_status::send_error:
        return "send_error";
    case ping_status::cancelled:
        return "cancelled";
    }
    return "unknown";
}

std::string_view to_string(log_component c) noexcept {
    switch (c) {
    case log_component::sockets:
        return "sockets";
    case log_component::ring:
        return "ring";
    case log_component::expiry:
        return "expiry";
    case log_component::matching:
        return "matching";
    }
    return "unknown";
}

std::string_view to_string(log_level l) noexcept {
    switch (l) {
    case log_level::off:
        return "off";
    case log_level::error:
        return "error";
    case log_level::warn:
        return "warn";
    case log_level::info:
        return "info";
    case log_level::debug:
        return "debug";
    case log_level::trace:
        return "trace";
    }
    return "unknown";
}

} // namespace icmpengine
