// SPDX-License-Identifier: MIT
// The echo requests leaving through lo, with the kernel's transmit
// timestamps: when a request really left, free of the jitter of whoever
// reads the capture (and of the process that sent it).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace icmpengine::testing {

/// An outgoing echo request seen on lo.
struct wire_request {
    int family = 0;             ///< AF_INET or AF_INET6
    unsigned traffic_class = 0; ///< IPv4 TOS / IPv6 traffic class
    unsigned ttl = 0;           ///< TTL / hop limit
    bool dont_fragment = false; ///< IPv4 DF
    std::string source;
    std::string destination;
    std::size_t payload = 0;          ///< ICMP payload bytes
    std::chrono::nanoseconds sent{0}; ///< kernel timestamp (CLOCK_REALTIME)
};

/// Captures what leaves lo (AF_PACKET, SOCK_DGRAM: from the IP header on)
/// from its construction on. Every packet is seen twice on lo, outgoing and
/// incoming; requests() keeps the outgoing echo requests.
class lo_capture {
  public:
    /// Returns once the kernel stamps packets at transmission (see the .cpp).
    lo_capture();
    ~lo_capture();
    lo_capture(const lo_capture&) = delete;
    lo_capture& operator=(const lo_capture&) = delete;

    /// The echo requests captured since the last call, in the order they left.
    std::vector<wire_request> requests();
    /// Only their send times.
    std::vector<std::chrono::nanoseconds> send_times();

  private:
    void wait_for_transmit_stamps();

    int m_fd = -1;
};

/// CLOCK_REALTIME now, on the scale of wire_request::sent.
std::chrono::nanoseconds realtime_now();

} // namespace icmpengine::testing
