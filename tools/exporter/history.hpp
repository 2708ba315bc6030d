// SPDX-License-Identifier: MIT
// What the status page draws: per target, a bounded ring of time bins
// (by default 60 bins of one minute: the last hour), each with the pings
// sent and answered and a summary of their RTTs.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace icmpengine_exporter {

/// One bin: the pings whose fate became known in [start, start + step).
struct history_bin {
    std::chrono::system_clock::time_point start{};
    std::uint32_t sent = 0;     ///< pings that ended (reply or not)
    std::uint32_t received = 0; ///< of those, answered in time
    /// RTT quantiles of the received ones: min, p10, p25, median, p75, p90,
    /// max. Meaningless when received == 0.
    std::array<std::chrono::nanoseconds, 7> rtt{};
};

/// Bounded: memory is fixed at construction (bins * a few bytes plus the
/// open bin's summary), whatever the ping rate. Quantiles are exact to
/// within the resolution stated in history.cpp.
class history_ring {
  public:
    explicit history_ring(std::size_t bins = 60,
                          std::chrono::seconds step = std::chrono::seconds(60));

    /// One ping's fate, at `when`: its RTT if answered in time, nullopt if
    /// not (timeout, ICMP error, send error). Times must not go backwards
    /// by more than a step; a bin with no pings is a gap.
    void record(std::chrono::system_clock::time_point when,
                std::optional<std::chrono::nanoseconds> rtt);

    /// The closed bins, oldest first, plus the open one last; gaps (steps
    /// without pings) as bins with sent == 0. At most `bins` entries, none
    /// older than now - bins * step.
    std::vector<history_bin> bins(std::chrono::system_clock::time_point now) const;

    /// Over the same window: pings ended, answered, and RTT quantiles
    /// (the same seven) over every answered ping in the window.
    history_bin summary(std::chrono::system_clock::time_point now) const;

    std::chrono::seconds step() const noexcept { return m_step; }
    std::size_t capacity() const noexcept { return m_capacity; }

  private:
    struct coded_bin; // a bin with its RTTs as codes (history.cpp)
    /// Bins are numbered by (time since the epoch) / step.
    std::int64_t index_of(std::chrono::system_clock::time_point t) const;
    std::size_t slot_of(std::int64_t index) const;
    void close_open_bin();
    void add_to_histogram(std::uint16_t code);
    coded_bin open_coded() const;
    coded_bin closed_coded(std::int64_t index) const;
    /// Calls f(coded_bin) for each bin of the window that ends at `now`.
    template <class F>
    void for_each_bin(std::chrono::system_clock::time_point now, F&& f) const;

    static constexpr std::int64_t no_bin = INT64_MIN;
    static constexpr std::size_t histogram_size = 128;

    std::size_t m_capacity;
    std::chrono::seconds m_step;
    /// The capacity - 1 closed bins, 15 bytes each (layout: history.cpp).
    std::vector<std::byte> m_storage;
    std::int64_t m_first = no_bin; ///< the first bin ever recorded
    std::int64_t m_open = no_bin;  ///< the open bin
    std::uint32_t m_open_sent = 0;
    std::uint32_t m_open_received = 0;
    std::uint16_t m_open_min = 0; ///< RTT codes (history.cpp), 0 = none yet
    std::uint16_t m_open_max = 0;
    std::int16_t m_histogram_base = 0; ///< the bucket m_histogram[0] counts
    std::array<std::uint8_t, histogram_size> m_histogram{};
};

} // namespace icmpengine_exporter
