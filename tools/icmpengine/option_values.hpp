// SPDX-License-Identifier: MIT
// The values of fping's options, read as fping 5.5 reads them (its
// strtoul_strict and strtod_strict), with messages that name the option and
// the offending text; and the failure the parser reports.
#pragma once

#include "options.hpp"

#include <chrono>
#include <climits>
#include <cstdint>
#include <string>
#include <string_view>

namespace icmpengine_cli {

/// A bad value or combination: the message (without the program name) and
/// the exit code.
struct parse_failure {
    std::string message;
    int code = exit_usage;
    bool hint = false; // fping's "see 'fping -h' ..." line after it
};

/// Throws parse_failure{message, code}.
[[noreturn]] void fail(std::string message, int code = exit_usage);

/// Leading white space, then digits of `base` (0: C's 0x and 0 prefixes),
/// nothing after, no sign; at most `max` ("out of range" above it).
std::uint64_t to_unsigned(std::string_view option, const char* text, int base, std::uint64_t max);

/// As to_unsigned, base 10, and at least 1 (-c, -C, -x, -X, -k).
std::uint64_t to_positive(std::string_view option, const char* text, std::uint64_t max = UINT_MAX);

/// A number (strtod), nothing after, not negative, finite.
double to_number(std::string_view option, const char* text);

/// -t, -p, -i, --seqmap-timeout: milliseconds as fping, or with a unit
/// (parse_duration); "out of range" beyond the engine's longest timeout.
std::chrono::nanoseconds to_duration(std::string_view option, const char* text);

} // namespace icmpengine_cli
