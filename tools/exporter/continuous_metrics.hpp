// SPDX-License-Identifier: MIT
// Continuous mode's metrics: what one target counts (target_metrics) and how
// the families are written (continuous_metrics). Pure: no engine, no
// socket, so that unit tests and bench/bench_exporter_render.cpp render the
// real code with counters they make up.
//
// Speed (issue 12: /metrics for 10,000 targets in under 20 ms of CPU): each
// target's label set is rendered once, when the target is added, and the
// `le="..."} ` fragments of the histogram once per prober; a scrape only
// copies those fragments and formats numbers (std::to_chars) into space
// reserved up front. bench/bench_exporter_render.cpp measures it.
//
// Against smokeping_prober (its newest collector.go: the same family names,
// help texts, types, label names ip, host, source, tos, the group's labels
// after them in name order, every series initialised to 0), what differs:
// - A reply after the ping's timeout (the target's interval unless one is
//   set) is counted in icmpengine_exporter_late_replies_total and not
//   observed in smokeping_response_duration_seconds; smokeping_prober
//   observes any reply it can still match, however late.
// - smokeping_receive_errors_total counts the engines' receive_overruns
//   (packets the kernel dropped because a socket's buffer was full, read
//   with SO_MEMINFO), retired engines included; smokeping_prober counts
//   its read errors other than timeouts. Our receive path has no other
//   error a person could act on: malformed and foreign packets are in
//   icmpengine_exporter_engine_{invalid,foreign}_packets_total.
// - smokeping_send_errors_total counts pings that ended as send_error.
// - A group's extra labels appear on its own series only; smokeping_prober
//   gives every series the union of all groups' label names, empty where a
//   group lacks one. Prometheus treats an empty label as absent: the same
//   series once scraped.
// - `tos` is the configured byte, as smokeping_prober's label; our engine
//   sets its DSCP (tos >> 2) on the wire and drops the two ECN bits.
// - Counters are written as integers (client_golang writes 1.234567e+06):
//   the same values. Families come in this file's order, not sorted.
#pragma once

#include "exposition.hpp"
#include "target.hpp"

#include <icmpengine/engine.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace icmpengine_exporter {

/// ICMP errors that end a ping, counted apart in
/// icmpengine_exporter_icmp_errors_total{type=...}.
enum class icmp_error_type : std::uint8_t {
    unreachable,
    time_exceeded,
    packet_too_big,
    parameter_problem
};
inline constexpr std::size_t icmp_error_types = 4;
/// "unreachable", "time_exceeded", "packet_too_big", "parameter_problem".
std::string_view to_label(icmp_error_type t) noexcept;

/// One target's series: its label set, rendered once, and its counters.
/// Fixed size: the bucket counts are allocated once, with the target.
struct target_metrics {
    /// `{ip="...",host="...",source="...",tos="..."` then the group's
    /// extra labels in name order, then `}` (target_label_set()).
    std::string label_set;
    std::uint64_t sent = 0;         ///< smokeping_requests_total
    std::uint64_t received = 0;     ///< replies in time: the histogram's _count
    double rtt_sum_seconds = 0;     ///< the histogram's _sum
    std::uint64_t duplicates = 0;   ///< smokeping_response_duplicates_total
    std::uint64_t send_errors = 0;  ///< smokeping_send_errors_total
    std::uint64_t timeouts = 0;     ///< icmpengine_exporter_timeouts_total
    std::uint64_t late_replies = 0; ///< icmpengine_exporter_late_replies_total
    std::uint64_t cancelled = 0;    ///< ended by stop() or a removal; not rendered
    std::array<std::uint64_t, icmp_error_types> icmp_errors{};
    std::uint32_t in_flight = 0; ///< icmpengine_exporter_in_flight
    std::uint8_t ttl = 0;        ///< smokeping_response_ttl: the last reply's
    /// Observations per bucket (not cumulative); the last one counts those
    /// above the highest bound (+Inf).
    std::unique_ptr<std::uint64_t[]> buckets;
};

/// `{ip="...",host="...",source="...",tos="..."[,name="value"...]}` with
/// every value escaped: smokeping_prober's label names, in its order, and
/// the group's labels after them (sorted by name, as target_spec keeps them).
std::string target_label_set(const target_spec& spec);
/// `{source="...",tos="..."}`: one engine's labels.
std::string engine_label_set(std::string_view source, std::uint8_t tos);

/// Writes `v` as Go's strconv.FormatFloat(v, 'g', -1, 64) does, which is
/// how client_golang writes `le` labels and float samples: shortest digits
/// that read back the same, %e form when the decimal exponent is < -4 or
/// >= 6 ("5e-05", "0.0001", "26.2144", "123456", "1.234567e+06"), "+Inf",
/// "-Inf", "NaN".
/// `out` needs room for 32 characters; returns the end.
char* write_go_float(char* out, double v) noexcept;

/// A per-target family's head.
struct family_info {
    std::string_view name;
    exposition::kind kind;
    std::string_view help;
};

/// The prober's metric layout (its histogram buckets) and the renderer of
/// every family of continuous mode.
class continuous_metrics {
  public:
    /// `buckets`: upper bounds in seconds, strictly ascending and finite
    /// (a last +Inf is dropped: it is always there). Throws
    /// std::invalid_argument otherwise, naming the value.
    explicit continuous_metrics(std::vector<double> buckets);

    /// A target's series, all zero, its label set rendered.
    target_metrics make_target(const target_spec& spec) const;
    /// Counts a reply in time: histogram, TTL, `received`.
    void observe_reply(target_metrics& m, std::chrono::nanoseconds rtt, std::uint8_t ttl) const;

    /// Appends the per-target families (smokeping_prober's and ours) for
    /// `targets`, in that order. Every counter of every target appears,
    /// zero or not; icmp_errors_total only for the types seen.
    void render_targets(exposition& page, std::span<const target_metrics* const> targets) const;

    /// The per-target families one at a time (a streamed /metrics page):
    /// family_count() of them, in render_targets' order.
    static std::size_t family_count() noexcept;
    /// Family `f`'s name, kind and help (f < family_count()).
    static family_info family(std::size_t f) noexcept;
    /// Appends family `f`'s sample lines for `targets` (no head): what
    /// render_targets puts in that family's samples, byte for byte.
    void render_rows(std::string& out, std::size_t f,
                     std::span<const target_metrics* const> targets) const;

    std::span<const double> bounds() const noexcept { return m_bounds; }

  private:
    void render_histogram(std::string& out, std::span<const target_metrics* const> targets) const;

    std::vector<double> m_bounds;
    /// Per bucket, then +Inf: `le="0.0001"} ` (what follows the label set
    /// minus its closing brace, before the count).
    std::vector<std::string> m_le;
    std::size_t m_le_max = 0; ///< the longest of m_le
};

/// One engine's row in the engine families.
struct engine_metrics_row {
    std::string_view label_set; ///< engine_label_set()
    ie::engine_stats stats;
};

/// Adds `from`'s counters (those render_prober_metrics writes) to `into`:
/// the engines of one (source, tos) on several --engines threads are one
/// series on the page.
void add_engine_stats(ie::engine_stats& into, const ie::engine_stats& from) noexcept;

/// Appends the prober-wide families: smokeping_receive_errors_total
/// (`receive_errors`), icmpengine_exporter_targets, and the
/// icmpengine_exporter_engine_* counters of each engine.
void render_prober_metrics(exposition& page, std::span<const engine_metrics_row> engines,
                           std::uint64_t receive_errors, std::size_t targets);

} // namespace icmpengine_exporter
