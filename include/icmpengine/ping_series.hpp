// SPDX-License-Identifier: MIT
// icmpengine::ping_series and icmpengine::ping_fanout: pings sent on a
// schedule to one target or to many, with exact per-target statistics (what
// the original Go engine's Pinger did, and what fping -c / -l / -C do).
#pragma once

#include <icmpengine/engine.hpp>
#include <icmpengine/export.hpp>
#include <icmpengine/ip_address.hpp>
#include <icmpengine/limits.hpp>
#include <icmpengine/ping_result.hpp>
#include <icmpengine/ping_statistics.hpp>
#include <icmpengine/task.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stop_token>
#include <vector>

namespace icmpengine {

/// How one target is pinged.
struct series_options {
    /// Pings to send; 0 sends until stopped (fping -l). With `until_reply`,
    /// the most attempts (fping's default mode: 1 + retries).
    std::uint64_t count = 1;
    /// Ping k is sent at t0 + k * period, where t0 is when ping 0 was sent,
    /// whether or not earlier pings have been answered yet (fping -p).
    /// In an unpaced fan-out t0 is rounded up to a grid shared by all
    /// targets (a tenth of the period, at most 1 ms), so that the targets'
    /// pings leave together and the engine wakes a few times per period,
    /// not once per target. Two pings of a target are never closer than the
    /// period unless the process stalled: pings whose time passed during a
    /// stall are sent at once, to keep the schedule. Must be positive when
    /// more than one ping is sent on a schedule.
    std::chrono::nanoseconds period = std::chrono::seconds(1);
    /// How long each ping waits for its reply (fping -t): positive, at most
    /// max_ping_timeout.
    std::chrono::nanoseconds timeout = std::chrono::seconds(1);
    ping_options ping{};
    /// Single-shot mode (fping without -c, with -r): one ping at a time, the
    /// next as soon as the previous one ended without a reply, at most
    /// `count` in all; the series ends at the first reply. `period` is unused.
    bool until_reply = false;
    /// Single-shot mode only (fping -B; fping ignores it with -c, -C, -l, and
    /// so does the series without `until_reply`): attempt k waits
    /// attempt_timeout(*this, k), `timeout` times backoff^k as fping computes
    /// it. From min_backoff to max_backoff; 1.0 leaves every attempt's
    /// timeout at `timeout`.
    double backoff = 1.0;
    /// Single-shot mode only: fping's credit for a late reply. While the
    /// series runs, a late echo reply from the target (to one of its
    /// attempts that timed out; routed through ping_fanout::on_stray) whose
    /// RTT, from the send of the attempt it answers, is at most the timeout
    /// of the attempt in flight counts as the series' answer: the attempt in
    /// flight is cancelled (engine::cancel), no further attempt is sent, and
    /// the series ends alive with series_result::credited_rtt. If the reply
    /// answers the attempt in flight itself (it came after its deadline,
    /// before the engine reported the timeout) the bound is the next
    /// attempt's timeout, as fping has sent that retry by then; it is not
    /// credited if no attempt is left, and the attempt ends as `timeout`.
    /// What stays honest: see series_result. fping 5.x credits in its
    /// default mode only (with -c, -C and -l it drops a reply older than
    /// -t): this has no effect without `until_reply`.
    bool credit_late_replies = false;
    /// Keep every ping's result in series_result::results. Memory grows with
    /// the number of pings: turn it off for long loops and large fan-outs.
    bool keep_results = true;
    /// Pings whose RTT the statistics keep for per-ping output (fping -C);
    /// see ping_statistics(std::size_t).
    std::size_t rtt_history = 0;
    /// When stop is requested, no further ping is sent; pings in flight end
    /// as they will (reply, timeout, ...) and then the series ends. Request it
    /// on the engine's thread (see engine::sleep_until).
    std::stop_token stop{};
};

/// One target's series: filled in while it runs, complete once `finished`.
struct series_result {
    ip_address target;
    /// results[k] is ping k's result once its fate is known (only with
    /// series_options::keep_results). Ping k is in the vector from the
    /// moment it is sent; once `finished`, every entry is final.
    std::vector<ping_result> results;
    /// Exact statistics: pings cancelled by engine::stop() are left out (their
    /// fate is unknown), so are pings still in flight; duplicates are counted
    /// when the caller routes the engine's stray replies (ping_fanout::on_stray).
    ping_statistics statistics;
    /// Late stray replies attributed to this target (stray_reply::kind::late:
    /// a genuine reply to a ping that had already ended; it does not turn a
    /// timeout into a reply). A credited one is counted here too.
    std::uint64_t late_replies = 0;
    /// With series_options::credit_late_replies: the RTT of the late reply
    /// credited to the series (from the send of the attempt it answers), as
    /// fping prints it ("is alive (602 ms)"). Nothing else changes: the
    /// attempt it answers stays a `timeout` in results and statistics, the
    /// attempt in flight (if another) ends `cancelled` (in results and
    /// statistics.cancelled(), no part of the other statistics), and
    /// statistics.received() does not count the credited reply. fping's own
    /// count for the target is one more reply (and one more ping "sent",
    /// since fping counts a ping when its fate is known): add it when printing
    /// fping's numbers. Unset when no reply was credited.
    std::optional<std::chrono::nanoseconds> credited_rtt{};
    /// Pings handed to the engine (as engine_stats::sent), and of those the
    /// ones that have not ended yet.
    std::uint64_t sent = 0;
    std::uint64_t in_flight = 0;
    /// No ping in flight and none to come.
    bool finished = false;

    /// At least one echo reply arrived in time, or a late one was credited.
    bool alive() const noexcept { return statistics.received() > 0 || credited_rtt.has_value(); }
};

/// One ping's fate, as ping_fanout reports it.
struct ping_event {
    /// The series' index in ping_fanout::series().
    std::size_t target;
    /// The ping's number in its series: 0, 1, 2, ...
    std::uint64_t index;
    const ping_result& result;
    /// The series, with this ping already counted (and `finished` if it
    /// was the series' last).
    const series_result& series;
};

/// A duplicate or late reply attributed to a target.
struct stray_event {
    std::size_t target;
    const stray_reply& reply;
    /// The series, with the stray already counted.
    const series_result& series;
    /// This late reply was credited to the series
    /// (series_options::credit_late_replies; series.credited_rtt is set).
    bool credited = false;
};

struct fanout_options {
    /// Every target's series.
    series_options series{};
    /// The least time between any two echo requests of the fan-out, across
    /// all targets (fping -i; 1 s / rate). Zero: unpaced, as fast as the
    /// engine sends. Each turn goes to the ping that has waited longest:
    /// every target's ping 0 in input order, then later pings by the time
    /// they fell due (ties in target order). The gap is measured from when
    /// the previous request was handed to the engine, so a stall is never
    /// made up for with a burst.
    std::chrono::nanoseconds pace{0};
    /// Called (inside engine::run) as each ping's fate becomes known. See
    /// "Callbacks" below for what an exception does.
    std::function<void(const ping_event&)> on_ping{};
    /// Called (inside engine::run) for each duplicate or late reply
    /// attributed to a target by ping_fanout::on_stray(). See "Callbacks".
    std::function<void(const stray_event&)> on_stray{};
};

/// Callbacks. The one exception policy of every fan-out (ping_fanout,
/// ping_series, ping_all, engine_pool::ping_all): an exception thrown by a
/// callback (on_ping, on_stray) or met while starting a ping stops the
/// fan-out from starting new pings; every ping in flight still ends, is
/// counted and is reported (on_ping is still called); once all have ended,
/// the fan-out's task rethrows the first exception: the one of the lowest
/// target index when several were thrown.

/// Counters over the whole fan-out, for progress displays. The ping
/// counters mean what engine_stats' do, for this fan-out's pings:
/// sent == replies + timeouts + icmp_errors + send_errors + cancelled + in_flight.
struct fanout_progress {
    std::size_t targets = 0;
    std::size_t targets_finished = 0;
    /// Targets with at least one reply so far, or a credited late reply.
    std::size_t targets_alive = 0;
    std::uint64_t sent = 0; ///< pings handed to the engine
    std::uint64_t replies = 0;
    std::uint64_t timeouts = 0;
    std::uint64_t icmp_errors = 0;
    std::uint64_t send_errors = 0;
    std::uint64_t cancelled = 0;
    std::uint64_t in_flight = 0;
    std::uint64_t duplicates = 0;
    std::uint64_t late_replies = 0; ///< credited ones included
    /// Late replies credited (series_options::credit_late_replies).
    std::uint64_t credited = 0;
};

/// Runs one series per target, all at once, on one engine, with an optional
/// global pace. Each address is pinged by one series only (duplicates in
/// `targets` are dropped, keeping the first), so that the engine's stray
/// replies, which carry only their source address, can be attributed: route
/// them here through engine_config::on_stray.
///
///     icmpengine::ping_fanout fan(targets, {.series = {.count = 5, .period = 100ms,
///                                                      .timeout = 1s, .keep_results = false}});
///     icmpengine::engine eng({.on_stray = [&](const auto& s) { fan.on_stray(s); }});
///     eng.run(fan.run(eng));
///     for (const icmpengine::series_result& s : fan.series())
///         std::cout << s.target.to_string() << " " << s.statistics.received() << "\n";
///
/// The object must outlive run() and every engine routing strays to it.
/// series() and progress() may be read at any time, also from inside run()
/// (interim summaries).
class ICMPENGINE_API ping_fanout {
  public:
    /// Throws std::invalid_argument naming the value for a timeout or a
    /// payload size out of range (limits.hpp), a period that is not positive
    /// (when more than one ping is sent on a schedule), a backoff outside
    /// [min_backoff, max_backoff] or a negative pace.
    explicit ping_fanout(std::span<const ip_address> targets, fanout_options options = {});
    ~ping_fanout();
    ping_fanout(const ping_fanout&) = delete;
    ping_fanout& operator=(const ping_fanout&) = delete;

    /// Runs every series to its end on `eng`: all count pings sent and
    /// ended, or (after request_stop() or series_options::stop) no more
    /// sent and those in flight ended, or (after engine::stop()) no more
    /// sent and those in flight cancelled. Runs once: a second call throws
    /// std::logic_error.
    /// An exception from a callback: see "Callbacks".
    task<void> run(engine& eng);

    /// Attributes a stray reply to the target it came from; for
    /// engine_config::on_stray. Replies from addresses not in the fan-out are
    /// ignored.
    void on_stray(const stray_reply& reply);

    /// No further pings are sent; the series end when their pings in flight
    /// have. Call on the engine's thread. Idempotent.
    void request_stop();
    bool stop_requested() const noexcept;

    /// One entry per distinct target, in first-seen order.
    std::span<const series_result> series() const noexcept;
    const fanout_progress& progress() const noexcept;
    const fanout_options& options() const noexcept;

  private:
    struct state;
    std::unique_ptr<state> m_state;
};

/// fping's range for series_options::backoff (MIN_BACKOFF_FACTOR,
/// MAX_BACKOFF_FACTOR).
inline constexpr double min_backoff = 1.0;
inline constexpr double max_backoff = 5.0;

/// The timeout of attempt k (0, 1, ...) of a single-shot series: with
/// `until_reply` and a backoff other than 1.0, fping's arithmetic exactly:
/// t(0) = timeout and t(k+1) = t(k) * backoff computed in single precision
/// (fping's `float backoff`) and truncated to whole nanoseconds, capped at
/// max_ping_timeout. Otherwise `timeout` for every attempt. With fping's
/// defaults (500 ms, 1.5) the attempts wait 500 ms, 750 ms,
/// 1,124,999,936 ns and 1,687,499,904 ns: 4,062,499,840 ns for 1 + 3 tries.
/// Linear in k (until the cap).
ICMPENGINE_API std::chrono::nanoseconds attempt_timeout(const series_options& options,
                                                        std::uint64_t attempt) noexcept;

/// One series to one target (the original engine's Pinger): ping k is sent at
/// t0 + k * period without waiting for earlier replies; returns every ping's
/// result in send order and their exact statistics.
///
///     auto s = eng.run(icmpengine::ping_series(eng, target, {.count = 10,
///                                                            .period = 100ms,
///                                                            .timeout = 1s}));
///     // s.results[0..9], s.statistics.rtt_mean(), s.statistics.rtt_stddev_sample() ...
///
/// A lone series cannot see duplicate and late replies (the engine reports
/// them only through engine_config::on_stray): use a ping_fanout of one
/// target for those. Throws as ping_fanout's constructor does, at the call.
ICMPENGINE_API task<series_result> ping_series(engine& eng, ip_address target,
                                               series_options options = {});

} // namespace icmpengine
