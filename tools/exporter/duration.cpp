// SPDX-License-Identifier: MIT
#include "duration.hpp"

#include <array>
#include <cstdint>
#include <limits>
#include <utility>

namespace icmpengine_exporter {

namespace {

// Longest units first where one is a prefix of another ("ms" before "m").
constexpr std::array<std::pair<std::string_view, std::int64_t>, 8> units{{
    {"ns", 1},
    {"us", 1'000},
    {"\xC2\xB5s", 1'000}, // U+00B5 micro sign
    {"\xCE\xBCs", 1'000}, // U+03BC Greek mu
    {"ms", 1'000'000},
    {"s", 1'000'000'000},
    {"m", 60'000'000'000},
    {"h", 3'600'000'000'000},
}};

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

/// Reads the unit at the start of `text`; 0 if none matches.
std::int64_t take_unit(std::string_view& text) {
    std::int64_t best = 0;
    std::size_t best_length = 0;
    for (const auto& [name, scale] : units)
        if (text.starts_with(name) && name.size() > best_length) {
            best = scale;
            best_length = name.size();
        }
    text.remove_prefix(best_length);
    return best;
}

} // namespace

std::optional<std::chrono::nanoseconds> parse_go_duration(std::string_view text) {
    if (text == "0")
        return std::chrono::nanoseconds{0};
    if (text.starts_with('+'))
        text.remove_prefix(1);
    if (text.empty())
        return std::nullopt;
    constexpr std::int64_t max = std::numeric_limits<std::int64_t>::max();
    long double total = 0;
    while (!text.empty()) {
        // A number: digits, optionally '.', digits (at least one digit overall).
        long double whole = 0;
        long double fraction = 0;
        long double scale = 1;
        std::size_t digits = 0;
        while (!text.empty() && is_digit(text.front())) {
            whole = whole * 10 + (text.front() - '0');
            text.remove_prefix(1);
            ++digits;
        }
        if (!text.empty() && text.front() == '.') {
            text.remove_prefix(1);
            while (!text.empty() && is_digit(text.front())) {
                scale /= 10;
                fraction += (text.front() - '0') * scale;
                text.remove_prefix(1);
                ++digits;
            }
        }
        if (digits == 0)
            return std::nullopt;
        const std::int64_t unit = take_unit(text);
        if (unit == 0)
            return std::nullopt;
        total += (whole + fraction) * static_cast<long double>(unit);
        if (total > static_cast<long double>(max))
            return std::nullopt;
    }
    return std::chrono::nanoseconds{static_cast<std::int64_t>(total + 0.5L)};
}

namespace {

/// Appends `v / scale` with its fraction, trailing zeros dropped.
void append_scaled(std::string& out, std::int64_t v, std::int64_t scale) {
    out += std::to_string(v / scale);
    std::int64_t rest = v % scale;
    if (rest == 0)
        return;
    std::string digits;
    for (std::int64_t s = scale / 10; s > 0; s /= 10) {
        digits += static_cast<char>('0' + rest / s);
        rest %= s;
    }
    while (!digits.empty() && digits.back() == '0')
        digits.pop_back();
    out += '.';
    out += digits;
}

} // namespace

std::string format_go_duration(std::chrono::nanoseconds d) {
    std::int64_t ns = d.count();
    std::string out;
    if (ns < 0) {
        out += '-';
        ns = -ns;
    }
    if (ns == 0)
        return "0s";
    if (ns < 1'000) {
        return out + std::to_string(ns) + "ns";
    }
    if (ns < 1'000'000) {
        append_scaled(out, ns, 1'000);
        return out + "\xC2\xB5s";
    }
    if (ns < 1'000'000'000) {
        append_scaled(out, ns, 1'000'000);
        return out + "ms";
    }
    const std::int64_t hours = ns / 3'600'000'000'000;
    ns %= 3'600'000'000'000;
    const std::int64_t minutes = ns / 60'000'000'000;
    ns %= 60'000'000'000;
    if (hours > 0)
        out += std::to_string(hours) + "h";
    if (hours > 0 || minutes > 0)
        out += std::to_string(minutes) + "m";
    append_scaled(out, ns, 1'000'000'000);
    return out + "s";
}

} // namespace icmpengine_exporter
