// SPDX-License-Identifier: MIT
// One target's smoke graph for the status page, as inline SVG: per bin,
// grey bands from min to max, p10 to p90 and p25 to p75 of its RTTs, and
// the median as a short line coloured by the bin's loss (SmokePing's
// picture). No script; the CSS classes are the page's (status_page.cpp).
#pragma once

#include "history.hpp"

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace icmpengine_exporter {

struct smoke_graph_input {
    std::string_view title;        ///< the svg's <title>, unescaped
    std::vector<history_bin> bins; ///< history_ring::bins(now)
    std::size_t capacity = 60;     ///< bins the x axis spans
    std::chrono::seconds step{60}; ///< each bin's width in time
};

/// Appends `<svg ...>...</svg>`. The y axis is linear from 0 to a round
/// value just above the 90th percentile of the bins' maxima (or the
/// highest median, if higher): one spike does not flatten the rest, whose
/// bands are clipped at the top. `id` makes the title's id unique.
void append_smoke_graph(std::string& out, const smoke_graph_input& in, std::size_t id);

} // namespace icmpengine_exporter
