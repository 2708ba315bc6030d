// SPDX-License-Identifier: MIT
// The status page at `/`: per target, loss and RTT percentiles over the
// history window and a smoke graph (SmokePing's picture: the median line
// over the spread of each bin's RTTs, loss by colour) as inline SVG, drawn
// here from each target's history_ring. Plain HTML and CSS, no script.
#pragma once

#include "history.hpp"
#include "target.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace icmpengine_exporter {

/// One target as the page (and the exporter's other readers) see it.
struct target_view {
    const target_spec* spec = nullptr;
    std::uint64_t sent = 0;     ///< echo requests sent since the target was added
    std::uint64_t received = 0; ///< replies in time
    const history_ring* history = nullptr;
};

struct status_page_options {
    std::string title = "icmpengine-exporter";
    std::string version; ///< shown in the footer
    std::string metrics_path = "/metrics";
    /// At most this many targets get a graph (the rest a table row):
    /// a page for 100,000 targets stays a page.
    std::size_t max_graphs = 200;
    /// At most this many targets get a table row, the worst first: the
    /// page for 100,000 targets stays a few hundred KB (the page says how
    /// many are left out; /metrics has them all).
    std::size_t max_rows = 2000;
};

/// The whole page (text/html; charset=utf-8). Every string from the
/// configuration is HTML-escaped.
std::string render_status_page(std::span<const target_view> targets,
                               std::chrono::system_clock::time_point now,
                               const status_page_options& options);

} // namespace icmpengine_exporter
