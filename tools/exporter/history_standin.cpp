// SPDX-License-Identifier: MIT
// A stand-in for history.cpp (the history ring, another unit of the
// exporter), so that continuous mode links and is tested before it lands:
// it keeps the ring's size and step and records nothing. meson.build
// compiles it only while history.cpp does not exist.
#include "history.hpp"

namespace icmpengine_exporter {

history_ring::history_ring(std::size_t bins, std::chrono::seconds step)
    : m_capacity(bins), m_step(step) {}

void history_ring::record(std::chrono::system_clock::time_point,
                          std::optional<std::chrono::nanoseconds>) {}

std::vector<history_bin> history_ring::bins(std::chrono::system_clock::time_point) const {
    return {};
}

history_bin history_ring::summary(std::chrono::system_clock::time_point now) const {
    history_bin b;
    b.start = now;
    return b;
}

} // namespace icmpengine_exporter
