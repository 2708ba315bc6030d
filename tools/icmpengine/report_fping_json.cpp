// SPDX-License-Identifier: MIT
#include "report_fping_json.hpp"

#include "report.hpp"

#include <fmt/format.h>

namespace icmpengine_cli::fping_json {

namespace {

/// fping's integer loss percentage; 0 before anything was sent.
std::uint64_t loss(const counts& c) {
    return c.sent == 0 ? 0 : (c.sent - c.received) * 100 / c.sent;
}

/// The members after "host" that summary and intSum share.
std::string count_members(const counts& c) {
    std::string s =
        fmt::format("\"xmt\": {}, \"rcv\": {}, \"loss\": {}", c.sent, c.received, loss(c));
    if (c.outage_ms)
        s += fmt::format(", \"outage(ms)\": {}", *c.outage_ms);
    if (c.rtt) {
        s += fmt::format(", \"rttMin\": {}, \"rttAvg\": {}, \"rttMax\": {}", format_ms(c.rtt->min),
                         format_ms(c.rtt->avg), format_ms(c.rtt->max));
    }
    return s;
}

} // namespace

std::string timestamp_member(bool on, std::string_view stamp) {
    return on ? fmt::format("\"timestamp\": {}, ", json_quote(stamp)) : std::string();
}

std::string resp(std::string_view stamp, std::string_view host, std::uint64_t seq,
                 std::uint32_t size, double rtt_ms, std::string_view extras) {
    return fmt::format("{{\"resp\": {{{}\"host\": {}, \"seq\": {}, \"size\": {}, \"rtt\": {}{}}}}}",
                       stamp, json_quote(host), seq, size, format_ms(rtt_ms), extras);
}

std::string timeout(std::string_view stamp, std::string_view host, std::uint64_t seq) {
    return fmt::format("{{\"timeout\": {{{}\"host\": {}, \"seq\": {}}}}}", stamp, json_quote(host),
                       seq);
}

std::string summary(std::string_view host, const counts& c) {
    return fmt::format("{{\"summary\": {{\"host\": {}, {}}}}}", json_quote(host), count_members(c));
}

std::string vector_summary(std::string_view host, std::span<const std::optional<double>> rtts_ms) {
    std::string values;
    for (std::size_t k = 0; k < rtts_ms.size(); ++k) {
        if (k > 0)
            values += ", ";
        values += rtts_ms[k] ? format_ms(*rtts_ms[k]) : "null";
    }
    return fmt::format("{{\"vSum\": {{\"host\": {}, \"values\": [{}]}}}}", json_quote(host),
                       values);
}

std::string interval_summary(std::int64_t unix_time, std::string_view host, const counts& c) {
    // fping writes no space after the comma that follows "time".
    return fmt::format("{{\"intSum\": {{\"time\": {},\"host\": {}, {}}}}}", unix_time,
                       json_quote(host), count_members(c));
}

std::string stats(const totals& t) {
    return fmt::format(
        "{{\"stats\": {{\"targets\": {}, \"alive\": {}, \"unreachable\": {}, "
        "\"unknownAddresses\": {}, \"timeouts\": {}, \"icmpEchosSent\": {}, "
        "\"icmpEchoRepliesReceived\": {}, \"otherIcmpReceived\": {}, \"rttMin\": {}, "
        "\"rttAvg\": {}, \"rttMax\": {}, \"elapsed\": {:.3f}}}}}",
        t.targets, t.alive, t.unreachable, t.unknown, t.timeouts, t.sent, t.received, t.other_icmp,
        format_ms(t.rtt.min), format_ms(t.rtt.avg), format_ms(t.rtt.max), t.elapsed_s);
}

std::string warning(std::string_view host, std::string_view message) {
    return fmt::format("{{\"warning\": {{\"host\": {}, \"message\": {}}}}}", json_quote(host),
                       json_quote(message));
}

} // namespace icmpengine_cli::fping_json
