// SPDX-License-Identifier: MIT
// fping 5.5's -J / --json objects, one per line, keys in fping's order and
// numbers in its format (src/output.c, src/stats.c of fping 5.5):
//   {"resp": {"host": "h", "seq": 0, "size": 64, "rtt": 0.044}}
//   {"timeout": {"host": "h", "seq": 1}}
//   {"summary": {"host": "h", "xmt": 2, "rcv": 1, "loss": 50, "rttMin": ...}}
//   {"vSum": {"host": "h", "values": [0.044, null]}}
//   {"intSum": {"time": 1700000000,"host": "h", "xmt": 1, ...}}
//   {"stats": {"targets": 1, ...}}
//   {"warning": {"host": "h", "message": "..."}}
// Unlike fping, strings are always escaped (json_quote): a name with odd
// bytes still gives valid JSON.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace icmpengine_cli::fping_json {

/// Min, average and max RTT in milliseconds, of the replies counted.
struct rtt_triple {
    double min = 0, avg = 0, max = 0;
};

/// Counts as fping's summary objects carry them.
struct counts {
    std::uint64_t sent = 0;
    std::uint64_t received = 0;
    std::optional<std::uint64_t> outage_ms; ///< with -o
    std::optional<rtt_triple> rtt;          ///< when something was received
};

/// `"timestamp": "T", ` with -D (T as format_timestamp), else "".
std::string timestamp_member(bool on, std::string_view stamp);

std::string resp(std::string_view stamp, std::string_view host, std::uint64_t seq,
                 std::uint32_t size, double rtt_ms, std::string_view extras);
std::string timeout(std::string_view stamp, std::string_view host, std::uint64_t seq);
std::string summary(std::string_view host, const counts& c);
std::string vector_summary(std::string_view host, std::span<const std::optional<double>> rtts_ms);
std::string interval_summary(std::int64_t unix_time, std::string_view host, const counts& c);

/// fping's global totals (-s).
struct totals {
    std::uint64_t targets = 0, alive = 0, unreachable = 0, unknown = 0;
    std::uint64_t timeouts = 0, sent = 0, received = 0, other_icmp = 0;
    rtt_triple rtt;
    double elapsed_s = 0;
};
std::string stats(const totals& t);
std::string warning(std::string_view host, std::string_view message);

} // namespace icmpengine_cli::fping_json
