// SPDX-License-Identifier: MIT
// icmpengine::ping_statistics: exact per-target counters and RTT statistics.
#pragma once

#include <icmpengine/export.hpp>
#include <icmpengine/ping_result.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace icmpengine {

/// Statistics over one series of pings (normally one target), fed with each
/// ping's outcome in the order outcomes become known.
///
///     icmpengine::ping_statistics stats;
///     for (std::uint64_t i = 0; i < 4; ++i)
///         stats.add(i, co_await eng.ping(target, 1s));
///     // stats.resolved(), stats.received(), stats.loss_fraction(), stats.rtt_mean()...
///
/// Counting rules:
/// - resolved() counts pings whose fate is known: reply, timeout, ICMP error
///   or send error. A `cancelled` ping has no known fate and is left out of
///   every statistic (it is only counted in cancelled()). (How many pings
///   were sent is the caller's count: series_result::sent.)
/// - loss_fraction() is (resolved - received) / resolved, so timeouts, ICMP
///   errors and send errors count as losses, as in fping's "%loss".
/// - RTT statistics are over replies only: not over ICMP errors, not over
///   duplicates (add_duplicate() carries no RTT).
///
/// The mean and variance are kept with Welford's online algorithm (Knuth,
/// TAOCP vol. 2, 4.2.2) on the RTTs relative to the first reply's, which
/// stays accurate where the textbook sum-of-squares formula cancels
/// catastrophically (RTTs of days with nanosecond spread); min and max are
/// exact.
///
/// Which standard deviation the classic tools print:
/// - iputils ping's "mdev" is the population standard deviation,
///   sqrt(sum(x^2)/n - mean^2): use rtt_stddev_population(). (iputils also
///   folds the RTTs of duplicate replies into it; this class does not.)
/// - fping prints min/avg/max only, no standard deviation.
/// rtt_stddev_sample() (divisor n - 1) is there for estimating the spread of
/// the underlying RTT distribution from a sample.
class ICMPENGINE_API ping_statistics {
  public:
    /// RTTs that are averages: fractional nanoseconds.
    using rtt_duration = std::chrono::duration<double, std::nano>;

    /// Keeps no per-ping history.
    ping_statistics() noexcept = default;

    /// Keeps the RTT of each of the pings with index below
    /// `rtt_history_capacity` for per-ping output such as fping -C. Memory
    /// grows with the highest index seen, never beyond the capacity.
    explicit ping_statistics(std::size_t rtt_history_capacity) noexcept;

    /// Records the outcome of ping number `index` (0, 1, 2, ... in send
    /// order). Each index is to be added once; further replies to the same
    /// ping go to add_duplicate(). Throws std::invalid_argument naming the
    /// value if a reply carries a negative RTT (ping_result::rtt is
    /// documented as non-negative).
    void add(std::uint64_t index, const ping_result& result);

    /// Records one duplicate reply (a further reply to a ping that already
    /// had one). Duplicates are neither received nor part of the RTT stats.
    void add_duplicate() noexcept;

    /// Adds everything recorded in `other` to this, as if this had seen
    /// both series (the parallel variance combination of Chan, Golub and
    /// LeVeque, 1979). Counters add up, including out_of_order(): how the
    /// two series interleaved in time is not known, so replies of one that
    /// came late relative to the other are not counted. The per-ping
    /// history keeps this object's capacity; an index that has an RTT in
    /// `other` but not here takes other's. Merging statistics of different
    /// targets gives an aggregate like fping -s's global numbers.
    void merge(const ping_statistics& other);

    /// Pings whose fate is known: received + timeouts + icmp_errors +
    /// send_errors.
    std::uint64_t resolved() const noexcept {
        return m_received + m_timeouts + m_icmp_errors + m_send_errors;
    }
    /// Pings answered by an echo reply.
    std::uint64_t received() const noexcept { return m_received; }
    /// Pings that timed out (as engine_stats::timeouts).
    std::uint64_t timeouts() const noexcept { return m_timeouts; }
    /// Pings answered by destination unreachable, time exceeded, packet too
    /// big or parameter problem.
    std::uint64_t icmp_errors() const noexcept { return m_icmp_errors; }
    /// Pings that could not be sent.
    std::uint64_t send_errors() const noexcept { return m_send_errors; }
    /// Pings cancelled before their fate was known; not part of resolved().
    std::uint64_t cancelled() const noexcept { return m_cancelled; }
    /// Duplicate replies (add_duplicate()).
    std::uint64_t duplicates() const noexcept { return m_duplicates; }
    /// Replies whose index is lower than the highest index replied before.
    std::uint64_t out_of_order() const noexcept { return m_out_of_order; }

    /// (resolved - received) / resolved, in [0, 1]; 0 when nothing was
    /// resolved (as fping prints "0/0/0%").
    double loss_fraction() const noexcept;

    /// Shortest and longest reply RTT; std::nullopt without replies.
    std::optional<std::chrono::nanoseconds> rtt_min() const noexcept;
    std::optional<std::chrono::nanoseconds> rtt_max() const noexcept;
    /// Mean reply RTT; std::nullopt without replies.
    std::optional<rtt_duration> rtt_mean() const noexcept;
    /// Population standard deviation (divisor n; iputils "mdev"): 0 for one
    /// reply, std::nullopt without replies.
    std::optional<rtt_duration> rtt_stddev_population() const noexcept;
    /// Sample standard deviation (divisor n - 1): std::nullopt with fewer
    /// than two replies, where it is undefined.
    std::optional<rtt_duration> rtt_stddev_sample() const noexcept;

    /// The capacity given at construction (0: no history kept).
    std::size_t rtt_history_capacity() const noexcept { return m_history_capacity; }
    /// Entry i is the RTT of ping i if it was answered by a reply, and
    /// std::nullopt if it was not (lost, ICMP error, send error, cancelled)
    /// or its fate is not known yet. The size is one more than the highest
    /// index added with a known fate (not cancelled), at most
    /// rtt_history_capacity(); pings beyond the size have no RTT recorded.
    std::span<const std::optional<std::chrono::nanoseconds>> rtt_history() const noexcept {
        return m_history;
    }

  private:
    void note_index(std::uint64_t index);
    void add_rtt(std::chrono::nanoseconds rtt) noexcept;

    std::uint64_t m_received = 0;
    std::uint64_t m_timeouts = 0;
    std::uint64_t m_icmp_errors = 0;
    std::uint64_t m_send_errors = 0;
    std::uint64_t m_cancelled = 0;
    std::uint64_t m_duplicates = 0;
    std::uint64_t m_out_of_order = 0;
    /// 1 + the highest index that got a reply; 0 before the first reply.
    std::uint64_t m_replied_end = 0;

    // Welford state over the m_received reply RTTs, in nanoseconds relative
    // to m_shift (the first reply's RTT; see add_rtt).
    std::chrono::nanoseconds m_shift{0};
    double m_mean = 0.0; ///< mean of rtt - m_shift
    double m_m2 = 0.0;   ///< sum of squared deviations from the mean
    std::chrono::nanoseconds m_min{0};
    std::chrono::nanoseconds m_max{0};

    std::size_t m_history_capacity = 0;
    std::vector<std::optional<std::chrono::nanoseconds>> m_history;
};

} // namespace icmpengine
