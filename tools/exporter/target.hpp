// SPDX-License-Identifier: MIT
// One continuously pinged target, as the configuration and the command line
// describe it once its host is resolved: what every part of the exporter
// (config.hpp, continuous.hpp, status_page.hpp) passes around.
#pragma once

#include <icmpengine/ip_address.hpp>

#include <chrono>
#include <compare>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace icmpengine_exporter {

namespace ie = ::icmpengine;

/// Extra labels of a target group (config `labels:`), sorted by name, names
/// valid Prometheus label names other than ip, host, source and tos.
using label_list = std::vector<std::pair<std::string, std::string>>;

/// One host of a target group, resolved to one address.
struct target_spec {
    std::string host;        ///< as written in the config or on the command line (label `host`)
    ie::ip_address ip;       ///< the address pinged (label `ip`)
    std::string source;      ///< source address as written, or empty (label `source`)
    std::uint8_t tos = 0;    ///< the IPv4 TOS / IPv6 traffic class byte (label `tos`, decimal)
    std::uint32_t size = 56; ///< ICMP payload bytes
    std::chrono::nanoseconds interval = std::chrono::seconds(1);
    label_list labels;

    /// Two specs with the same identity are the same Prometheus series: a
    /// reload that keeps it keeps its counters, even if size or interval
    /// changed.
    struct identity {
        std::string host;
        ie::ip_address ip;
        std::string source;
        std::uint8_t tos;
        label_list labels;
        auto operator<=>(const identity&) const = default;
        bool operator==(const identity&) const = default;
    };
    identity key() const { return {host, ip, source, tos, labels}; }
    bool operator==(const target_spec&) const = default;
};

} // namespace icmpengine_exporter
