// SPDX-License-Identifier: MIT
// What icmpengine reports, and when: one interface, three formats.
// report_text.hpp prints fping's lines, or with -J fping 5.5's JSON objects
// (report_fping_json.hpp); report_json.hpp prints our JSON Lines
// (--json-lines, schema: tools/icmpengine.schema.json).
#pragma once

#include "line_output.hpp"
#include "options.hpp"
#include "targets.hpp"

#include <icmpengine/icmpengine.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace icmpengine_cli {

namespace ie = ::icmpengine;

/// The run as a summary sees it.
struct run_status {
    bool final = false; ///< false for an interim summary (SIGQUIT, -Q)
    bool interrupted = false;
    std::size_t unresolved = 0;
    std::chrono::nanoseconds elapsed{0};
    std::optional<int> exit_code; ///< final summaries only
    bool periodic = false;        ///< an interval report that -Q scheduled (not SIGQUIT)
};

/// The targets as the reports show them: one line (or object) per GIVEN
/// target, in the order given, as fping prints them. The fan-out pings each
/// address once; a given target's results are those of its address, so the
/// same address given under two names is reported twice, once per name
/// (fping would send to it twice).
struct report_targets {
    /// Every given target: its output name and its fan-out target.
    std::vector<given_target> given;
    /// names_of[i]: the names of the given targets whose address is the
    /// fan-out's target i, in the order given (an event of target i is
    /// printed once per name).
    std::vector<std::vector<std::string>> names_of;

    explicit report_targets(const target_set& targets);
    /// The width of the longest given name: the columns of fping's lines.
    std::size_t width() const;
};

/// Everything the tool prints about targets and pings, in the order of the
/// run: failures to resolve, the start, each ping and stray reply (from
/// inside the fan-out's callbacks), interval reports, then the summary.
/// Events come per fan-out target (address); reports are per given target
/// (report_targets).
class reporter {
  public:
    virtual ~reporter() = default;
    virtual void resolve_failure(const ie::target_failure& f) = 0;
    /// `targets`: how many were given.
    virtual void start(std::size_t targets) = 0;
    virtual void ping(const ie::ping_event& e) = 0;
    virtual void stray(const ie::stray_event& e) = 0;
    /// An interval report: every -Q SECS, and at each SIGQUIT (fping's
    /// "splits": the counts since the previous report).
    virtual void interval(std::span<const ie::series_result> series, const run_status& run) = 0;
    /// Per-target results and the totals.
    virtual void summary(std::span<const ie::series_result> series, const run_status& run) = 0;
};

/// The reporter the settings ask for: --json-lines, -J, or fping's text.
std::unique_ptr<reporter> make_reporter(const settings& s, const target_set& targets,
                                        line_output& lines);

inline double to_ms(std::chrono::nanoseconds d) {
    return static_cast<double>(d.count()) / 1e6;
}
inline double to_ms(ie::ping_statistics::rtt_duration d) {
    return d.count() / 1e6;
}

/// Milliseconds as fping prints them (its sprint_tm): three significant
/// digits, "0.044", "1.25", "60.2", "602", "1.000e+06".
std::string format_ms(double ms);

/// `text` as a JSON string, quotes included: valid JSON whatever the bytes
/// (control characters escaped, bytes that are not UTF-8 become U+FFFD).
std::string json_quote(std::string_view text);

/// Now, as -D stamps a line (without the brackets): "1700000000.12345",
/// or per --timestamp-format as ctime's "%c", ISO 8601 or RFC 3339 (local).
std::string format_timestamp(stamp_format f);

/// Seconds since the epoch, as the time stamps (-D, --json-lines) show them.
inline double unix_now() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

/// One target's counts since the last interval report (fping's "_i"
/// counters): what -Q, SIGQUIT and -N print.
struct interval_counts {
    std::uint64_t sent = 0;
    std::uint64_t received = 0;
    std::chrono::nanoseconds rtt_min{0};
    std::chrono::nanoseconds rtt_max{0};
    std::chrono::nanoseconds rtt_total{0};

    /// Counts a ping whose fate is known (cancelled pings are not).
    void add(const ie::ping_result& r);
};

} // namespace icmpengine_cli
