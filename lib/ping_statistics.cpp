// SPDX-License-Identifier: MIT
#include <icmpengine/ping_statistics.hpp>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace icmpengine {

ping_statistics::ping_statistics(std::size_t rtt_history_capacity) noexcept
    : m_history_capacity(rtt_history_capacity) {}

void ping_statistics::add(std::uint64_t index, const ping_result& result) {
    switch (result.status) {
    case ping_status::reply:
        if (result.rtt < std::chrono::nanoseconds::zero())
            throw std::invalid_argument("ping_statistics::add: reply to ping " +
                                        std::to_string(index) + " has a negative RTT (" +
                                        std::to_string(result.rtt.count()) + " ns)");
        note_index(index);
        ++m_received;
        if (index < m_replied_end)
            ++m_out_of_order;
        else
            m_replied_end = index + 1;
        add_rtt(result.rtt);
        if (index < m_history.size())
            m_history[static_cast<std::size_t>(index)] = result.rtt;
        return;
    case ping_status::timeout:
        note_index(index);
        ++m_timeouts;
        return;
    case ping_status::unreachable:
    case ping_status::time_exceeded:
    case ping_status::packet_too_big:
    case ping_status::parameter_problem:
        note_index(index);
        ++m_icmp_errors;
        return;
    case ping_status::send_error:
        note_index(index);
        ++m_send_errors;
        return;
    case ping_status::cancelled:
        // Its fate is unknown: it was neither answered nor lost.
        ++m_cancelled;
        return;
    }
    throw std::invalid_argument("ping_statistics::add: ping " + std::to_string(index) +
                                " has an invalid status (" +
                                std::to_string(static_cast<int>(result.status)) + ")");
}

// Grows the history to cover `index` (within the capacity). Called before any
// counter changes so that an allocation failure leaves the object unchanged.
void ping_statistics::note_index(std::uint64_t index) {
    if (index < m_history_capacity && index >= m_history.size())
        m_history.resize(static_cast<std::size_t>(index) + 1);
}

// Welford's update: the running mean moves by delta / n, and M2 grows by the
// product of the deviations from the old and the new mean. It runs on the
// RTT minus the first reply's RTT: at 10^15 ns a double's ulp is 0.125 ns, so
// a mean kept in absolute terms would be off by that much and inflate the
// variance by its square, while the shifted values stay small and exact.
// (Both operands are non-negative, so the int64 difference cannot overflow.)
void ping_statistics::add_rtt(std::chrono::nanoseconds rtt) noexcept {
    if (m_received == 1) {
        m_min = m_max = rtt;
        m_shift = rtt;
        m_mean = 0.0;
        m_m2 = 0.0;
        return;
    }
    m_min = std::min(m_min, rtt);
    m_max = std::max(m_max, rtt);
    const auto x = static_cast<double>((rtt - m_shift).count());
    const double delta = x - m_mean;
    m_mean += delta / static_cast<double>(m_received);
    m_m2 += delta * (x - m_mean);
}

void ping_statistics::add_duplicate() noexcept {
    ++m_duplicates;
}

void ping_statistics::merge(const ping_statistics& other) {
    // Resize first: if it throws, nothing has changed yet.
    if (const std::size_t wanted = std::min(m_history_capacity, other.m_history.size());
        wanted > m_history.size())
        m_history.resize(wanted);
    const std::size_t common = std::min(m_history.size(), other.m_history.size());
    for (std::size_t i = 0; i < common; ++i)
        if (!m_history[i] && other.m_history[i])
            m_history[i] = other.m_history[i];

    if (other.m_received > 0) {
        if (m_received == 0) {
            m_shift = other.m_shift;
            m_mean = other.m_mean;
            m_m2 = other.m_m2;
            m_min = other.m_min;
            m_max = other.m_max;
        } else {
            // Chan, Golub, LeVeque: the combined M2 is both M2s plus the
            // spread between the two means, weighted by na * nb / n.
            const auto na = static_cast<double>(m_received);
            const auto nb = static_cast<double>(other.m_received);
            const double n = na + nb;
            const double other_mean =
                other.m_mean + static_cast<double>((other.m_shift - m_shift).count());
            const double delta = other_mean - m_mean;
            m_mean += delta * (nb / n);
            m_m2 += other.m_m2 + delta * delta * (na * (nb / n));
            m_min = std::min(m_min, other.m_min);
            m_max = std::max(m_max, other.m_max);
        }
    }
    m_received += other.m_received;
    m_timeouts += other.m_timeouts;
    m_icmp_errors += other.m_icmp_errors;
    m_send_errors += other.m_send_errors;
    m_cancelled += other.m_cancelled;
    m_duplicates += other.m_duplicates;
    m_out_of_order += other.m_out_of_order;
    m_replied_end = std::max(m_replied_end, other.m_replied_end);
}

double ping_statistics::loss_fraction() const noexcept {
    const std::uint64_t known = resolved();
    if (known == 0)
        return 0.0;
    return static_cast<double>(known - m_received) / static_cast<double>(known);
}

std::optional<std::chrono::nanoseconds> ping_statistics::rtt_min() const noexcept {
    if (m_received == 0)
        return std::nullopt;
    return m_min;
}

std::optional<std::chrono::nanoseconds> ping_statistics::rtt_max() const noexcept {
    if (m_received == 0)
        return std::nullopt;
    return m_max;
}

std::optional<ping_statistics::rtt_duration> ping_statistics::rtt_mean() const noexcept {
    if (m_received == 0)
        return std::nullopt;
    return rtt_duration{static_cast<double>(m_shift.count()) + m_mean};
}

// M2 is a sum of non-negative terms, but rounding can leave it a hair below
// zero; clamp so that sqrt never sees a negative.
std::optional<ping_statistics::rtt_duration>
ping_statistics::rtt_stddev_population() const noexcept {
    if (m_received == 0)
        return std::nullopt;
    return rtt_duration{std::sqrt(std::max(0.0, m_m2) / static_cast<double>(m_received))};
}

std::optional<ping_statistics::rtt_duration> ping_statistics::rtt_stddev_sample() const noexcept {
    if (m_received < 2)
        return std::nullopt;
    return rtt_duration{std::sqrt(std::max(0.0, m_m2) / static_cast<double>(m_received - 1))};
}

} // namespace icmpengine
