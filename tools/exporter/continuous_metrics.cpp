// SPDX-License-Identifier: MIT
// Continuous mode's families, written straight into the exposition's sample
// strings: each family's room is reserved once, then every line is copies of
// precomputed fragments and numbers from std::to_chars.
#include "continuous_metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <sys/mman.h>

namespace icmpengine_exporter {

namespace {

// smokeping_prober's families: names, help texts and types as its
// collector.go registers them (label names ip, host, source, tos).
constexpr std::string_view requests_name = "smokeping_requests_total";
constexpr std::string_view requests_help = "Number of ping requests sent";
constexpr std::string_view duration_name = "smokeping_response_duration_seconds";
constexpr std::string_view duration_help = "A histogram of latencies for ping responses.";
constexpr std::string_view bucket_name = "smokeping_response_duration_seconds_bucket";
constexpr std::string_view sum_name = "smokeping_response_duration_seconds_sum";
constexpr std::string_view count_name = "smokeping_response_duration_seconds_count";
constexpr std::string_view duplicates_name = "smokeping_response_duplicates_total";
constexpr std::string_view duplicates_help = "The number of duplicated response packets.";
constexpr std::string_view ttl_name = "smokeping_response_ttl";
constexpr std::string_view ttl_help = "The last response Time To Live (TTL).";
constexpr std::string_view send_errors_name = "smokeping_send_errors_total";
constexpr std::string_view send_errors_help =
    "The number of errors when Pinger attempts to send packets.";
constexpr std::string_view receive_errors_name = "smokeping_receive_errors_total";
constexpr std::string_view receive_errors_help =
    "The number of errors when Pinger attempts to receive packets.";

// Ours.
constexpr std::string_view timeouts_name = "icmpengine_exporter_timeouts_total";
constexpr std::string_view timeouts_help =
    "Echo requests that got no reply within their timeout (the target's interval unless "
    "a timeout is set).";
constexpr std::string_view late_name = "icmpengine_exporter_late_replies_total";
constexpr std::string_view late_help =
    "Echo replies that arrived after their request had timed out (not observed in "
    "smokeping_response_duration_seconds).";
constexpr std::string_view icmp_errors_name = "icmpengine_exporter_icmp_errors_total";
constexpr std::string_view icmp_errors_help =
    "Echo requests answered by an ICMP error instead of a reply, by ICMP error type.";
constexpr std::string_view in_flight_name = "icmpengine_exporter_in_flight";
constexpr std::string_view in_flight_help =
    "Echo requests sent to the target that have not yet ended (reply, timeout or error).";
constexpr std::string_view targets_name = "icmpengine_exporter_targets";
constexpr std::string_view targets_help = "Targets pinged continuously.";

constexpr std::size_t max_integer = 20; // digits of a uint64
constexpr std::size_t max_float = 32;   // write_go_float's bound

constexpr std::size_t huge_page = std::size_t{2} << 20;

/// A family of 10,000 targets is tens of MB of fresh memory per scrape:
/// touched 4 KiB at a time, its page faults cost more than writing it
/// (several times more under a hypervisor). Transparent huge pages, where
/// the kernel allows them on request (`madvise` mode, Debian's default),
/// make that a fault per 2 MiB. Advisory only: without THP nothing changes.
void advise_huge_pages(char* begin, std::size_t size) noexcept {
    const auto first = (reinterpret_cast<std::uintptr_t>(begin) + huge_page - 1) & ~(huge_page - 1);
    const auto last = (reinterpret_cast<std::uintptr_t>(begin) + size) & ~(huge_page - 1);
    if (last > first)
        (void)::madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
}

/// Writes a family's lines through a small buffer that stays in cache:
/// each target's lines are formatted there (room() first, with a bound on
/// what follows) and appended to the family's string a chunk at a time.
/// The family's string is reserved once, to a bound of the whole family,
/// so that it never moves; pages it does not touch cost nothing.
class line_writer {
  public:
    static constexpr std::size_t chunk = 64 * 1024;

    line_writer(std::string& out, std::size_t reserve) : m_out(out) {
        out.reserve(out.size() + reserve);
        if (reserve >= huge_page * 2)
            advise_huge_pages(out.data() + out.size(), out.capacity() - out.size());
        grow(chunk);
    }
    ~line_writer() { flush(); }
    line_writer(const line_writer&) = delete;
    line_writer& operator=(const line_writer&) = delete;

    /// Makes room for `n` more bytes in the buffer.
    void room(std::size_t n) {
        if (static_cast<std::size_t>(m_end - m_p) >= n)
            return;
        flush();
        if (static_cast<std::size_t>(m_end - m_p) < n)
            grow(n);
    }
    void put(std::string_view s) noexcept {
        std::memcpy(m_p, s.data(), s.size());
        m_p += s.size();
    }
    void put(char c) noexcept { *m_p++ = c; }
    void put_integer(std::uint64_t v) noexcept {
        m_p = std::to_chars(m_p, m_p + max_integer, v).ptr;
    }
    void put_float(double v) noexcept { m_p = write_go_float(m_p, v); }

  private:
    void flush() {
        m_out.append(m_buffer.get(), static_cast<std::size_t>(m_p - m_buffer.get()));
        m_p = m_buffer.get();
    }
    void grow(std::size_t n) {
        m_buffer.reset(new char[n]); // uninitialised: written before it is read
        m_p = m_buffer.get();
        m_end = m_p + n;
    }

    std::string& m_out;
    std::unique_ptr<char[]> m_buffer;
    char* m_p = nullptr;
    char* m_end = nullptr;
};

std::size_t label_bytes(std::span<const target_metrics* const> targets) {
    std::size_t n = 0;
    for (const target_metrics* t : targets)
        n += t->label_set.size();
    return n;
}

/// The label set without its closing brace, for a further label.
std::string_view stem(const std::string& label_set) {
    return std::string_view(label_set).substr(0, label_set.size() - 1);
}

/// One line per target: `name{labels} value`.
template <typename Value>
void simple_family(std::string& out, std::string_view name,
                   std::span<const target_metrics* const> targets, Value value) {
    const std::size_t labels = label_bytes(targets);
    const std::size_t fixed = name.size() + max_integer + 2;
    line_writer w(out, targets.size() * fixed + labels);
    for (const target_metrics* t : targets) {
        w.room(fixed + t->label_set.size());
        w.put(name);
        w.put(t->label_set);
        w.put(' ');
        w.put_integer(value(*t));
        w.put('\n');
    }
}

void icmp_errors_family(std::string& out, std::span<const target_metrics* const> targets) {
    line_writer w(out, 0);
    for (const target_metrics* t : targets) {
        for (std::size_t i = 0; i < icmp_error_types; ++i) {
            if (t->icmp_errors[i] == 0)
                continue;
            const std::string_view type = to_label(static_cast<icmp_error_type>(i));
            w.room(icmp_errors_name.size() + t->label_set.size() + type.size() + max_integer + 12);
            w.put(icmp_errors_name);
            w.put(stem(t->label_set));
            w.put(",type=\"");
            w.put(type);
            w.put("\"} ");
            w.put_integer(t->icmp_errors[i]);
            w.put('\n');
        }
    }
}

void append_labelled(std::string& out, std::string_view name, std::string_view value) {
    out += name;
    out += "=\"";
    append_escaped_label_value(out, value);
    out += '"';
}

} // namespace

std::string_view to_label(icmp_error_type t) noexcept {
    switch (t) {
    case icmp_error_type::unreachable:
        return "unreachable";
    case icmp_error_type::time_exceeded:
        return "time_exceeded";
    case icmp_error_type::packet_too_big:
        return "packet_too_big";
    case icmp_error_type::parameter_problem:
        return "parameter_problem";
    }
    return "other";
}

std::string target_label_set(const target_spec& spec) {
    std::string out;
    out.reserve(64 + spec.host.size() + spec.source.size());
    out += '{';
    append_labelled(out, "ip", spec.ip.to_string());
    out += ',';
    append_labelled(out, "host", spec.host);
    out += ',';
    append_labelled(out, "source", spec.source);
    out += ',';
    append_labelled(out, "tos", std::to_string(spec.tos));
    for (const auto& [name, value] : spec.labels) {
        out += ',';
        append_labelled(out, name, value);
    }
    out += '}';
    out.shrink_to_fit();
    return out;
}

std::string engine_label_set(std::string_view source, std::uint8_t tos) {
    std::string out = "{";
    append_labelled(out, "source", source);
    out += ',';
    append_labelled(out, "tos", std::to_string(tos));
    out += '}';
    return out;
}

char* write_go_float(char* out, double v) noexcept {
    auto copy = [out](std::string_view s) {
        std::memcpy(out, s.data(), s.size());
        return out + s.size();
    };
    if (std::isnan(v))
        return copy("NaN");
    if (std::isinf(v))
        return copy(v > 0 ? "+Inf" : "-Inf");
    // Go's 'g' with the shortest precision decides on the exponent of the
    // shortest digits: %e below 1e-4 and from 1e6 on (strconv/ftoa.go).
    char sci[max_float];
    const char* end = std::to_chars(sci, sci + sizeof sci, v, std::chars_format::scientific).ptr;
    const char* e = std::find(static_cast<const char*>(sci), end, 'e');
    int exponent = 0;
    if (e != end) {
        const char* digits = e + 1;
        const bool negative = *digits == '-';
        if (*digits == '+' || *digits == '-')
            ++digits;
        std::from_chars(digits, end, exponent);
        if (negative)
            exponent = -exponent;
    }
    if (exponent < -4 || exponent >= 6) {
        std::memcpy(out, sci, static_cast<std::size_t>(end - sci));
        return out + (end - sci);
    }
    return std::to_chars(out, out + max_float, v, std::chars_format::fixed).ptr;
}

continuous_metrics::continuous_metrics(std::vector<double> buckets) : m_bounds(std::move(buckets)) {
    if (!m_bounds.empty() && std::isinf(m_bounds.back()) && m_bounds.back() > 0)
        m_bounds.pop_back();
    for (std::size_t i = 0; i < m_bounds.size(); ++i) {
        if (!std::isfinite(m_bounds[i]) || (i > 0 && m_bounds[i] <= m_bounds[i - 1]))
            throw std::invalid_argument("histogram buckets must be finite and strictly "
                                        "ascending: bucket " +
                                        std::to_string(i) + " is " + std::to_string(m_bounds[i]));
    }
    for (std::size_t i = 0; i <= m_bounds.size(); ++i) {
        char number[max_float];
        const double bound =
            i < m_bounds.size() ? m_bounds[i] : std::numeric_limits<double>::infinity();
        const char* end = write_go_float(number, bound);
        const char* begin = number;
        std::string le = ",le=\"";
        le.append(begin, end);
        le += "\"} ";
        m_le_max = std::max(m_le_max, le.size());
        m_le.push_back(std::move(le));
    }
}

target_metrics continuous_metrics::make_target(const target_spec& spec) const {
    target_metrics m;
    m.label_set = target_label_set(spec);
    m.buckets = std::make_unique<std::uint64_t[]>(m_bounds.size() + 1);
    return m;
}

void continuous_metrics::observe_reply(target_metrics& m, std::chrono::nanoseconds rtt,
                                       std::uint8_t ttl) const {
    // As client_golang: the first bucket whose bound is >= the value.
    const double seconds = std::chrono::duration<double>(rtt).count();
    const auto bucket = std::lower_bound(m_bounds.begin(), m_bounds.end(), seconds);
    ++m.buckets[static_cast<std::size_t>(bucket - m_bounds.begin())];
    ++m.received;
    m.rtt_sum_seconds += seconds;
    m.ttl = ttl;
}

namespace {

/// The per-target families in page order (render_rows' switch follows it).
constexpr std::array<family_info, 9> target_families{{
    {requests_name, exposition::kind::counter, requests_help},
    {duration_name, exposition::kind::histogram, duration_help},
    {duplicates_name, exposition::kind::counter, duplicates_help},
    {ttl_name, exposition::kind::gauge, ttl_help},
    {send_errors_name, exposition::kind::counter, send_errors_help},
    {timeouts_name, exposition::kind::counter, timeouts_help},
    {late_name, exposition::kind::counter, late_help},
    {icmp_errors_name, exposition::kind::counter, icmp_errors_help},
    {in_flight_name, exposition::kind::gauge, in_flight_help},
}};

} // namespace

std::size_t continuous_metrics::family_count() noexcept {
    return target_families.size();
}

family_info continuous_metrics::family(std::size_t f) noexcept {
    return target_families[f];
}

void continuous_metrics::render_targets(exposition& page,
                                        std::span<const target_metrics* const> targets) const {
    for (std::size_t f = 0; f < target_families.size(); ++f) {
        const family_info& info = target_families[f];
        render_rows(page.samples(page.family(info.name, info.kind, info.help)), f, targets);
    }
}

void continuous_metrics::render_rows(std::string& out, std::size_t f,
                                     std::span<const target_metrics* const> targets) const {
    if (targets.empty())
        return;
    const std::string_view name = target_families[f].name;
    switch (f) {
    case 0:
        return simple_family(out, name, targets, [](const target_metrics& t) { return t.sent; });
    case 1:
        return render_histogram(out, targets);
    case 2:
        return simple_family(out, name, targets,
                             [](const target_metrics& t) { return t.duplicates; });
    case 3:
        return simple_family(out, name, targets,
                             [](const target_metrics& t) { return std::uint64_t{t.ttl}; });
    case 4:
        return simple_family(out, name, targets,
                             [](const target_metrics& t) { return t.send_errors; });
    case 5:
        return simple_family(out, name, targets,
                             [](const target_metrics& t) { return t.timeouts; });
    case 6:
        return simple_family(out, name, targets,
                             [](const target_metrics& t) { return t.late_replies; });
    case 7:
        return icmp_errors_family(out, targets);
    case 8:
        return simple_family(out, name, targets,
                             [](const target_metrics& t) { return std::uint64_t{t.in_flight}; });
    default:
        throw std::out_of_range("continuous_metrics: no family " + std::to_string(f));
    }
}

void continuous_metrics::render_histogram(std::string& out,
                                          std::span<const target_metrics* const> targets) const {
    const std::size_t lines = m_le.size();
    // A bound on one target's lines, its label sets aside.
    const std::size_t fixed = lines * (bucket_name.size() + m_le_max + max_integer + 1) +
                              sum_name.size() + max_float + 2 + count_name.size() + max_integer + 2;
    line_writer w(out, targets.size() * fixed + label_bytes(targets) * (lines + 2));
    for (const target_metrics* t : targets) {
        w.room(fixed + t->label_set.size() * (lines + 2));
        const std::string_view bucket_stem = stem(t->label_set);
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < lines; ++i) {
            cumulative += t->buckets[i];
            w.put(bucket_name);
            w.put(bucket_stem);
            w.put(m_le[i]);
            w.put_integer(cumulative);
            w.put('\n');
        }
        w.put(sum_name);
        w.put(t->label_set);
        w.put(' ');
        w.put_float(t->rtt_sum_seconds);
        w.put('\n');
        w.put(count_name);
        w.put(t->label_set);
        w.put(' ');
        w.put_integer(t->received);
        w.put('\n');
    }
}

namespace {

struct engine_family {
    std::string_view name;
    exposition::kind k;
    std::string_view help;
    std::uint64_t ie::engine_stats::*field;
};

constexpr std::array<engine_family, 13> engine_families{{
    {"icmpengine_exporter_engine_sent_total", exposition::kind::counter,
     "Echo requests the engine accepted.", &ie::engine_stats::sent},
    {"icmpengine_exporter_engine_replies_total", exposition::kind::counter,
     "Pings that ended with an echo reply in time.", &ie::engine_stats::replies},
    {"icmpengine_exporter_engine_timeouts_total", exposition::kind::counter,
     "Pings that ended without an answer before their timeout.", &ie::engine_stats::timeouts},
    {"icmpengine_exporter_engine_icmp_errors_total", exposition::kind::counter,
     "Pings that ended with an ICMP error.", &ie::engine_stats::icmp_errors},
    {"icmpengine_exporter_engine_send_errors_total", exposition::kind::counter,
     "Pings whose request could not be sent.", &ie::engine_stats::send_errors},
    {"icmpengine_exporter_engine_cancelled_total", exposition::kind::counter,
     "Pings cancelled (target removed, or shutting down).", &ie::engine_stats::cancelled},
    {"icmpengine_exporter_engine_in_flight", exposition::kind::gauge,
     "Pings accepted and not yet ended.", &ie::engine_stats::in_flight},
    {"icmpengine_exporter_engine_late_replies_total", exposition::kind::counter,
     "Genuine replies (or ICMP errors) to pings that had already ended.",
     &ie::engine_stats::late_replies},
    {"icmpengine_exporter_engine_duplicate_replies_total", exposition::kind::counter,
     "Further replies to pings already answered.", &ie::engine_stats::duplicate_replies},
    {"icmpengine_exporter_engine_invalid_packets_total", exposition::kind::counter,
     "Packets dropped as malformed, truncated, forged or mismatching.",
     &ie::engine_stats::invalid_packets},
    {"icmpengine_exporter_engine_foreign_packets_total", exposition::kind::counter,
     "Well-formed ICMP packets not about our requests.", &ie::engine_stats::foreign_packets},
    {"icmpengine_exporter_engine_receive_overruns_total", exposition::kind::counter,
     "Packets the kernel dropped because the engine's socket buffer was full.",
     &ie::engine_stats::receive_overruns},
    {"icmpengine_exporter_engine_submissions_total", exposition::kind::counter,
     "io_uring_enter calls that submitted work.", &ie::engine_stats::submissions},
}};

} // namespace

void add_engine_stats(ie::engine_stats& into, const ie::engine_stats& from) noexcept {
    for (const engine_family& f : engine_families)
        into.*f.field += from.*f.field;
}

void render_prober_metrics(exposition& page, std::span<const engine_metrics_row> engines,
                           std::uint64_t receive_errors, std::size_t targets) {
    append_sample(page.samples(page.family(receive_errors_name, exposition::kind::counter,
                                           receive_errors_help)),
                  receive_errors_name, "", receive_errors);
    append_sample(page.samples(page.family(targets_name, exposition::kind::gauge, targets_help)),
                  targets_name, "", std::uint64_t{targets});
    for (const engine_family& f : engine_families) {
        std::string& out = page.samples(page.family(f.name, f.k, f.help));
        for (const engine_metrics_row& row : engines)
            append_sample(out, f.name, row.label_set, row.stats.*f.field);
    }
}

} // namespace icmpengine_exporter
