// SPDX-License-Identifier: MIT
// The smoke graph. Sizes are kept small on purpose (a page carries up to
// max_graphs of these): integer coordinates, one <path> per band and per
// loss colour, each bin a vertical stroke as wide as the bin.
#include "smoke_graph.hpp"

#include "html.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <ctime>

namespace icmpengine_exporter {

namespace {

constexpr int plot_left = 50;
constexpr int plot_top = 18;
constexpr int plot_height = 150;
constexpr int margin_right = 12;
constexpr int margin_bottom = 22;
constexpr int plot_width_goal = 600;

double ms_of(std::chrono::nanoseconds ns) {
    return static_cast<double>(ns.count()) / 1e6;
}

// The y axis: its top (ms) and the distance between ticks.
struct y_scale {
    double top = 1.0;
    double tick = 0.25;
};

y_scale choose_y_scale(const std::vector<history_bin>& bins) {
    std::vector<double> maxima;
    double highest_median = 0.0;
    for (const history_bin& b : bins) {
        if (b.received == 0)
            continue;
        maxima.push_back(ms_of(b.rtt[6]));
        highest_median = std::max(highest_median, ms_of(b.rtt[3]));
    }
    double goal = 0.0;
    if (!maxima.empty()) {
        const std::size_t p90 = (maxima.size() - 1) * 9 / 10;
        std::nth_element(maxima.begin(), maxima.begin() + static_cast<std::ptrdiff_t>(p90),
                         maxima.end());
        goal = std::max(maxima[p90], highest_median) * 1.05;
    }
    if (goal <= 0.0)
        goal = 1.0;
    // Ticks of 1, 2 or 5 times a power of ten, four or five of them.
    const double raw = goal / 4.0;
    const double decade = std::pow(10.0, std::floor(std::log10(raw)));
    double tick = decade * 5.0;
    for (const double m : {1.0, 2.0, 5.0})
        if (decade * m >= raw) {
            tick = decade * m;
            break;
        }
    return {std::ceil(goal / tick - 1e-9) * tick, tick};
}

// The x axis: a tick every this many bins (a round time).
std::int64_t x_tick_bins(std::size_t capacity, std::chrono::seconds step) {
    const std::int64_t window = static_cast<std::int64_t>(capacity) * step.count();
    for (const std::int64_t every :
         {10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400}) {
        if (every % step.count() == 0 && window / every <= 7)
            return every / step.count();
    }
    return std::max<std::int64_t>(1, static_cast<std::int64_t>(capacity) / 6);
}

std::string clock_label(std::chrono::system_clock::time_point t, bool seconds) {
    const std::time_t tt = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    return seconds ? fmt::format("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
                   : fmt::format("{:02}:{:02}", tm.tm_hour, tm.tm_min);
}

struct geometry {
    int bin_width;
    int plot_width;
    y_scale y;
    int y_of(double ms) const {
        const double f = std::clamp(ms / y.top, 0.0, 1.0);
        return plot_top + static_cast<int>(std::lround(plot_height * (1.0 - f)));
    }
};

void append_axes(std::string& out, const smoke_graph_input& in, const geometry& g,
                 std::int64_t last_index) {
    const int bottom = plot_top + plot_height;
    std::string grid;
    std::string labels;
    // Ticks are 1, 2 or 5 times a power of ten: as many decimals as that needs.
    const int decimals = std::max(0, -static_cast<int>(std::floor(std::log10(g.y.tick) + 1e-9)));
    for (double v = 0.0; v <= g.y.top * (1 + 1e-9); v += g.y.tick) {
        const int y = g.y_of(v);
        if (v > 0.0)
            grid += fmt::format("M{} {}h{}", plot_left, y, g.plot_width);
        labels +=
            fmt::format(R"(<text x="{}" y="{}" text-anchor="end">{}</text>)", plot_left - 5, y + 4,
                        v == 0.0 ? std::string("0") : fmt::format("{:.{}f}", v, decimals));
    }
    const std::int64_t every = x_tick_bins(in.capacity, in.step);
    const auto first = last_index - static_cast<std::int64_t>(in.capacity) + 1;
    for (std::int64_t i = first; i <= last_index; ++i) {
        if (i % every != 0)
            continue;
        const int x = plot_left + static_cast<int>(i - first) * g.bin_width;
        grid += fmt::format("M{} {}V{}", x, plot_top, bottom);
        const std::chrono::system_clock::time_point t(std::chrono::seconds(i * in.step.count()));
        labels += fmt::format(R"(<text x="{}" y="{}" text-anchor="middle">{}</text>)", x,
                              bottom + 15, clock_label(t, in.step.count() < 60));
    }
    out += fmt::format(R"(<path class="gl" d="{}"/>)", grid);
    out += fmt::format(R"(<rect class="ax" x="{}" y="{}" width="{}" height="{}"/>)", plot_left,
                       plot_top, g.plot_width, plot_height);
    out += labels;
    out += fmt::format(R"(<text x="{}" y="{}" text-anchor="end">ms</text>)", plot_left - 5,
                       plot_top - 8);
    out += fmt::format(R"(<text x="{}" y="{}" text-anchor="end">UTC</text>)",
                       plot_left + g.plot_width, plot_top - 8);
}

// Each bin's bands and median, as path data grouped by CSS class.
struct smoke_paths {
    std::array<std::string, 3> bands;   // min..max, p10..p90, p25..p75
    std::array<std::string, 8> medians; // by loss colour (html::loss_colours)
    std::string all_lost;
};

smoke_paths draw_bins(const smoke_graph_input& in, const geometry& g, std::int64_t last_index) {
    smoke_paths p;
    const auto first = last_index - static_cast<std::int64_t>(in.capacity) + 1;
    for (const history_bin& b : in.bins) {
        const std::int64_t index = b.start.time_since_epoch() / in.step;
        if (b.sent == 0 || index < first)
            continue; // no pings: left empty
        const int x0 = plot_left + static_cast<int>(index - first) * g.bin_width;
        const int xc = x0 + g.bin_width / 2;
        if (b.received == 0) {
            p.all_lost += fmt::format("M{} {}v{}", xc, plot_top, plot_height);
            continue;
        }
        constexpr std::array<std::pair<int, int>, 3> bands{{{0, 6}, {1, 5}, {2, 4}}};
        for (std::size_t k = 0; k < bands.size(); ++k) {
            const int top = g.y_of(ms_of(b.rtt[static_cast<std::size_t>(bands[k].second)]));
            const int low = g.y_of(ms_of(b.rtt[static_cast<std::size_t>(bands[k].first)]));
            p.bands[k] += fmt::format("M{} {}V{}", xc, top, std::max(low, top + 1));
        }
        const html::loss_colour& c = html::loss_colour_for(b.sent, b.sent - b.received);
        const auto colour = static_cast<std::size_t>(&c - html::loss_colours);
        p.medians[colour] += fmt::format("M{} {}h{}", x0, g.y_of(ms_of(b.rtt[3])), g.bin_width);
    }
    return p;
}

} // namespace

void append_smoke_graph(std::string& out, const smoke_graph_input& in, std::size_t id) {
    geometry g{};
    g.bin_width =
        std::max(1, plot_width_goal / static_cast<int>(std::max<std::size_t>(in.capacity, 1)));
    g.plot_width = g.bin_width * static_cast<int>(in.capacity);
    g.y = choose_y_scale(in.bins);
    const std::int64_t last_index =
        in.bins.empty() ? 0 : in.bins.back().start.time_since_epoch() / in.step;
    const int width = plot_left + g.plot_width + margin_right;
    const int height = plot_top + plot_height + margin_bottom;
    out +=
        fmt::format(R"(<svg viewBox="0 0 {} {}" role="img" aria-labelledby="t{}"><title id="t{}">)",
                    width, height, id, id);
    html::append_escaped(out, in.title);
    out += "</title>";
    append_axes(out, in, g, last_index);
    const smoke_paths p = draw_bins(in, g, last_index);
    if (!p.all_lost.empty())
        out +=
            fmt::format(R"(<path class="l7" stroke-width="{}" d="{}"/>)", g.bin_width, p.all_lost);
    for (std::size_t k = 0; k < p.bands.size(); ++k)
        if (!p.bands[k].empty())
            out += fmt::format(R"(<path class="s{}" stroke-width="{}" d="{}"/>)", k + 1,
                               g.bin_width, p.bands[k]);
    for (std::size_t c = 0; c < p.medians.size(); ++c)
        if (!p.medians[c].empty())
            out += fmt::format(R"(<path class="m {}" d="{}"/>)", html::loss_colours[c].css_class,
                               p.medians[c]);
    out += "</svg>";
}

} // namespace icmpengine_exporter
