// SPDX-License-Identifier: MIT
#include "html.hpp"

#include <fmt/format.h>

#include <cmath>

namespace icmpengine_exporter::html {

void append_escaped(std::string& out, std::string_view text) {
    for (const char c : text) {
        switch (c) {
        case '&':
            out += "&amp;";
            break;
        case '<':
            out += "&lt;";
            break;
        case '>':
            out += "&gt;";
            break;
        case '"':
            out += "&quot;";
            break;
        case '\'':
            out += "&#39;";
            break;
        default:
            out += c;
        }
    }
}

std::string format_ms(double ms) {
    if (ms >= 100.0)
        return fmt::format("{:.0f}", ms);
    if (ms >= 10.0)
        return fmt::format("{:.1f}", ms);
    if (ms >= 1.0)
        return fmt::format("{:.2f}", ms);
    if (ms >= 0.1)
        return fmt::format("{:.3f}", ms);
    return fmt::format("{:.4f}", ms);
}

std::string format_ms(std::chrono::nanoseconds rtt) {
    return format_ms(static_cast<double>(rtt.count()) / 1e6);
}

const loss_colour& loss_colour_for(std::uint64_t sent, std::uint64_t lost) {
    if (lost == 0 || sent == 0)
        return loss_colours[0];
    if (lost >= sent)
        return loss_colours[7];
    // Loss in twentieths, rounded up: SmokePing colours k lost of 20 by the
    // first key >= k among 1, 2, 3, 4, 10, 19.
    const double twentieths =
        std::ceil(20.0 * static_cast<double>(lost) / static_cast<double>(sent) - 1e-9);
    if (twentieths <= 1)
        return loss_colours[1];
    if (twentieths <= 2)
        return loss_colours[2];
    if (twentieths <= 3)
        return loss_colours[3];
    if (twentieths <= 4)
        return loss_colours[4];
    if (twentieths <= 10)
        return loss_colours[5];
    return loss_colours[6];
}

} // namespace icmpengine_exporter::html
