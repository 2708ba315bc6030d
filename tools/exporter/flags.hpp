// SPDX-License-Identifier: MIT
// icmpengine-exporter's command line: smokeping_prober's flags (kingpin
// syntax: --name=value or --name value, --no-name for booleans, -i 1s) and
// ours. Errors read as kingpin's ("icmpengine-exporter: error: ...") and
// exit 1, so wrappers written for smokeping_prober see what they expect.
#pragma once

#include "config.hpp"
#include "probe.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace icmpengine_exporter {

/// smokeping_prober's default histogram buckets (seconds).
std::vector<double> default_buckets();

struct exporter_flags {
    // smokeping_prober's
    std::vector<std::string> listen_addresses; ///< default {":9374"}
    std::string telemetry_path = "/metrics";
    std::string config_file; ///< empty: none
    std::vector<double> buckets = default_buckets();
    std::chrono::nanoseconds interval = std::chrono::seconds(1);
    std::uint32_t size = 56;
    bool privileged = false; ///< accepted, changes nothing (datagram ICMP sockets)
    std::string log_level = "info";
    std::string log_format = "logfmt";
    std::vector<std::string> hosts;
    // ours
    std::chrono::nanoseconds timeout{0}; ///< 0 = each target's interval
    shard_spec shard{};
    allow_list probe_allow{};
    probe_limits probe{};
    unsigned engines = 1;
    std::chrono::nanoseconds dns_interval = std::chrono::minutes(5);
    std::size_t history_bins = 60;
    std::size_t max_connections = 512;
    // what to do instead of running
    bool help = false;
    bool version = false;
};

/// A command line that cannot run; what() is the message after
/// "icmpengine-exporter: error: ".
class flag_error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// Parses argv[1..]. Throws flag_error.
exporter_flags parse_flags(int argc, const char* const* argv);

/// The --help text.
std::string usage_text();

} // namespace icmpengine_exporter
