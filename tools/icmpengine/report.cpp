// SPDX-License-Identifier: MIT
// What the reporters share: the choice of one, fping's number format, JSON
// strings, the exit code, and the interval counters.
#include "report.hpp"

#include "report_json.hpp"
#include "report_text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>

namespace icmpengine_cli {

report_targets::report_targets(const target_set& targets)
    : given(targets.given), names_of(targets.addresses.size()) {
    for (const given_target& g : given)
        names_of.at(g.address).push_back(g.name);
}

std::size_t report_targets::width() const {
    std::size_t w = 0;
    for (const given_target& g : given)
        w = std::max(w, g.name.size());
    return w;
}

std::unique_ptr<reporter> make_reporter(const settings& s, const target_set& targets,
                                        line_output& lines) {
    if (s.json_lines)
        return std::make_unique<json_reporter>(s, report_targets(targets), lines);
    return std::make_unique<text_reporter>(s, report_targets(targets), lines);
}

std::string format_ms(double ms) {
    if (ms < 0.0)
        return fmt::format("{:.2g}", ms);
    if (ms < 1.0)
        return fmt::format("{:.3f}", ms);
    if (ms < 10.0)
        return fmt::format("{:.2f}", ms);
    if (ms < 100.0)
        return fmt::format("{:.1f}", ms);
    if (ms < 1e6)
        return fmt::format("{:.0f}", ms);
    return fmt::format("{:.3e}", ms);
}

std::string format_timestamp(stamp_format f) {
    if (f == stamp_format::unix_seconds)
        return fmt::format("{:.5f}", unix_now());
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    ::localtime_r(&now, &tm);
    const char* pattern = f == stamp_format::ctime ? "%c"
                          : f == stamp_format::iso ? "%Y-%m-%dT%T%z"
                                                   : "%Y-%m-%d %H:%M:%S";
    char text[100];
    const std::size_t n = std::strftime(text, sizeof text, pattern, &tm);
    return std::string(text, n);
}

namespace {

/// The length of the UTF-8 sequence at the start of `s`, 0 if it is not one
/// (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF).
std::size_t utf8_sequence(std::string_view s) {
    const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
    const auto cont = [&](std::size_t i) { return i < s.size() && (b(i) & 0xC0) == 0x80; };
    const unsigned char c = b(0);
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return cont(1) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (!cont(1) || !cont(2) || (c == 0xE0 && b(1) < 0xA0) || (c == 0xED && b(1) > 0x9F))
            return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (!cont(1) || !cont(2) || !cont(3) || (c == 0xF0 && b(1) < 0x90) ||
            (c == 0xF4 && b(1) > 0x8F))
            return 0;
        return 4;
    }
    return 0;
}

} // namespace

std::string json_quote(std::string_view text) {
    std::string out = "\"";
    while (!text.empty()) {
        const unsigned char c = static_cast<unsigned char>(text[0]);
        const std::size_t n = utf8_sequence(text);
        if (n == 0)
            out += "\\ufffd";
        else if (c == '"' || c == '\\')
            out += {'\\', static_cast<char>(c)};
        else if (c < 0x20 || c == 0x7F)
            out += fmt::format("\\u{:04x}", c);
        else
            out.append(text.substr(0, n));
        text.remove_prefix(n == 0 ? 1 : n);
    }
    return out + "\"";
}

void interval_counts::add(const ie::ping_result& r) {
    if (r.status == ie::ping_status::cancelled)
        return;
    ++sent;
    if (r.status != ie::ping_status::reply)
        return;
    ++received;
    if (received == 1 || r.rtt < rtt_min)
        rtt_min = r.rtt;
    if (r.rtt > rtt_max)
        rtt_max = r.rtt;
    rtt_total += r.rtt;
}

} // namespace icmpengine_cli
