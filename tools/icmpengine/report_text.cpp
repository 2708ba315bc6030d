// SPDX-License-Identifier: MIT
// Text output in fping's formats, with icmpengine's extra counters
// (out-of-order, duplicates, ICMP errors) at the end of each summary line.
#include "report_text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <iterator>

namespace icmpengine_cli {

namespace {

/// Milliseconds to three significant digits, as fping prints them.
std::string format_ms(double ms) {
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

/// fping's integer loss percentage.
std::uint64_t loss_percent(const ie::ping_statistics& s) {
    return s.resolved() == 0 ? 0 : (s.resolved() - s.received()) * 100 / s.resolved();
}

/// What an ICMP error says, in fping's words (RFC 792, RFC 4443).
std::string icmp_description(const ie::ping_result& r) {
    const bool v4 = r.from.is_v4();
    if (v4 && r.icmp_type == 3) {
        static constexpr const char* codes[] = {
            "Network Unreachable",       "Host Unreachable",
            "Protocol Unreachable",      "Port Unreachable",
            "Fragmentation Needed",      "Source Route Failed",
            "Network Unknown",           "Host Unknown",
            "Source Host Isolated",      "Network Prohibited",
            "Host Prohibited",           "Network Unreachable For TOS",
            "Host Unreachable For TOS",  "Communication Prohibited",
            "Host Precedence Violation", "Precedence Cutoff"};
        if (r.icmp_code < std::size(codes))
            return codes[r.icmp_code];
        return fmt::format("Unreachable (code {})", r.icmp_code);
    }
    if (!v4 && r.icmp_type == 1) {
        static constexpr const char* codes[] = {"No Route",         "Communication Prohibited",
                                                "Beyond Scope",     "Address Unreachable",
                                                "Port Unreachable", "Source Address Failed Policy",
                                                "Reject Route"};
        if (r.icmp_code < std::size(codes))
            return codes[r.icmp_code];
        return fmt::format("Unreachable (code {})", r.icmp_code);
    }
    switch (r.status) {
    case ie::ping_status::time_exceeded:
        return "Time Exceeded";
    case ie::ping_status::packet_too_big:
        return "Packet Too Big";
    case ie::ping_status::parameter_problem:
        return "Parameter Problem";
    default:
        return fmt::format("type {} code {}", r.icmp_type, r.icmp_code);
    }
}

} // namespace

text_reporter::text_reporter(const settings& s, std::vector<std::string> names, line_output& lines)
    : m_settings(s), m_names(std::move(names)), m_lines(lines) {
    for (const std::string& n : m_names)
        m_width = std::max(m_width, n.size());
}

void text_reporter::resolve_failure(const ie::target_failure& f) {
    if (f.line > 0)
        m_lines.err(fmt::format("{}:{}: {}: {}", m_settings.file == "-" ? "stdin" : m_settings.file,
                                f.line, f.name, f.reason));
    else
        m_lines.err(fmt::format("{}: {}", f.name, f.reason));
}

void text_reporter::ping(const ie::ping_event& e) {
    const ie::ping_result& r = e.result;
    const settings& s = m_settings;
    if (s.quiet)
        return;
    switch (r.status) {
    case ie::ping_status::reply:
    case ie::ping_status::timeout:
        break;
    case ie::ping_status::unreachable:
    case ie::ping_status::time_exceeded:
    case ie::ping_status::packet_too_big:
    case ie::ping_status::parameter_problem:
        m_lines.err(fmt::format("ICMP {} from {} for ICMP Echo sent to {}", icmp_description(r),
                                r.from.to_string(), e.series.target.to_string()));
        return;
    case ie::ping_status::send_error:
        // Once per target: the same local error every time says nothing new.
        if (e.series.statistics.send_errors() == 1)
            m_lines.err(fmt::format("{}: error while sending ping: {}", m_names[e.target],
                                    r.error.message()));
        return;
    case ie::ping_status::cancelled:
        return;
    }
    if (s.mode == run_mode::single_shot) {
        // -u alone lists only the unreachable; -a lists names, bare.
        if (r.status != ie::ping_status::reply || (s.unreachable && !s.alive))
            return;
        std::string line = stamp();
        line += m_names[e.target];
        if (!s.alive && !s.unreachable)
            line += " is alive";
        if (s.elapsed)
            line += fmt::format(" ({} ms)", format_ms(to_ms(r.rtt)));
        m_lines.out(line);
        return;
    }
    if (s.alive || s.unreachable)
        return; // lists at the end instead (fping prints no per-ping lines then)
    reply_line(e);
}

void text_reporter::reply_line(const ie::ping_event& e) {
    const ie::ping_result& r = e.result;
    const ie::ping_statistics& st = e.series.statistics;
    const std::string avg = st.rtt_mean() ? format_ms(to_ms(*st.rtt_mean())) : "NaN";
    if (r.status == ie::ping_status::reply)
        m_lines.out(fmt::format("{}{:<{}} : [{}], {} bytes, {} ms ({} avg, {}% loss)", stamp(),
                                m_names[e.target], m_width, e.index, r.bytes + 8,
                                format_ms(to_ms(r.rtt)), avg, loss_percent(st)));
    else
        m_lines.out(fmt::format("{}{:<{}} : [{}], timed out ({} avg, {}% loss)", stamp(),
                                m_names[e.target], m_width, e.index, avg, loss_percent(st)));
}

void text_reporter::stray(const ie::stray_event& e) {
    if (m_settings.quiet)
        return;
    const bool duplicate = e.reply.what == ie::stray_reply::kind::duplicate;
    m_lines.err(fmt::format("{} : {} reply, seq {}", m_names[e.target],
                            duplicate ? "duplicate" : "late", e.reply.sequence));
}

void text_reporter::summary(std::span<const ie::series_result> series, const run_status& run) {
    m_lines.hold_errors();
    struct release {
        line_output& lines;
        ~release() { lines.release_errors(); }
    } released_at_exit{m_lines};
    if (!run.final) {
        const std::time_t now = std::time(nullptr);
        std::tm tm{};
        ::localtime_r(&now, &tm);
        m_lines.err(fmt::format("[{:02}:{:02}:{:02}]", tm.tm_hour, tm.tm_min, tm.tm_sec));
    }
    target_lines(series, run.final);
    if (m_settings.stats && run.final)
        global_stats(series, run);
}

std::string text_reporter::stamp() const {
    return m_settings.timestamps ? fmt::format("[{:.5f}] ", unix_now()) : std::string();
}

std::string text_reporter::summary_line(std::size_t i, const ie::series_result& r) const {
    const ie::ping_statistics& st = r.statistics;
    std::string line = fmt::format("{:<{}} : xmt/rcv/%loss = {}/{}/{}%", m_names[i], m_width,
                                   st.resolved(), st.received(), loss_percent(st));
    if (st.received() > 0)
        line +=
            fmt::format(", min/avg/max = {}/{}/{}, stddev = {}", format_ms(to_ms(*st.rtt_min())),
                        format_ms(to_ms(*st.rtt_mean())), format_ms(to_ms(*st.rtt_max())),
                        format_ms(to_ms(*st.rtt_stddev_population())));
    line += fmt::format(", out-of-order = {}, duplicates = {}, icmp-errors = {}", st.out_of_order(),
                        st.duplicates(), st.icmp_errors());
    return line;
}

std::string text_reporter::vector_line(std::size_t i, const ie::series_result& r) const {
    std::string line = fmt::format("{:<{}} :", m_names[i], m_width);
    const auto history = r.statistics.rtt_history();
    const std::size_t n = std::max<std::size_t>(history.size(), r.sent);
    for (std::size_t k = 0; k < n; ++k)
        line += k < history.size() && history[k] ? " " + format_ms(to_ms(*history[k])) : " -";
    return line;
}

void text_reporter::target_lines(std::span<const ie::series_result> series, bool final) {
    const settings& s = m_settings;
    if (s.mode == run_mode::single_shot && final) {
        for (std::size_t i = 0; i < series.size(); ++i) {
            if (series[i].alive())
                continue;
            if (s.unreachable)
                m_lines.out(m_names[i]);
            else if (!s.quiet && !s.alive)
                m_lines.out(m_names[i] + " is unreachable");
        }
        return;
    }
    // Count and loop modes; and every interim summary (SIGQUIT).
    if (final && (s.alive || s.unreachable))
        for (std::size_t i = 0; i < series.size(); ++i)
            if (series[i].alive() ? s.alive : s.unreachable)
                m_lines.out(m_names[i]);
    if (final && !s.quiet && !s.alive && !s.unreachable)
        m_lines.err("");
    for (std::size_t i = 0; i < series.size(); ++i)
        m_lines.err(s.vector_output ? vector_line(i, series[i]) : summary_line(i, series[i]));
}

/// fping -s's block of totals.
void text_reporter::global_stats(std::span<const ie::series_result> series, const run_status& run) {
    ie::ping_statistics total;
    std::size_t alive = 0;
    std::uint64_t late = 0;
    for (const ie::series_result& r : series) {
        total.merge(r.statistics);
        alive += r.alive() ? 1 : 0;
        late += r.late_replies;
    }
    auto row = [&](std::uint64_t n, std::string_view what) {
        m_lines.err(fmt::format(" {:>7} {}", n, what));
    };
    m_lines.err("");
    row(series.size(), "targets");
    row(alive, "alive");
    row(series.size() - alive, "unreachable");
    row(run.unresolved, "unknown addresses");
    m_lines.err("");
    row(total.timeouts(), "timeouts (waiting for response)");
    row(total.resolved(), "ICMP Echos sent");
    row(total.received(), "ICMP Echo Replies received");
    row(total.icmp_errors(), "other ICMP received");
    row(total.duplicates(), "duplicate replies");
    row(late, "late replies");
    row(total.out_of_order(), "out-of-order replies");
    m_lines.err("");
    if (total.received() > 0) {
        auto rtt = [&](double ms, std::string_view what) {
            m_lines.err(fmt::format(" {} ms ({})", format_ms(ms), what));
        };
        rtt(to_ms(*total.rtt_min()), "min round trip time");
        rtt(to_ms(*total.rtt_mean()), "avg round trip time");
        rtt(to_ms(*total.rtt_max()), "max round trip time");
        rtt(to_ms(*total.rtt_stddev_population()), "round trip time standard deviation");
    }
    m_lines.err(fmt::format(" {:>12.3f} sec (elapsed real time)",
                            std::chrono::duration<double>(run.elapsed).count()));
    m_lines.err("");
}

} // namespace icmpengine_cli
