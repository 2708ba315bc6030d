// SPDX-License-Identifier: MIT
// --json-lines: one JSON object per event on stdout (start, error, ping, stray,
// target, summary), as tools/icmpengine.schema.json describes them.
#pragma once

#include "line_output.hpp"
#include "options.hpp"
#include "report.hpp"

#include <string>
#include <vector>

namespace icmpengine_cli {

class json_reporter final : public reporter {
  public:
    json_reporter(const settings& s, report_targets targets, line_output& lines)
        : m_settings(s), m_targets(std::move(targets)), m_lines(lines) {}

    void resolve_failure(const ie::target_failure& f) override;
    void start(std::size_t targets) override;
    void ping(const ie::ping_event& e) override;
    void stray(const ie::stray_event& e) override;
    /// An interim summary (final = false), as at SIGQUIT.
    void interval(std::span<const ie::series_result> series, const run_status& run) override {
        summary(series, run);
    }
    void summary(std::span<const ie::series_result> series, const run_status& run) override;

  private:
    const settings& m_settings;
    report_targets m_targets;
    line_output& m_lines;
};

} // namespace icmpengine_cli
