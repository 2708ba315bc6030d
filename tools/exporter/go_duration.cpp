// SPDX-License-Identifier: MIT
// Go's time.ParseDuration (src/time/format.go), which smokeping_prober's
// configuration and flags use: a sign, then one or more <number><unit>
// with a decimal fraction allowed ("1.5h", ".5s", "1m30s"); units ns, us,
// µs (U+00B5), μs (U+03BC), ms, s, m, h; "0" alone needs no unit. The
// same arithmetic: integer parts exact, fractions through a double, and
// anything beyond 2^63 ns an error.
#include "config.hpp"

#include <array>
#include <cstdint>
#include <utility>

namespace icmpengine_exporter {

namespace {

constexpr std::uint64_t kLimit = std::uint64_t{1} << 63;

std::optional<std::uint64_t> unit_nanoseconds(std::string_view unit) {
    static constexpr std::array<std::pair<std::string_view, std::uint64_t>, 8> units{{
        {"ns", 1},
        {"us", 1'000},
        {"\xC2\xB5s", 1'000}, // µs, U+00B5 MICRO SIGN
        {"\xCE\xBCs", 1'000}, // μs, U+03BC GREEK SMALL LETTER MU
        {"ms", 1'000'000},
        {"s", 1'000'000'000},
        {"m", 60'000'000'000},
        {"h", 3'600'000'000'000},
    }};
    for (const auto& [name, ns] : units)
        if (name == unit)
            return ns;
    return std::nullopt;
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// One <number><unit>, consumed from the front of `s`; nullopt if malformed
// or if it alone overflows.
std::optional<std::uint64_t> parse_component(std::string_view& s) {
    if (s.empty() || !(s.front() == '.' || is_digit(s.front())))
        return std::nullopt;
    std::uint64_t whole = 0;
    std::size_t i = 0;
    for (; i < s.size() && is_digit(s[i]); ++i) {
        if (whole > (kLimit - 1) / 10)
            return std::nullopt;
        whole = whole * 10 + static_cast<std::uint64_t>(s[i] - '0');
        if (whole > kLimit)
            return std::nullopt;
    }
    const bool pre = i > 0;
    bool post = false;
    std::uint64_t fraction = 0;
    double scale = 1;
    if (i < s.size() && s[i] == '.') {
        bool overflow = false;
        for (++i; i < s.size() && is_digit(s[i]); ++i) {
            post = true;
            if (overflow)
                continue;
            if (fraction > (kLimit - 1) / 10) { // digits past a double's precision: ignored
                overflow = true;
                continue;
            }
            fraction = fraction * 10 + static_cast<std::uint64_t>(s[i] - '0');
            scale *= 10;
        }
    }
    if (!pre && !post)
        return std::nullopt;
    std::size_t unit_end = i;
    while (unit_end < s.size() && s[unit_end] != '.' && !is_digit(s[unit_end]))
        ++unit_end;
    const std::optional<std::uint64_t> unit = unit_nanoseconds(s.substr(i, unit_end - i));
    if (!unit || whole > kLimit / *unit)
        return std::nullopt;
    std::uint64_t ns = whole * *unit;
    if (fraction > 0) {
        ns += static_cast<std::uint64_t>(static_cast<double>(fraction) *
                                         (static_cast<double>(*unit) / scale));
        if (ns > kLimit)
            return std::nullopt;
    }
    s.remove_prefix(unit_end);
    return ns;
}

} // namespace

std::optional<std::chrono::nanoseconds> parse_go_duration(std::string_view text) {
    bool negative = false;
    if (!text.empty() && (text.front() == '-' || text.front() == '+')) {
        negative = text.front() == '-';
        text.remove_prefix(1);
    }
    if (text == "0")
        return std::chrono::nanoseconds{0};
    if (text.empty())
        return std::nullopt;
    std::uint64_t total = 0;
    while (!text.empty()) {
        const std::optional<std::uint64_t> ns = parse_component(text);
        if (!ns)
            return std::nullopt;
        total += *ns;
        if (total > kLimit)
            return std::nullopt;
    }
    if (negative)
        return std::chrono::nanoseconds{static_cast<std::int64_t>(0 - total)};
    if (total == kLimit)
        return std::nullopt;
    return std::chrono::nanoseconds{static_cast<std::int64_t>(total)};
}

} // namespace icmpengine_exporter
