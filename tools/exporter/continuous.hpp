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
#include <functional>
#include <memory>
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
