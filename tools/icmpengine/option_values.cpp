// SPDX-License-Identifier: MIT
#include "option_values.hpp"

#include <fmt/format.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <optional>

namespace icmpengine_cli {

void fail(std::string message, int code) {
    throw parse_failure{std::move(message), code, false};
}

/// fping 5.5's strtoul_strict: leading white space, then digits of `base`
/// (0: C's 0x / 0 prefixes), nothing after; no sign.
std::uint64_t to_unsigned(std::string_view option, const char* text, int base, std::uint64_t max) {
    const char* p = text;
    while (std::isspace(static_cast<unsigned char>(*p)))
        ++p;
    if (*p == '-' || *p == '+' || *p == '\0')
        fail(fmt::format("{}: '{}' is not a whole number", option, printable(text)));
    errno = 0;
    char* end = nullptr;
    const unsigned long long value = std::strtoull(p, &end, base);
    if (end == p || *end != '\0')
        fail(fmt::format("{}: '{}' is not a whole number", option, printable(text)));
    if (errno == ERANGE || value > max)
        fail(fmt::format("{}: '{}' is out of range (at most {})", option, printable(text), max));
    return value;
}

/// A whole number of at least 1 (-c, -C, -x, -X, -k).
std::uint64_t to_positive(std::string_view option, const char* text, std::uint64_t max) {
    const std::uint64_t value = to_unsigned(option, text, 10, max);
    if (value == 0)
        fail(fmt::format("{}: '{}' must be at least 1", option, printable(text)));
    return value;
}

/// fping 5.5's strtod_strict: a number, nothing after, not negative.
double to_number(std::string_view option, const char* text) {
    errno = 0;
    char* end = nullptr;
    const double value = std::strtod(text, &end);
    if (end == text || *end != '\0' || std::isnan(value) || value < 0)
        fail(fmt::format("{}: '{}' is not a number of 0 or more", option, printable(text)));
    if (errno == ERANGE || std::isinf(value))
        fail(fmt::format("{}: '{}' is out of range", option, printable(text)));
    return value;
}

/// -t, -p, -i, --seqmap-timeout: milliseconds as fping, or with a unit.
std::chrono::nanoseconds to_duration(std::string_view option, const char* text) {
    if (const auto d = parse_duration(text))
        return *d;
    if (duration_out_of_range(text))
        fail(fmt::format(
            "{}: '{}' is out of range (at most {} ms)", option, printable(text),
            std::chrono::duration_cast<std::chrono::milliseconds>(ie::max_ping_timeout).count()));
    fail(fmt::format("{}: '{}' is not a duration (milliseconds, e.g. 250 or 0.5; or 250ms, 1.5s)",
                     option, printable(text)));
}

std::string printable(std::string_view text) {
    constexpr std::size_t keep = 64;
    std::string out;
    for (const char c : text.substr(0, keep)) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte < 0x20 || byte >= 0x7f)
            out += fmt::format("\\x{:02x}", byte);
        else
            out += c;
    }
    if (text.size() > keep)
        out += "...";
    return out;
}

namespace {

/// The number and unit of a duration; std::nullopt if it is not one.
std::optional<double> duration_in_ns(std::string_view text) {
    const std::string owned(text);
    errno = 0;
    char* end = nullptr;
    const double value = std::strtod(owned.c_str(), &end);
    if (end == owned.c_str() || std::isnan(value) || value < 0)
        return std::nullopt;
    const std::string_view unit(end);
    double ns_per_unit = 0;
    if (unit.empty() || unit == "ms")
        ns_per_unit = 1e6;
    else if (unit == "s")
        ns_per_unit = 1e9;
    else if (unit == "us")
        ns_per_unit = 1e3;
    else if (unit == "ns")
        ns_per_unit = 1;
    else
        return std::nullopt;
    if (errno == ERANGE || std::isinf(value))
        return HUGE_VAL;
    return value * ns_per_unit;
}

} // namespace

std::optional<std::chrono::nanoseconds> parse_duration(std::string_view text) {
    const std::optional<double> ns = duration_in_ns(text);
    if (!ns || *ns > static_cast<double>(ie::max_ping_timeout.count()))
        return std::nullopt;
    return std::chrono::nanoseconds(static_cast<std::int64_t>(std::llround(*ns)));
}

bool duration_out_of_range(std::string_view text) {
    const std::optional<double> ns = duration_in_ns(text);
    return ns && *ns > static_cast<double>(ie::max_ping_timeout.count());
}

} // namespace icmpengine_cli
