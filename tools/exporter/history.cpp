// SPDX-License-Identifier: MIT
// history_ring: a fixed-size ring of time bins per target.
//
// RTT codes. Every RTT is kept as a 12-bit code on a log scale: code 0 =
// none, code c in 1..4095 = 100 ns * e^((c - 1) * s), s = ln(1e10) / 4094,
// so codes span 100 ns .. 1000 s (clamped outside) and a decoded RTT is
// within 0.29 % of the one encoded (half a step: e^(s/2) - 1).
//
// A closed bin is 15 bytes: sent and received as little-endian uint16
// (saturating at 65,535 pings per bin: one per 0.92 ms at the default
// one-minute step), then its seven quantile codes (min, p10, p25, median,
// p75, p90, max), 12 bits each, packed two per three bytes. The ring keeps
// capacity - 1 of them; the open bin is the last of `capacity` entries.
//
// The open bin keeps its pings' count, their exact minimum and maximum
// codes, and a histogram of 128 uint8 counters over buckets of 8 codes
// (a bucket is 4.6 % wide; 128 of them span 317x: say 0.3 ms to 95 ms).
// The window follows the data: it starts 32 buckets below the first RTT,
// slides down when a lower one comes if the highest non-empty bucket
// allows, and slides up for a higher one, merging the lowest buckets into
// its first. A counter about to pass 255 halves them all (odd ones rounded up and
// down in turn).
// When the bin closes, the quantile of rank q is the bucket holding the
// sample of rank floor(q * (n - 1)) (0-based, n = the histogram's count),
// taken at the bucket's fifth code and clamped to [min, max]. Resolution:
// while the bin's RTTs span at most 317x and no counter halved (fewer than
// 256 pings per bucket), each quantile is within 2.6 % of the exact one of
// the same rank (4.5 codes), min and max within 0.29 %; past that the low
// quantiles lose precision first (the high ones and the maximum matter more).
//
// summary() over the window: counts are sums (exact, up to the saturation
// above); min and max are the extremes of the bins'; the five inner
// quantiles come from a mixture of the bins' distributions: each answered
// bin is taken as a distribution whose CDF is linear in log(RTT) between
// its seven quantiles (10 % of its pings between min and p10, 15 % between
// p10 and p25, ...), weighted by its answered pings, and the window's
// quantile q is where the mixture's CDF reaches q (a walk over the codes
// the window spans: O(bins + span)). Exact for one bin's quantile points,
// approximate between them.
//
// Time: bin i covers [i * step, (i + 1) * step) since the epoch. A record
// for a later bin closes the open one; bins skipped meanwhile are gaps
// (sent == 0). A record for an earlier bin counts in the open bin if it is
// at most one step older than the open bin's start (a late result of the
// ping that straddled the boundary), and is dropped otherwise.
#include "history.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

namespace icmpengine_exporter {

namespace {

constexpr double code_floor_ns = 100.0;
constexpr int code_max = 4095;
constexpr double code_step = 23.025850929940457 / 4094.0; // ln(1e10) / 4094
constexpr std::size_t packed_bin_size = 15;
constexpr int codes_per_bucket = 8;
constexpr int bucket_count = (code_max + codes_per_bucket - 1) / codes_per_bucket; // 512
constexpr std::array<double, 7> quantile_ranks{0.0, 0.10, 0.25, 0.50, 0.75, 0.90, 1.0};

std::uint16_t encode_rtt(std::chrono::nanoseconds rtt) {
    const double ns = static_cast<double>(rtt.count());
    if (ns <= code_floor_ns)
        return 1;
    const double code = 1.0 + std::round(std::log(ns / code_floor_ns) / code_step);
    return static_cast<std::uint16_t>(std::min<double>(code, code_max));
}

std::chrono::nanoseconds decode_rtt(double code) {
    if (code <= 0.0)
        return std::chrono::nanoseconds(0);
    return std::chrono::nanoseconds(
        std::llround(code_floor_ns * std::exp((code - 1.0) * code_step)));
}

int bucket_of(std::uint16_t code) {
    return (code - 1) / codes_per_bucket;
}

// The code a bucket's samples are reported as: its fifth of eight.
std::uint16_t bucket_code(int bucket) {
    return static_cast<std::uint16_t>(bucket * codes_per_bucket + 5);
}

std::uint16_t saturate16(std::uint32_t v) {
    return static_cast<std::uint16_t>(std::min<std::uint32_t>(v, 65535));
}

// Halves every counter; odd ones round up and down in turn, so that the
// total halves too (rounding all up would favour the sparse buckets).
void halve(std::uint32_t* counts, std::size_t n) {
    std::uint32_t up = 1;
    for (std::size_t i = 0; i < n; ++i) {
        if (counts[i] % 2 == 1)
            up ^= 1;
        counts[i] = (counts[i] + up) / 2;
    }
}

} // namespace

struct history_ring::coded_bin {
    std::int64_t index = 0;
    std::uint32_t sent = 0;
    std::uint32_t received = 0;
    std::array<std::uint16_t, 7> codes{};

    void pack(std::byte* p) const {
        const std::uint16_t s = saturate16(sent);
        const std::uint16_t r = std::min(saturate16(received), s);
        std::array<std::uint8_t, packed_bin_size> b{};
        b[0] = static_cast<std::uint8_t>(s);
        b[1] = static_cast<std::uint8_t>(s >> 8);
        b[2] = static_cast<std::uint8_t>(r);
        b[3] = static_cast<std::uint8_t>(r >> 8);
        for (std::size_t i = 0; i < codes.size(); ++i) {
            const std::size_t bit = 32 + 12 * i; // from the start of the bin
            const unsigned v = static_cast<unsigned>(codes[i]) << (bit % 8);
            b[bit / 8] |= static_cast<std::uint8_t>(v);
            b[bit / 8 + 1] |= static_cast<std::uint8_t>(v >> 8);
        }
        std::memcpy(p, b.data(), b.size());
    }

    static coded_bin unpack(const std::byte* p, std::int64_t index) {
        std::array<std::uint8_t, packed_bin_size + 1> b{};
        std::memcpy(b.data(), p, packed_bin_size);
        coded_bin c;
        c.index = index;
        c.sent = static_cast<std::uint32_t>(b[0] | (b[1] << 8));
        c.received = static_cast<std::uint32_t>(b[2] | (b[3] << 8));
        for (std::size_t i = 0; i < c.codes.size(); ++i) {
            const std::size_t bit = 32 + 12 * i;
            const unsigned v = (b[bit / 8] | (b[bit / 8 + 1] << 8)) >> (bit % 8);
            c.codes[i] = static_cast<std::uint16_t>(v & 0xfff);
        }
        return c;
    }
};

history_ring::history_ring(std::size_t bins, std::chrono::seconds step)
    : m_capacity(bins), m_step(step) {
    if (bins == 0 || bins > 100000)
        throw std::invalid_argument("history_ring: bins must be 1..100000, not " +
                                    std::to_string(bins));
    if (step.count() <= 0)
        throw std::invalid_argument("history_ring: step must be positive, not " +
                                    std::to_string(step.count()) + "s");
    m_storage.resize((bins - 1) * packed_bin_size);
}

std::int64_t history_ring::index_of(std::chrono::system_clock::time_point t) const {
    const auto since = t.time_since_epoch();
    const auto step = std::chrono::duration_cast<std::chrono::system_clock::duration>(m_step);
    auto q = since / step;
    if (since % step < std::chrono::system_clock::duration::zero())
        --q; // floor, for times before the epoch
    return static_cast<std::int64_t>(q);
}

std::size_t history_ring::slot_of(std::int64_t index) const {
    const auto n = static_cast<std::int64_t>(m_capacity - 1);
    return static_cast<std::size_t>(((index % n) + n) % n);
}

void history_ring::record(std::chrono::system_clock::time_point when,
                          std::optional<std::chrono::nanoseconds> rtt) {
    const std::int64_t index = index_of(when);
    if (m_open == no_bin) {
        m_first = m_open = index;
    } else if (index > m_open) {
        close_open_bin();
        const auto closed = static_cast<std::int64_t>(m_capacity - 1);
        for (std::int64_t gap = std::max(m_open + 1, index - closed); gap < index; ++gap)
            coded_bin{gap}.pack(m_storage.data() + slot_of(gap) * packed_bin_size);
        m_open = index;
        m_open_sent = m_open_received = 0;
        m_open_min = m_open_max = 0;
        m_histogram.fill(0);
    } else if (index < m_open) {
        const std::chrono::system_clock::time_point open_start(
            std::chrono::duration_cast<std::chrono::system_clock::duration>(m_step * m_open));
        if (open_start - when > m_step)
            return; // older than the open bin by more than a step: dropped
    }
    if (m_open_sent != std::numeric_limits<std::uint32_t>::max())
        ++m_open_sent;
    if (!rtt || m_open_received == m_open_sent)
        return;
    const std::uint16_t code = encode_rtt(*rtt);
    add_to_histogram(code);
    m_open_min = m_open_received == 0 ? code : std::min(m_open_min, code);
    m_open_max = std::max(m_open_max, code);
    ++m_open_received;
}

void history_ring::add_to_histogram(std::uint16_t code) {
    constexpr int size = static_cast<int>(histogram_size);
    int bucket = bucket_of(code);
    int base = m_histogram_base;
    if (m_open_received > 0 && bucket >= base && bucket < base + size) {
        std::uint8_t& count = m_histogram[static_cast<std::size_t>(bucket - base)];
        if (count < 255) { // the common case: once per answered ping
            ++count;
            return;
        }
    }
    std::array<std::uint32_t, histogram_size> counts{};
    if (m_open_received == 0)
        base = std::clamp(bucket - 32, 0, bucket_count - size);
    else
        std::copy(m_histogram.begin(), m_histogram.end(), counts.begin());
    if (bucket < base) {
        // Slide down as far as the highest non-empty bucket allows.
        int highest = size - 1;
        while (highest > 0 && counts[static_cast<std::size_t>(highest)] == 0)
            --highest;
        const int new_base = std::max(bucket, base + highest - (size - 1));
        const int shift = base - new_base;
        for (int i = size - 1; i >= 0; --i)
            counts[static_cast<std::size_t>(i)] =
                i >= shift ? counts[static_cast<std::size_t>(i - shift)] : 0;
        base = new_base;
        bucket = std::max(bucket, base); // below the window: counted in its first bucket
    } else if (bucket > base + size - 1) {
        // Slide up; what falls off the bottom merges into the first bucket.
        const int shift = bucket - (size - 1) - base;
        std::uint32_t merged = 0;
        for (int i = 0; i < size && i <= shift; ++i)
            merged += counts[static_cast<std::size_t>(i)];
        for (int i = 0; i < size; ++i)
            counts[static_cast<std::size_t>(i)] =
                i + shift < size ? counts[static_cast<std::size_t>(i + shift)] : 0;
        counts[0] = merged;
        base += shift;
    }
    std::uint32_t& slot = counts[static_cast<std::size_t>(bucket - base)];
    ++slot;
    while (*std::max_element(counts.begin(), counts.end()) > 255)
        halve(counts.data(), counts.size());
    std::copy(counts.begin(), counts.end(), m_histogram.begin());
    m_histogram_base = static_cast<std::int16_t>(base);
}

history_ring::coded_bin history_ring::open_coded() const {
    coded_bin c;
    c.index = m_open;
    c.sent = m_open_sent;
    c.received = m_open_received;
    if (m_open_received == 0)
        return c;
    std::uint32_t n = 0;
    for (const std::uint8_t v : m_histogram)
        n += v;
    c.codes.front() = m_open_min;
    c.codes.back() = m_open_max;
    for (std::size_t q = 1; q + 1 < quantile_ranks.size(); ++q) {
        const auto rank = static_cast<std::uint32_t>(std::floor(quantile_ranks[q] * (n - 1)));
        std::uint32_t seen = 0;
        std::size_t i = 0;
        while (i + 1 < m_histogram.size() && seen + m_histogram[i] <= rank)
            seen += m_histogram[i++];
        const std::uint16_t code = bucket_code(m_histogram_base + static_cast<int>(i));
        c.codes[q] = std::clamp(code, m_open_min, m_open_max);
    }
    return c;
}

void history_ring::close_open_bin() {
    if (m_capacity > 1)
        open_coded().pack(m_storage.data() + slot_of(m_open) * packed_bin_size);
}

history_ring::coded_bin history_ring::closed_coded(std::int64_t index) const {
    return coded_bin::unpack(m_storage.data() + slot_of(index) * packed_bin_size, index);
}

template <class F>
void history_ring::for_each_bin(std::chrono::system_clock::time_point now, F&& f) const {
    if (m_open == no_bin)
        return;
    const std::int64_t end = std::max(index_of(now), m_open);
    const std::int64_t begin = std::max(m_first, end - static_cast<std::int64_t>(m_capacity) + 1);
    for (std::int64_t i = begin; i <= end; ++i) {
        if (i == m_open)
            f(open_coded());
        else if (i < m_open)
            f(closed_coded(i)); // in the ring: begin > m_open - capacity
        else
            f(coded_bin{i}); // after the open bin: a gap
    }
}

std::vector<history_bin> history_ring::bins(std::chrono::system_clock::time_point now) const {
    std::vector<history_bin> out;
    out.reserve(m_capacity);
    for_each_bin(now, [&](const coded_bin& c) {
        history_bin b;
        b.start = std::chrono::system_clock::time_point(
            std::chrono::duration_cast<std::chrono::system_clock::duration>(m_step * c.index));
        b.sent = c.sent;
        b.received = c.received;
        if (c.received > 0)
            for (std::size_t q = 0; q < b.rtt.size(); ++q)
                b.rtt[q] = decode_rtt(c.codes[q]);
        out.push_back(b);
    });
    return out;
}

namespace {

// The window's mixture CDF over integer codes lowest .. lowest + n - 1:
// at each code its slope (mass per code) changes by slope[code - lowest]
// and it jumps by mass[code - lowest] (bins whose quantiles coincide).
// Codes are integers, so this is an array, not a sorted list of events:
// O(bins + the codes the window spans).
struct mixture_cdf {
    int lowest = 0;
    std::vector<double> slope;
    std::vector<double> mass;

    void reset(int low, int high) {
        lowest = low;
        slope.assign(static_cast<std::size_t>(high - low + 1), 0.0);
        mass.assign(slope.size(), 0.0);
    }

    // One bin of `weight` pings: linear in code between its quantiles.
    void add(const std::array<std::uint16_t, 7>& codes, double weight) {
        double before = 0.0; // the density of the segment that ends here
        for (std::size_t i = 0; i < codes.size(); ++i) {
            double density = 0.0;
            const auto at = static_cast<std::size_t>(codes[i] - lowest);
            if (i + 1 < codes.size()) {
                const double share = weight * (quantile_ranks[i + 1] - quantile_ranks[i]);
                if (codes[i + 1] > codes[i])
                    density = share / (codes[i + 1] - codes[i]);
                else
                    mass[at] += share;
            }
            slope[at] += density - before;
            before = density;
        }
    }

    // Where the CDF reaches each of `targets` (ascending masses), as codes.
    std::array<double, 5> solve(const std::array<double, 5>& targets) const {
        std::array<double, 5> out;
        out.fill(lowest + static_cast<double>(slope.size()) - 1.0);
        std::size_t j = 0;
        double cum = 0.0;
        double rate = 0.0;
        for (std::size_t x = 0; x < slope.size() && j < targets.size(); ++x) {
            if (x > 0 && rate > 0.0) {
                for (; j < targets.size() && targets[j] <= cum + rate; ++j)
                    out[j] = lowest + static_cast<double>(x) - 1.0 + (targets[j] - cum) / rate;
                cum += rate;
            }
            for (; j < targets.size() && mass[x] > 0.0 && targets[j] <= cum + mass[x]; ++j)
                out[j] = lowest + static_cast<double>(x);
            cum += mass[x];
            rate += slope[x];
        }
        return out;
    }
};

} // namespace

history_bin history_ring::summary(std::chrono::system_clock::time_point now) const {
    history_bin s;
    thread_local std::vector<coded_bin> answered;
    answered.clear();
    std::uint64_t sent = 0;
    std::uint64_t received = 0;
    int lowest = code_max;
    int highest = 0;
    bool first = true;
    for_each_bin(now, [&](const coded_bin& c) {
        if (first)
            s.start = std::chrono::system_clock::time_point(
                std::chrono::duration_cast<std::chrono::system_clock::duration>(m_step * c.index));
        first = false;
        sent += c.sent;
        received += c.received;
        if (c.received == 0)
            return;
        lowest = std::min<int>(lowest, c.codes.front());
        highest = std::max<int>(highest, c.codes.back());
        answered.push_back(c);
    });
    s.sent = static_cast<std::uint32_t>(std::min<std::uint64_t>(sent, UINT32_MAX));
    s.received = static_cast<std::uint32_t>(std::min<std::uint64_t>(received, UINT32_MAX));
    if (answered.empty())
        return s;
    thread_local mixture_cdf cdf;
    cdf.reset(lowest, highest);
    double total = 0.0;
    for (const coded_bin& c : answered) {
        cdf.add(c.codes, c.received);
        total += c.received;
    }
    std::array<double, 5> targets{};
    for (std::size_t q = 0; q < targets.size(); ++q)
        targets[q] = quantile_ranks[q + 1] * total;
    const std::array<double, 5> inner = cdf.solve(targets);
    s.rtt.front() = decode_rtt(lowest);
    s.rtt.back() = decode_rtt(highest);
    for (std::size_t q = 0; q < inner.size(); ++q)
        s.rtt[q + 1] = decode_rtt(std::clamp<double>(inner[q], lowest, highest));
    return s;
}

} // namespace icmpengine_exporter
