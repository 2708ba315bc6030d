// SPDX-License-Identifier: MIT
// What icmpengine reports, and when: one interface, two formats.
// report_text.hpp prints fping's lines; report_json.hpp prints JSON Lines
// (schema: tools/icmpengine.schema.json).
#pragma once

#include <icmpengine/icmpengine.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <span>

namespace icmpengine_cli {

namespace ie = ::icmpengine;

/// The run as a summary sees it.
struct run_status {
    bool final = false; ///< false for an interim summary (SIGQUIT)
    bool interrupted = false;
    std::size_t unresolved = 0;
    std::chrono::nanoseconds elapsed{0};
    std::optional<int> exit_code; ///< final summaries only
};

/// Everything the tool prints about targets and pings, in the order of the
/// run: failures to resolve, the start, each ping and stray reply (from
/// inside the fan-out's callbacks), then summaries. Target i of the
/// fan-out is names[i] of the reporter's constructor.
class reporter {
  public:
    virtual ~reporter() = default;
    virtual void resolve_failure(const ie::target_failure& f) = 0;
    virtual void start(std::size_t targets) = 0;
    virtual void ping(const ie::ping_event& e) = 0;
    virtual void stray(const ie::stray_event& e) = 0;
    /// Per-target results and the totals.
    virtual void summary(std::span<const ie::series_result> series, const run_status& run) = 0;
};

inline double to_ms(std::chrono::nanoseconds d) {
    return static_cast<double>(d.count()) / 1e6;
}
inline double to_ms(ie::ping_statistics::rtt_duration d) {
    return d.count() / 1e6;
}

/// Seconds since the epoch, as the time stamps (-D, --json) show them.
inline double unix_now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

} // namespace icmpengine_cli
