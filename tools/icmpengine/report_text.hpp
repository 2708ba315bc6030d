// SPDX-License-Identifier: MIT
// fping's output, as fping 5.1 writes it (and fping 5.5 for the options 5.1
// lacks): "TARGET is alive" and per-reply lines on stdout; ICMP errors,
// duplicates and per-target summaries on stderr; -a / -u lists, -s totals,
// -Q interval splits, -N netdata, -x verdicts. With -J the same events as
// fping 5.5's JSON objects (report_fping_json.hpp), one per line on stdout.
#pragma once

#include "line_output.hpp"
#include "options.hpp"
#include "report.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace icmpengine_cli {

class text_reporter final : public reporter {
  public:
    text_reporter(const settings& s, report_targets targets, line_output& lines);

    void resolve_failure(const ie::target_failure& f) override;
    void start(std::size_t) override {} // fping prints no header
    void ping(const ie::ping_event& e) override;
    void stray(const ie::stray_event& e) override;
    void interval(std::span<const ie::series_result> series, const run_status& run) override;
    void summary(std::span<const ie::series_result> series, const run_status& run) override;

  private:
    /// A target's last reply, to describe its duplicates as fping does.
    struct last_reply {
        std::uint16_t sequence = 0;
        std::uint64_t index = 0;
        std::uint32_t bytes = 0;
        std::chrono::nanoseconds rtt{0};
        std::chrono::steady_clock::time_point at{};
        bool valid = false;
        /// Duplicates of a reply whose ping event has not come yet (the
        /// engine reports a duplicate as soon as it sees it, and may see it
        /// before the fan-out reports the ping).
        std::uint16_t pending_sequence = 0;
        std::uint32_t pending_duplicates = 0;
        ie::ip_address pending_from{};
    };

    /// The names the events of fan-out target `target` are printed under.
    const std::vector<std::string>& names_of(std::size_t target) const {
        return m_targets.names_of[target];
    }
    void first_reply(const ie::ping_event& e);
    /// fping's "TARGET : duplicate for [i], N bytes, RTT ms" on stderr.
    /// `rtt`: the engine's measure of the duplicate (stray_reply::rtt), if
    /// it has one.
    void duplicate_line(std::size_t target, const ie::ip_address& from,
                        const ie::ip_address& address,
                        std::optional<std::chrono::nanoseconds> rtt = std::nullopt);
    /// Whether fping prints duplicates: not in loop mode, nor where a line
    /// per reply is printed.
    bool prints_duplicates() const;
    /// A line per reply or timeout, one per name of the target.
    void per_reply_lines(const ie::ping_event& e);
    void per_reply_line(const ie::ping_event& e, const std::string& name);
    void icmp_error(const ie::ping_event& e);
    /// " [<- ADDRESS]" on stderr when the reply came from elsewhere.
    void other_source(const ie::ping_event& e);
    /// --print-srcaddr, --print-tos, --print-ttl: " (SRC ..)" " (TOS ..)" " (TTL ..)".
    std::string reply_extras(const ie::ping_result& r) const;
    std::string summary_line(const std::string& name, const ie::series_result& r) const;
    std::string vector_line(const std::string& name, const ie::series_result& r) const;
    std::string split_line(const std::string& name, const interval_counts& c) const;
    void unreachable_lines(std::span<const ie::series_result> series);
    void global_stats(std::span<const ie::series_result> series, const run_status& run);
    void netdata();
    /// ", outage(ms) = N" with -o: the time the lost pings stand for.
    std::uint64_t outage_ms(std::uint64_t sent, std::uint64_t received) const;

    const settings& m_settings;
    report_targets m_targets;
    line_output& m_lines;
    std::size_t m_width = 0; ///< of the longest given name: the columns of summary lines
    bool m_json = false;     ///< -J
    bool m_verbose = false;  ///< fping's verbose_flag: "is alive", "is unreachable"
    bool m_per_recv = false; ///< fping's per_recv_flag: a line per reply and timeout
    bool m_netdata_charts_sent = false;
    std::vector<interval_counts> m_splits; ///< per fan-out target (address)
    std::vector<last_reply> m_last;        ///< per fan-out target (address)
};

} // namespace icmpengine_cli
