// SPDX-License-Identifier: MIT
// fping's lines, decided as fping 5.1 decides them (its flags verbose_flag,
// per_recv_flag, alive_flag, unreachable_flag; fping.c, wait_for_reply()
// and finish()). Our own counters (stddev, out-of-order, duplicates, ICMP
// errors, late replies) only with --extended-summary.
#include "report_text.hpp"

#include "report_fping_json.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <iterator>

namespace icmpengine_cli {

namespace {

/// fping's integer loss percentage.
std::uint64_t loss_percent(std::uint64_t sent, std::uint64_t received) {
    return sent == 0 ? 0 : (sent - received) * 100 / sent;
}

/// What an ICMP error says, in fping's words: fping 5.1's for IPv4,
/// fping 5.5's for IPv6 (5.1 misreads ICMPv6 errors).
std::string icmp_error_text(const ie::ping_result& r, std::string_view host) {
    const std::string from = r.from.to_string();
    if (r.from.is_v4()) {
        static constexpr const char* unreachable[] = {
            "ICMP Network Unreachable",
            "ICMP Host Unreachable",
            "ICMP Protocol Unreachable",
            "ICMP Port Unreachable",
            "ICMP Unreachable (Fragmentation Needed)",
            "ICMP Unreachable (Source Route Failed)",
            "ICMP Unreachable (Destination Network Unknown)",
            "ICMP Unreachable (Destination Host Unknown)",
            "ICMP Unreachable (Source Host Isolated)",
            "ICMP Unreachable (Communication with Network Prohibited)",
            "ICMP Unreachable (Communication with Host Prohibited)",
            "ICMP Unreachable (Network Unreachable For Type Of Service)",
            "ICMP Unreachable (Host Unreachable For Type Of Service)",
            "ICMP Unreachable (Communication Administratively Prohibited)",
            "ICMP Unreachable (Host Precedence Violation)",
            "ICMP Unreachable (Precedence cutoff in effect)"};
        std::string what;
        if (r.icmp_type == 3)
            what = r.icmp_code < std::size(unreachable) ? unreachable[r.icmp_code]
                                                        : "ICMP Unreachable (Invalid Code)";
        else if (r.icmp_type == 4)
            what = "ICMP Source Quench";
        else if (r.icmp_type == 5)
            what = "ICMP Redirect";
        else if (r.icmp_type == 11)
            what = "ICMP Time Exceeded";
        else if (r.icmp_type == 12)
            what = "ICMP Parameter Problem";
        else
            what = fmt::format("ICMP {}", r.icmp_type);
        return fmt::format("{} from {} for ICMP Echo sent to {}", what, from, host);
    }
    static constexpr const char* unreachable6[] = {
        "No route to destination",
        "Communication with destination administratively prohibited",
        "Beyond scope of source address",
        "Address unreachable",
        "Port unreachable",
        "Source address failed ingress/egress policy",
        "Reject route to destination",
        "Error in Source Routing Header",
        "Headers too long",
        "Error in P-Route"};
    static constexpr const char* exceeded6[] = {"Hop limit exceeded in transit",
                                                "Fragment reassembly time exceeded"};
    const auto named = [&](std::string_view kind, std::span<const char* const> names) {
        return r.icmp_code < names.size() ? fmt::format("ICMPv6 {} ({})", kind, names[r.icmp_code])
                                          : fmt::format("ICMPv6 {} (Code {})", kind, r.icmp_code);
    };
    std::string what;
    if (r.icmp_type == 1)
        what = named("Destination Unreachable", unreachable6);
    else if (r.icmp_type == 2)
        what = "ICMPv6 Packet Too Big";
    else if (r.icmp_type == 3)
        what = named("Time Exceeded", exceeded6);
    else if (r.icmp_type == 4)
        what = fmt::format("ICMPv6 Parameter Problem (Code {})", r.icmp_code);
    else
        what = fmt::format("ICMPv6 Type {} Code {}", r.icmp_type, r.icmp_code);
    return fmt::format("{} from {} for ICMPv6 Echo Request sent to {}", what, from, host);
}

bool is_icmp_error(ie::ping_status s) {
    return s == ie::ping_status::unreachable || s == ie::ping_status::time_exceeded ||
           s == ie::ping_status::packet_too_big || s == ie::ping_status::parameter_problem;
}

} // namespace

text_reporter::text_reporter(const settings& s, report_targets targets, line_output& lines)
    : m_settings(s), m_targets(std::move(targets)), m_lines(lines), m_width(m_targets.width()),
      m_json(s.json) {
    // fping's main(): -a, -u and -x silence "is alive"; -c and -l silence
    // all three and print a line per reply instead (-l unless -Q).
    const bool listing = s.alive || s.unreachable || s.min_reachable > 0;
    m_verbose = s.mode == run_mode::single_shot && !s.quiet && !listing;
    m_per_recv = (s.mode == run_mode::count && !s.quiet && !listing) ||
                 (s.mode == run_mode::loop && s.report_interval.count() == 0);
    m_splits.resize(m_targets.names_of.size());
    m_last.resize(m_targets.names_of.size());
}

void text_reporter::resolve_failure(const ie::target_failure& f) {
    // A name from a long line is cut (fping cuts it into 131-byte names,
    // one message each: tests/fping_compat/expected-differences).
    constexpr std::size_t keep = 64;
    const std::string name = f.name.size() > keep ? f.name.substr(0, keep) + "..." : f.name;
    if (!m_settings.quiet)
        m_lines.err(fmt::format("{}: {}", name, f.reason));
    if (m_json)
        m_lines.out(fping_json::warning(f.name, f.reason));
}

void text_reporter::ping(const ie::ping_event& e) {
    const ie::ping_result& r = e.result;
    m_splits[e.target].add(r);
    if (is_icmp_error(r.status)) {
        icmp_error(e);
        return;
    }
    if (r.status == ie::ping_status::send_error) {
        // Once per target: the same local error every time says nothing new.
        if (m_verbose && e.series.statistics.send_errors() == 1)
            for (const std::string& name : names_of(e.target))
                m_lines.err(
                    fmt::format("{}: error while sending ping: {}", name, r.error.message()));
        return;
    }
    if (r.status == ie::ping_status::cancelled)
        return;
    last_reply& last = m_last[e.target];
    if (r.status == ie::ping_status::reply) {
        // Field by field: its pending duplicates stay.
        last.sequence = r.sequence;
        last.index = e.index;
        last.bytes = r.bytes + 8;
        last.rtt = r.rtt;
        last.at = std::chrono::steady_clock::now();
        last.valid = true;
        if (e.series.statistics.received() == 1)
            first_reply(e);
    }
    if (m_per_recv)
        per_reply_lines(e);
    if (r.status == ie::ping_status::reply && last.pending_duplicates > 0 &&
        last.pending_sequence == r.sequence) {
        for (; last.pending_duplicates > 0; --last.pending_duplicates)
            duplicate_line(e.target, last.pending_from, e.series.target);
    }
}

void text_reporter::icmp_error(const ie::ping_event& e) {
    if (!m_settings.quiet)
        for (const std::string& name : names_of(e.target))
            m_lines.err(icmp_error_text(e.result, name));
    if (m_per_recv) // the ping ends here; fping would print it timed out later
        per_reply_lines(e);
}

/// "TARGET is alive" (or TARGET alone with -a), once per given target.
void text_reporter::first_reply(const ie::ping_event& e) {
    const settings& s = m_settings;
    if (!m_verbose && !(s.alive && s.mode == run_mode::single_shot))
        return;
    std::string tail = m_verbose ? " is alive" : "";
    tail += reply_extras(e.result);
    if (s.elapsed)
        tail += fmt::format(" ({} ms)", format_ms(to_ms(e.result.rtt)));
    for (const std::string& name : names_of(e.target)) {
        other_source(e);
        m_lines.out(name + tail);
    }
}

void text_reporter::per_reply_lines(const ie::ping_event& e) {
    for (const std::string& name : names_of(e.target))
        per_reply_line(e, name);
}

void text_reporter::per_reply_line(const ie::ping_event& e, const std::string& name) {
    const ie::ping_result& r = e.result;
    const ie::ping_statistics& st = e.series.statistics;
    const settings& s = m_settings;
    const std::string stamp = s.timestamps ? format_timestamp(s.timestamp_format) : "";
    if (r.status == ie::ping_status::reply) {
        if (m_json) {
            m_lines.out(fping_json::resp(fping_json::timestamp_member(s.timestamps, stamp), name,
                                         e.index, r.bytes + 8, to_ms(r.rtt), reply_extras(r)));
            return;
        }
        other_source(e);
        m_lines.out(fmt::format("{}{:<{}} : [{}], {} bytes, {} ms ({} avg, {}% loss){}",
                                s.timestamps ? "[" + stamp + "] " : "", name, m_width, e.index,
                                r.bytes + 8, format_ms(to_ms(r.rtt)),
                                format_ms(to_ms(*st.rtt_mean())),
                                loss_percent(st.resolved(), st.received()), reply_extras(r)));
        return;
    }
    if (m_json) {
        m_lines.out(
            fping_json::timeout(fping_json::timestamp_member(s.timestamps, stamp), name, e.index));
        return;
    }
    const std::string avg = st.rtt_mean() ? format_ms(to_ms(*st.rtt_mean())) : "NaN";
    m_lines.out(fmt::format("{}{:<{}} : [{}], timed out ({} avg, {}% loss)",
                            s.timestamps ? "[" + stamp + "] " : "", name, m_width, e.index, avg,
                            loss_percent(st.resolved(), st.received())));
}

void text_reporter::other_source(const ie::ping_event& e) {
    // fping writes this to stderr, the rest of the line to stdout.
    if (!m_json && e.result.from != e.series.target)
        m_lines.err_fragment(fmt::format(" [<- {}]", e.result.from.to_string()));
}

std::string text_reporter::reply_extras(const ie::ping_result& r) const {
    const settings& s = m_settings;
    std::string x;
    if (m_json) {
        if (s.print_srcaddr)
            x += fmt::format(", \"src\": {}", json_quote(r.from.to_string()));
        if (s.print_tos)
            x += fmt::format(", \"tos\": {}", r.tos);
        if (s.print_ttl)
            x += fmt::format(", \"ttl\": {}", r.ttl != 0 ? int{r.ttl} : -1);
        return x;
    }
    if (s.print_srcaddr)
        x += fmt::format(" (SRC {})", r.from.to_string());
    if (s.print_tos)
        x += r.tos >= 0 ? fmt::format(" (TOS {})", r.tos) : std::string(" (TOS unknown)");
    if (s.print_ttl)
        x += r.ttl != 0 ? fmt::format(" (TTL {})", r.ttl) : std::string(" (TTL unknown)");
    return x;
}

bool text_reporter::prints_duplicates() const {
    return m_settings.mode != run_mode::loop && !m_per_recv;
}

void text_reporter::stray(const ie::stray_event& e) {
    if (e.credited) {
        // fping's default mode: a late reply to an earlier try, while a
        // later one is in flight, makes the target alive, with the RTT of
        // the try it answers (series_options::credit_late_replies).
        ie::ping_result r;
        r.status = ie::ping_status::reply;
        r.rtt = *e.series.credited_rtt;
        r.from = e.reply.from;
        r.sequence = e.reply.sequence;
        first_reply(ie::ping_event{e.target, 0, r, e.series});
        return;
    }
    // fping discards other late replies silently.
    if (e.reply.what != ie::stray_reply::kind::duplicate || !prints_duplicates())
        return;
    last_reply& last = m_last[e.target];
    if (last.valid && last.sequence == e.reply.sequence) {
        duplicate_line(e.target, e.reply.from, e.series.target, e.reply.rtt);
        return;
    }
    if (last.pending_duplicates == 0 || last.pending_sequence != e.reply.sequence)
        last.pending_duplicates = 0;
    last.pending_sequence = e.reply.sequence;
    last.pending_from = e.reply.from;
    ++last.pending_duplicates;
}

void text_reporter::duplicate_line(std::size_t target, const ie::ip_address& from,
                                   const ie::ip_address& address,
                                   std::optional<std::chrono::nanoseconds> rtt) {
    const last_reply& last = m_last[target];
    // Without the engine's measure (a duplicate that came before its
    // original was reported): the original's RTT plus the time between.
    if (!rtt)
        rtt = last.rtt + (std::chrono::steady_clock::now() - last.at);
    std::string tail = fmt::format(" : duplicate for [{}], {} bytes, {} ms", last.index, last.bytes,
                                   format_ms(to_ms(*rtt)));
    if (from != address)
        tail += fmt::format(" [<- {}]", from.to_string());
    for (const std::string& name : names_of(target))
        m_lines.err(name + tail);
}

} // namespace icmpengine_cli
