// SPDX-License-Identifier: MIT
// Continuous mode (smokeping_prober's): every target pinged every
// interval, for ever, its results kept as smokeping_prober's metrics and
// ours, and in its history ring for the status page.
#pragma once

#include "exposition.hpp"
#include "status_page.hpp"
#include "target.hpp"

#include <icmpengine/engine.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace icmpengine_exporter {

struct continuous_options {
    /// Histogram upper bounds in seconds, ascending (--buckets).
    std::vector<double> buckets;
    /// Each target's history ring (status page); 0 bins = none kept.
    std::size_t history_bins = 60;
    std::chrono::seconds history_step{60};
    /// How long a ping waits for its reply before it counts as a timeout
    /// (our addition): 0 = the target's interval. A reply after that is
    /// a late reply (icmpengine_exporter_late_replies_total), not observed
    /// in the histogram.
    std::chrono::nanoseconds timeout{0};
    /// Settings every engine starts from (queue depth, buffers, mode); the
    /// prober sets dscp, source and on_stray itself.
    ie::engine_config engine{};
};

/// The prober-wide counters of one or more probers (each --engines thread
/// has one), summed so that each is one series on the page.
struct prober_totals {
    std::uint64_t receive_errors = 0; ///< smokeping_receive_errors_total
    std::size_t targets = 0;          ///< icmpengine_exporter_targets
    /// Per engine_label_set(), in the order first seen.
    std::vector<std::pair<std::string, ie::engine_stats>> engines;
};
/// Appends the prober-wide families of `totals` (render_prober_metrics).
void render_prober_totals(exposition& page, const prober_totals& totals);

/// Owns one engine per (source, tos) the targets use, each driven from
/// `executor` (icmpengine/boost_asio.hpp's driver): everything runs on the
/// thread that runs the executor's io_context, which must be the only one
/// running it. Not thread-safe: call it on that thread.
class continuous_prober {
  public:
    continuous_prober(boost::asio::any_io_executor executor, continuous_options options);
    /// Stops: as stop(), then releases the engines.
    ~continuous_prober();
    continuous_prober(const continuous_prober&) = delete;
    continuous_prober& operator=(const continuous_prober&) = delete;

    /// Replaces the target set (start-up, SIGHUP, re-resolution, shards).
    /// A target whose identity (target_spec::key) stays keeps its counters
    /// and history, even if its interval or size changed; a new one starts
    /// within one interval; a removed one stops being pinged at once and
    /// leaves the exposition (its pings in flight are cancelled). Each
    /// target's pings are spread over its interval (targets do not all send
    /// in the same millisecond).
    void set_targets(std::vector<target_spec> targets);

    /// Appends smokeping_prober's families (smokeping_requests_total,
    /// smokeping_response_duration_seconds, smokeping_response_ttl,
    /// smokeping_response_duplicates_total, smokeping_receive_errors_total,
    /// smokeping_send_errors_total) and ours (icmpengine_exporter_*) to
    /// `page`.
    void render(exposition& page) const;

    /// The same page a piece at a time, for a /metrics page streamed in
    /// bounded chunks (metrics_stream.hpp): render() is, per family,
    /// render_family_head() and render_family_rows() over every target,
    /// then render_prober_families().
    /// Bumped by every set_targets(): a target index names the same target
    /// only while the generation stays.
    std::uint64_t generation() const noexcept;
    /// The per-target families (continuous_metrics::family_count()).
    static std::size_t family_count() noexcept;
    /// Appends family `f`'s `# HELP` and `# TYPE` lines.
    static void render_family_head(std::string& out, std::size_t f);
    /// Appends family `f`'s sample lines for the targets [first, first +
    /// count) in set_targets order (those that exist).
    void render_family_rows(std::string& out, std::size_t f, std::size_t first,
                            std::size_t count) const;
    /// Appends the prober-wide families (smokeping_receive_errors_total,
    /// icmpengine_exporter_targets, the engines' counters) to `page`:
    /// render_prober_totals() of this prober's add_totals().
    void render_prober_families(exposition& page) const;
    /// Adds this prober's prober-wide counters to `totals`.
    void add_totals(prober_totals& totals) const;

    /// Calls `f` once per target, in set_targets order.
    void visit(const std::function<void(const target_view&)>& f) const;

    std::size_t size() const noexcept;

    /// SIGTERM: no further pings; pings in flight are cancelled
    /// (engine::stop()) and counted as cancelled, nothing else.
    void stop();

    /// For tests and diagnostics: called after each echo request is handed
    /// to an engine, with the target's index (set_targets order) and the
    /// scheduler's time of the send. Two sends of a target are never closer
    /// than its interval minus 1 ms by this clock. Empty to remove.
    using send_observer =
        std::function<void(std::size_t index, std::chrono::steady_clock::time_point when)>;
    void set_send_observer(send_observer f);

  private:
    struct impl;
    std::unique_ptr<impl> m_impl;
};

} // namespace icmpengine_exporter
