// SPDX-License-Identifier: MIT
// Small pieces of the status page's HTML (status_page.cpp, smoke_graph.cpp):
// escaping, RTT figures, SmokePing's loss colours.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace icmpengine_exporter::html {

/// Appends `text` with & < > " ' escaped: safe in element content and in
/// double- or single-quoted attribute values.
void append_escaped(std::string& out, std::string_view text);

/// An RTT in milliseconds with three significant digits ("0.0312",
/// "4.56", "123"), no unit.
std::string format_ms(std::chrono::nanoseconds rtt);
/// The same for a value already in milliseconds.
std::string format_ms(double ms);

/// SmokePing's loss colours, as its graphs show them for 20 pings per
/// step: 0, 1, 2, 3, 4, 5..10 and 11..19 of 20 lost (here as a fraction
/// of the bin's pings), and our own for a bin where every ping was lost.
struct loss_colour {
    const char* css_class; ///< "l0" .. "l7", defined in the page's style
    const char* colour;    ///< "#rrggbb"
    const char* label;     ///< for the legend
};
inline constexpr loss_colour loss_colours[] = {
    {"l0", "#26ff00", "0"},     {"l1", "#00b8ff", "1/20"},     {"l2", "#0059ff", "2/20"},
    {"l3", "#5e00ff", "3/20"},  {"l4", "#7e00ff", "4/20"},     {"l5", "#dd00ff", "10/20"},
    {"l6", "#ff0000", "19/20"}, {"l7", "#ffd0d0", "all lost"},
};
/// The colour for `lost` of `sent` pings (sent > 0): SmokePing's rule, a
/// loss up to k/20 takes the colour of k.
const loss_colour& loss_colour_for(std::uint64_t sent, std::uint64_t lost);

} // namespace icmpengine_exporter::html
