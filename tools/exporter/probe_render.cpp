// SPDX-License-Identifier: MIT
// The /probe page: blackbox_exporter's ICMP metrics, with its names, types
// and help strings (prober/icmp.go, prober/utils.go; probe_success and
// probe_duration_seconds from prober/handler.go), then loss and RTT
// statistics over the probe's pings under icmpengine_probe_. Families in
// name order, as client_golang's registry gathers them, so a page reads
// like blackbox's.
//
// probe_ip_addr_hash is blackbox's: FNV-1a (32 bit) over the bytes of Go's
// net.IP. Go hands a literal target to the prober as its 16-byte form
// (::ffff:a.b.c.d for IPv4) and an address from DNS as 4 bytes, so we hash
// likewise: the same target has the same hash under both exporters.
#include "probe.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>

namespace icmpengine_exporter {

namespace {

double seconds(std::chrono::nanoseconds d) {
    return std::chrono::duration<double>(d).count();
}

std::uint32_t fnv1a_32(const std::uint8_t* data, std::size_t size) {
    std::uint32_t h = 2166136261u;
    for (std::size_t i = 0; i < size; ++i) {
        h ^= data[i];
        h *= 16777619u;
    }
    return h;
}

double ip_addr_hash(const probe_request& request, const ie::ip_address& a) {
    const auto& b = a.bytes();
    if (a.is_v6())
        return fnv1a_32(b.data(), 16);
    if (!ie::ip_address::try_parse(request.target))
        return fnv1a_32(b.data(), 4);
    const std::array<std::uint8_t, 16> mapped{0, 0, 0,    0,    0,    0,    0,    0,
                                              0, 0, 0xff, 0xff, b[0], b[1], b[2], b[3]};
    return fnv1a_32(mapped.data(), mapped.size());
}

void gauge(exposition& page, std::string_view name, std::string_view help, double value) {
    append_sample(page.samples(page.family(name, exposition::kind::gauge, help)), name, "", value);
}

/// probe_icmp_duration_seconds's three phases, in label order.
void phases(exposition& page, double resolve, double rtt, double setup) {
    static constexpr std::string_view name = "probe_icmp_duration_seconds";
    std::string& out = page.samples(
        page.family(name, exposition::kind::gauge, "Duration of icmp request by phase"));
    append_sample(out, name, "{phase=\"resolve\"}", resolve);
    append_sample(out, name, "{phase=\"rtt\"}", rtt);
    append_sample(out, name, "{phase=\"setup\"}", setup);
}

constexpr std::string_view help_dns = "Returns the time taken for probe dns lookup in seconds";
constexpr std::string_view help_duration = "Returns how long the probe took to complete in seconds";
constexpr std::string_view help_hash =
    "Specifies the hash of IP address. It's useful to detect if the IP address changes.";
constexpr std::string_view help_protocol = "Specifies whether probe ip protocol is IP4 or IP6";
constexpr std::string_view help_success = "Displays whether or not the probe was a success";

/// min, avg, max, median and the population standard deviation (as ping's
/// mdev and fping's) of the replies' RTTs, labelled stat="...". Nothing
/// without replies: absent, not NaN.
void rtt_statistics(exposition& page, const std::vector<std::chrono::nanoseconds>& rtts) {
    if (rtts.empty())
        return;
    static constexpr std::string_view name = "icmpengine_probe_rtt_seconds";
    std::string& out = page.samples(page.family(
        name, exposition::kind::gauge,
        "Round-trip times of the probe's replies: min, avg, max, median and standard deviation"));
    std::vector<double> s;
    s.reserve(rtts.size());
    for (const auto rtt : rtts)
        s.push_back(seconds(rtt));
    std::sort(s.begin(), s.end());
    const double n = static_cast<double>(s.size());
    const double mean = std::accumulate(s.begin(), s.end(), 0.0) / n;
    double squares = 0;
    for (const double x : s)
        squares += (x - mean) * (x - mean);
    const std::size_t mid = s.size() / 2;
    const double median = s.size() % 2 == 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
    append_sample(out, name, "{stat=\"avg\"}", mean);
    append_sample(out, name, "{stat=\"max\"}", s.back());
    append_sample(out, name, "{stat=\"median\"}", median);
    append_sample(out, name, "{stat=\"min\"}", s.front());
    append_sample(out, name, "{stat=\"stddev\"}", std::sqrt(squares / n));
}

} // namespace

void render_probe(const probe_request& request, const probe_result& result, exposition& page) {
    gauge(page, "icmpengine_probe_icmp_errors",
          "ICMP errors (unreachable, time exceeded, ...) that answered the probe's pings",
          result.icmp_errors);
    const double loss = result.sent == 0 ? 1.0
                                         : static_cast<double>(result.sent - result.received) /
                                               static_cast<double>(result.sent);
    gauge(page, "icmpengine_probe_packet_loss_ratio",
          "Fraction of the probe's echo requests that got no reply (1 if none was sent)", loss);
    gauge(page, "icmpengine_probe_packets_received", "Echo replies the probe received",
          result.received);
    gauge(page, "icmpengine_probe_packets_sent", "Echo requests the probe sent", result.sent);
    rtt_statistics(page, result.rtts);
    gauge(page, "icmpengine_probe_send_errors", "Echo requests the probe could not send",
          result.send_errors);

    gauge(page, "probe_dns_lookup_time_seconds", help_dns, seconds(result.resolve_time));
    gauge(page, "probe_duration_seconds", help_duration, seconds(result.duration));
    phases(page, seconds(result.resolve_time),
           result.rtts.empty() ? 0.0 : seconds(result.rtts.front()), 0.0);
    if (result.received > 0 && result.reply_ttl != 0)
        gauge(page, "probe_icmp_reply_hop_limit", "Replied packet hop limit (TTL for ipv4)",
              result.reply_ttl);
    gauge(page, "probe_ip_addr_hash", help_hash, ip_addr_hash(request, result.address));
    gauge(page, "probe_ip_protocol", help_protocol, result.address.is_v4() ? 4.0 : 6.0);
    gauge(page, "probe_success", help_success, result.received > 0 ? 1.0 : 0.0);
}

void render_failed_probe(const probe_request& request, std::chrono::nanoseconds duration,
                         exposition& page) {
    (void)request; // blackbox says nothing of the target either
    // What blackbox registers before its resolution fails, at the values
    // it leaves them: the lookup took the whole probe.
    gauge(page, "probe_dns_lookup_time_seconds", help_dns, seconds(duration));
    gauge(page, "probe_duration_seconds", help_duration, seconds(duration));
    phases(page, 0.0, 0.0, 0.0);
    gauge(page, "probe_ip_addr_hash", help_hash, 0.0);
    gauge(page, "probe_ip_protocol", help_protocol, 0.0);
    gauge(page, "probe_success", help_success, 0.0);
}

} // namespace icmpengine_exporter
