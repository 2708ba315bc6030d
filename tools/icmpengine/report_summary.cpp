// SPDX-License-Identifier: MIT
// text_reporter's summaries, as fping's finish(), print_per_system_stats(),
// print_per_system_splits(), print_netdata() and print_global_stats() write
// them (fping 5.1; with -J, fping 5.5's JSON objects instead).
#include "report_fping_json.hpp"
#include "report_text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <ctime>

namespace icmpengine_cli {

namespace {

std::uint64_t loss_percent(std::uint64_t sent, std::uint64_t received) {
    return sent == 0 ? 0 : (sent - received) * 100 / sent;
}

std::optional<fping_json::rtt_triple> rtts(const ie::ping_statistics& st) {
    if (st.received() == 0)
        return std::nullopt;
    return fping_json::rtt_triple{to_ms(*st.rtt_min()), to_ms(*st.rtt_mean()),
                                  to_ms(*st.rtt_max())};
}

std::optional<fping_json::rtt_triple> rtts(const interval_counts& c) {
    if (c.received == 0)
        return std::nullopt;
    return fping_json::rtt_triple{to_ms(c.rtt_min),
                                  to_ms(c.rtt_total / static_cast<std::int64_t>(c.received)),
                                  to_ms(c.rtt_max)};
}

/// ", min/avg/max = A/B/C" when something was received.
std::string rtt_text(const std::optional<fping_json::rtt_triple>& t) {
    return t ? fmt::format(", min/avg/max = {}/{}/{}", format_ms(t->min), format_ms(t->avg),
                           format_ms(t->max))
             : std::string();
}

/// netdata's chart ids take letters and digits only (fping: the rest '_').
std::string netdata_id(std::string name) {
    for (char& c : name)
        if (!std::isalnum(static_cast<unsigned char>(c)))
            c = '_';
    return name;
}

} // namespace

std::uint64_t text_reporter::outage_ms(std::uint64_t sent, std::uint64_t received) const {
    return static_cast<std::uint64_t>(static_cast<double>(sent - received) *
                                      static_cast<double>(m_settings.period_ns.count()) / 1e6);
}

void text_reporter::summary(std::span<const ie::series_result> series, const run_status& run) {
    const settings& s = m_settings;
    m_lines.hold_errors();
    struct release {
        line_output& lines;
        ~release() { lines.release_errors(); }
    } released_at_exit{m_lines};
    unreachable_lines(series);
    if (s.mode != run_mode::single_shot) {
        if (m_per_recv && !m_json)
            m_lines.err("");
        for (const given_target& g : m_targets.given) {
            const ie::series_result& r = series[g.address];
            const std::string line =
                s.vector_output ? vector_line(g.name, r) : summary_line(g.name, r);
            if (m_json)
                m_lines.out(line);
            else
                m_lines.err(line);
        }
    }
    if (s.stats)
        global_stats(series, run);
    if (s.min_reachable > 0) {
        const auto alive = static_cast<std::size_t>(
            std::count_if(m_targets.given.begin(), m_targets.given.end(),
                          [&](const given_target& g) { return series[g.address].alive(); }));
        m_lines.out(fmt::format("{} hosts reachable (required: {}, reachable: {})",
                                alive >= s.min_reachable ? "Enough" : "Not enough", s.min_reachable,
                                alive));
    }
}

/// finish(): "TARGET is unreachable", or TARGET alone with -u.
void text_reporter::unreachable_lines(std::span<const ie::series_result> series) {
    const bool list = m_settings.unreachable && m_settings.mode == run_mode::single_shot;
    if (!m_verbose && !list)
        return;
    for (const given_target& g : m_targets.given)
        if (!series[g.address].alive())
            m_lines.out(m_verbose ? g.name + " is unreachable" : g.name);
}

std::string text_reporter::summary_line(const std::string& name, const ie::series_result& r) const {
    const ie::ping_statistics& st = r.statistics;
    const settings& s = m_settings;
    fping_json::counts c{st.resolved(), st.received(), std::nullopt, rtts(st)};
    if (s.outage)
        c.outage_ms = outage_ms(c.sent, c.received);
    if (m_json)
        return fping_json::summary(name, c);
    std::string line = fmt::format("{:<{}} : xmt/rcv/%loss = {}/{}/{}%", name, m_width, c.sent,
                                   c.received, loss_percent(c.sent, c.received));
    if (c.outage_ms)
        line += fmt::format(", outage(ms) = {}", *c.outage_ms);
    line += rtt_text(c.rtt);
    if (s.extended_summary) {
        if (st.received() > 0)
            line += fmt::format(", stddev = {}", format_ms(to_ms(*st.rtt_stddev_population())));
        line += fmt::format(", out-of-order = {}, duplicates = {}, icmp-errors = {}",
                            st.out_of_order(), st.duplicates(), st.icmp_errors());
    }
    return line;
}

std::string text_reporter::vector_line(const std::string& name, const ie::series_result& r) const {
    std::vector<std::optional<double>> values;
    const auto history = r.statistics.rtt_history();
    // fping lists the pings whose fate is known; so do we (a ping in flight
    // when the run was interrupted is left out).
    const std::size_t n = std::max<std::size_t>(history.size(), r.sent - r.in_flight);
    for (std::size_t k = 0; k < n; ++k)
        values.push_back(k < history.size() && history[k]
                             ? std::optional<double>(to_ms(*history[k]))
                             : std::nullopt);
    if (m_json)
        return fping_json::vector_summary(name, values);
    std::string line = fmt::format("{:<{}} :", name, m_width);
    for (const auto& v : values)
        line += v ? " " + format_ms(*v) : std::string(" -");
    return line;
}

void text_reporter::interval(std::span<const ie::series_result>, const run_status& run) {
    const settings& s = m_settings;
    if (s.netdata && run.periodic) { // fping: -N before -J
        netdata();
        return;
    }
    m_lines.hold_errors();
    struct release {
        line_output& lines;
        ~release() { lines.release_errors(); }
    } released_at_exit{m_lines};
    const std::time_t now = std::time(nullptr);
    if (!m_json) {
        if (m_verbose || m_per_recv)
            m_lines.err("");
        std::tm tm{};
        ::localtime_r(&now, &tm);
        m_lines.err(fmt::format("[{:02}:{:02}:{:02}]", tm.tm_hour, tm.tm_min, tm.tm_sec));
    }
    for (const given_target& g : m_targets.given) {
        const interval_counts& c = m_splits[g.address];
        if (m_json)
            m_lines.out(fping_json::interval_summary(
                static_cast<std::int64_t>(now), g.name,
                {c.sent, c.received,
                 s.outage ? std::optional(outage_ms(c.sent, c.received)) : std::nullopt, rtts(c)}));
        else
            m_lines.err(split_line(g.name, c));
    }
    // After every name of an address has been printed.
    if (!s.cumulative)
        std::fill(m_splits.begin(), m_splits.end(), interval_counts{});
}

std::string text_reporter::split_line(const std::string& name, const interval_counts& c) const {
    std::string line = fmt::format("{:<{}} : xmt/rcv/%loss = {}/{}/{}%", name, m_width, c.sent,
                                   c.received, loss_percent(c.sent, c.received));
    if (m_settings.outage)
        line += fmt::format(", outage(ms) = {}", outage_ms(c.sent, c.received));
    return line + rtt_text(rtts(c));
}

/// -N: netdata's external plugin protocol, charts declared once.
void text_reporter::netdata() {
    const double every = std::chrono::duration<double>(m_settings.report_interval).count();
    for (const given_target& g : m_targets.given) {
        const std::string& host = g.name;
        const std::string id = netdata_id(host);
        const interval_counts& c = m_splits[g.address];
        std::string block;
        const auto chart = [&](std::string_view kind, std::string_view title,
                               std::string_view units, std::string_view type, int priority) {
            if (!m_netdata_charts_sent)
                block +=
                    fmt::format("CHART fping.{}_{} '' 'FPing {} for host {}' {} '{}' "
                                "fping.{} {} {} {:.0f}\n",
                                id, kind, title, host, units, host, kind, type, priority, every);
        };
        chart("packets", "Packets", "packets", "line", 110020);
        if (!m_netdata_charts_sent)
            block += "DIMENSION xmt sent absolute 1 1\nDIMENSION rcv received absolute 1 1\n";
        block += fmt::format("BEGIN fping.{}_packets\nSET xmt = {}\nSET rcv = {}\nEND\n", id,
                             c.sent, c.received);
        chart("quality", "Quality", "percentage", "area", 110010);
        if (!m_netdata_charts_sent)
            block += "DIMENSION returned '' absolute 1 1\n";
        block += fmt::format("BEGIN fping.{}_quality\nSET returned = {}\nEND\n", id,
                             c.sent > 0 ? c.received * 100 / c.sent : 0);
        chart("latency", "Latency", "ms", "area", 110000);
        if (!m_netdata_charts_sent)
            block += "DIMENSION min minimum absolute 1 1000000\nDIMENSION max maximum absolute 1 "
                     "1000000\nDIMENSION avg average absolute 1 1000000\n";
        block += fmt::format("BEGIN fping.{}_latency\n", id);
        if (c.received > 0)
            block += fmt::format("SET min = {}\nSET avg = {}\nSET max = {}\n", c.rtt_min.count(),
                                 c.rtt_total.count() / static_cast<std::int64_t>(c.received),
                                 c.rtt_max.count());
        block += "END";
        m_lines.out(block);
    }
    std::fill(m_splits.begin(), m_splits.end(), interval_counts{});
    m_netdata_charts_sent = true;
}

/// fping -s's block of totals.
void text_reporter::global_stats(std::span<const ie::series_result> series, const run_status& run) {
    ie::ping_statistics total;
    fping_json::totals t;
    std::uint64_t late = 0;
    // Per given target, as fping counts (it pings each on its own): an
    // address given twice counts twice.
    for (const given_target& g : m_targets.given) {
        const ie::series_result& r = series[g.address];
        total.merge(r.statistics);
        t.alive += r.alive() ? 1 : 0;
        t.sent += r.sent - r.in_flight;
        late += r.late_replies;
    }
    t.targets = m_targets.given.size();
    t.unreachable = t.targets - t.alive;
    t.unknown = run.unresolved;
    t.timeouts = total.timeouts();
    // fping counts every echo reply that matched a ping: duplicates and late
    // replies too.
    t.received = total.received() + total.duplicates() + late;
    t.other_icmp = total.icmp_errors();
    if (const auto r = rtts(total))
        t.rtt = *r;
    t.elapsed_s = std::chrono::duration<double>(run.elapsed).count();
    if (m_json) {
        m_lines.out(fping_json::stats(t));
        return;
    }
    const auto row = [&](std::uint64_t n, std::string_view what) {
        m_lines.err(fmt::format(" {:>7} {}", n, what));
    };
    m_lines.err("");
    row(t.targets, "targets");
    row(t.alive, "alive");
    row(t.unreachable, "unreachable");
    row(t.unknown, "unknown addresses");
    m_lines.err("");
    row(t.timeouts, "timeouts (waiting for response)");
    row(t.sent, "ICMP Echos sent");
    row(t.received, "ICMP Echo Replies received");
    row(t.other_icmp, "other ICMP received");
    if (m_settings.extended_summary) {
        row(total.duplicates(), "duplicate replies");
        row(late, "late replies");
        row(total.out_of_order(), "out-of-order replies");
    }
    m_lines.err("");
    m_lines.err(fmt::format(" {} ms (min round trip time)", format_ms(t.rtt.min)));
    m_lines.err(fmt::format(" {} ms (avg round trip time)", format_ms(t.rtt.avg)));
    m_lines.err(fmt::format(" {} ms (max round trip time)", format_ms(t.rtt.max)));
    if (m_settings.extended_summary && total.received() > 0)
        m_lines.err(fmt::format(" {} ms (round trip time standard deviation)",
                                format_ms(to_ms(*total.rtt_stddev_population()))));
    m_lines.err(fmt::format(" {:>12.3f} sec (elapsed real time)", t.elapsed_s));
    m_lines.err("");
}

} // namespace icmpengine_cli
