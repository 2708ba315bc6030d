// SPDX-License-Identifier: MIT
// fping's output: "TARGET is alive", per-reply lines on stdout, ICMP errors
// and per-target summaries on stderr, -a / -u lists, and -s (--stats) totals.
#pragma once

#include "line_output.hpp"
#include "options.hpp"
#include "report.hpp"

#include <string>
#include <vector>

namespace icmpengine_cli {

class text_reporter final : public reporter {
  public:
    text_reporter(const settings& s, std::vector<std::string> names, line_output& lines);

    void resolve_failure(const ie::target_failure& f) override;
    void start(std::size_t) override {} // fping prints no header
    void ping(const ie::ping_event& e) override;
    void stray(const ie::stray_event& e) override;
    void summary(std::span<const ie::series_result> series, const run_status& run) override;

  private:
    /// "[1700000000.12345] " with -D, else nothing.
    std::string stamp() const;
    /// Count and loop modes: "TARGET : [i], 64 bytes, ..." or "timed out".
    void reply_line(const ie::ping_event& e);
    std::string summary_line(std::size_t i, const ie::series_result& r) const;
    std::string vector_line(std::size_t i, const ie::series_result& r) const;
    /// The lines of a summary that depend on the mode (all but -s's totals).
    void target_lines(std::span<const ie::series_result> series, bool final);
    void global_stats(std::span<const ie::series_result> series, const run_status& run);

    const settings& m_settings;
    std::vector<std::string> m_names;
    line_output& m_lines;
    std::size_t m_width = 0; ///< of the longest name: the columns of summary lines
};

} // namespace icmpengine_cli
