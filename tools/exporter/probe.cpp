// SPDX-License-Identifier: MIT
// Probe mode's pure logic: the allow-list (--probe.allow) and the /probe
// query. No socket here; probe_runner.cpp pings, probe_render.cpp writes
// the page, probe_handler.cpp puts the three together for GET /probe.
#include "probe.hpp"
#include "text.hpp"

#include <icmpengine/limits.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <limits>

namespace icmpengine_exporter {

namespace {

// ---- addresses and prefixes -------------------------------------------

/// ::ffff:a.b.c.d as the IPv4 address it carries (RFC 4291 2.5.5.2).
std::optional<ie::ip_address> unmapped_v4(const ie::ip_address& a) {
    if (!a.is_v6())
        return std::nullopt;
    const auto& b = a.bytes();
    for (std::size_t i = 0; i < 10; ++i)
        if (b[i] != 0)
            return std::nullopt;
    if (b[10] != 0xff || b[11] != 0xff)
        return std::nullopt;
    return ie::ip_address::from_v4_bytes({b[12], b[13], b[14], b[15]});
}

/// True if the first `length` bits of a and b agree (address bytes only:
/// a scope id does not take part).
bool same_prefix(const ie::ip_address& a, const ie::ip_address& b, unsigned length) {
    const auto& x = a.bytes();
    const auto& y = b.bytes();
    const unsigned whole = length / 8;
    for (unsigned i = 0; i < whole; ++i)
        if (x[i] != y[i])
            return false;
    const unsigned rest = length % 8;
    if (rest == 0)
        return true;
    const auto mask = static_cast<std::uint8_t>(0xff00u >> rest);
    return (x[whole] & mask) == (y[whole] & mask);
}

/// `a` with every bit after the first `length` cleared.
ie::ip_address masked(const ie::ip_address& a, unsigned length) {
    std::array<std::uint8_t, 16> b = a.bytes();
    for (unsigned bit = length; bit < 128; ++bit)
        b[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
    if (a.is_v4())
        return ie::ip_address::from_v4_bytes({b[0], b[1], b[2], b[3]});
    return ie::ip_address::from_v6_bytes(b);
}

template <typename T>
std::optional<T> parse_decimal(std::string_view s) {
    if (s.empty() || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
    T value{};
    const auto r = std::from_chars(s.data(), s.data() + s.size(), value);
    if (r.ec != std::errc() || r.ptr != s.data() + s.size())
        return std::nullopt;
    return value;
}

} // namespace

allow_list::allow_list()
    : m_prefixes{{ie::ip_address::from_v4(0x7f000000u), 8}, {ie::ip_address::parse("::1"), 128}} {}

std::optional<allow_list> allow_list::parse(std::string_view text, std::string& error) {
    allow_list list;
    list.m_prefixes.clear();
    if (trim(text).empty())
        return list; // an empty --probe.allow allows nothing
    while (true) {
        const std::size_t comma = text.find(',');
        const std::string_view entry = trim(text.substr(0, comma));
        const std::size_t slash = entry.find('/');
        std::optional<ie::ip_address> address = ie::ip_address::try_parse(entry.substr(0, slash));
        std::optional<unsigned> length;
        if (address)
            length = slash == std::string_view::npos
                         ? (address->is_v4() ? 32u : 128u)
                         : parse_decimal<unsigned>(entry.substr(slash + 1));
        if (!address || !length || *length > (address->is_v4() ? 32u : 128u)) {
            error = "--probe.allow: '" + std::string(entry) + "' is not a prefix";
            return std::nullopt;
        }
        // ::ffff:10.0.0.0/104 is 10.0.0.0/8: mapped addresses are checked as IPv4.
        if (const auto v4 = unmapped_v4(*address); v4 && *length >= 96) {
            address = v4;
            *length -= 96;
        }
        list.m_prefixes.push_back({masked(*address, *length), *length});
        if (comma == std::string_view::npos)
            break;
        text.remove_prefix(comma + 1);
    }
    return list;
}

bool allow_list::allows(const ie::ip_address& a) const noexcept {
    const ie::ip_address checked = unmapped_v4(a).value_or(a);
    return std::any_of(m_prefixes.begin(), m_prefixes.end(), [&](const prefix& p) {
        return p.network.family() == checked.family() && same_prefix(p.network, checked, p.length);
    });
}

std::string allow_list::to_string() const {
    std::string out;
    for (const prefix& p : m_prefixes) {
        if (!out.empty())
            out += ',';
        out += p.network.to_string();
        out += '/';
        out += std::to_string(p.length);
    }
    return out;
}

// ---- durations ------------------------------------------------------------

namespace {

/// "1s", "200ms", "2.5s": for reasons and help.
std::string format_duration(std::chrono::nanoseconds d) {
    using namespace std::chrono;
    if (d % seconds(1) == nanoseconds(0))
        return fmt::format("{}s", duration_cast<seconds>(d).count());
    if (d % milliseconds(1) == nanoseconds(0) && d < seconds(1))
        return fmt::format("{}ms", duration_cast<milliseconds>(d).count());
    return fmt::format("{}s", duration<double>(d).count());
}

bool is_plain_number(std::string_view s) {
    return !s.empty() && s.find_first_not_of("0123456789.") == std::string_view::npos &&
           std::count(s.begin(), s.end(), '.') <= 1 && s != ".";
}

// ---- the query ---------------------------------------------------------------

int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/// application/x-www-form-urlencoded decoding: %XX and '+' as a space.
bool percent_decode(std::string_view in, std::string& out) {
    out.clear();
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] == '+') {
            out += ' ';
        } else if (in[i] != '%') {
            out += in[i];
        } else {
            if (i + 2 >= in.size())
                return false;
            const int hi = hex_value(in[i + 1]);
            const int lo = hex_value(in[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            out += static_cast<char>(hi * 16 + lo);
            i += 2;
        }
    }
    return true;
}

bool is_host_name(std::string_view name) {
    if (name.empty() || name.size() > 253)
        return false;
    if (name.back() == '.')
        name.remove_suffix(1); // the root: "example.com."
    std::size_t label = 0;
    for (const char c : name) {
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '-' || c == '_';
        if (!ok || ++label > 63)
            return false;
    }
    return label > 0;
}

/// The host part of `target`: "[v6]" and "[v6]:port" lose brackets and
/// port, "v4:port" and "name:port" lose the port (Prometheus's relabelled
/// __address__ carries one), an IPv6 literal without brackets is taken
/// whole (its colons are not a port). nullopt if it is none of these.
std::optional<std::string> target_host(std::string_view target) {
    const auto port_ok = [](std::string_view port) {
        const auto p = parse_decimal<std::uint32_t>(port);
        return p && *p <= 65535 && port.size() <= 5;
    };
    if (!target.empty() && target.front() == '[') {
        const std::size_t close = target.find(']');
        if (close == std::string_view::npos)
            return std::nullopt;
        const std::string_view inside = target.substr(1, close - 1);
        const std::string_view after = target.substr(close + 1);
        const auto a = ie::ip_address::try_parse(inside);
        if (!a || !a->is_v6() || !(after.empty() || (after[0] == ':' && port_ok(after.substr(1)))))
            return std::nullopt;
        return std::string(inside);
    }
    const std::size_t colons =
        static_cast<std::size_t>(std::count(target.begin(), target.end(), ':'));
    if (colons >= 2) {
        if (!ie::ip_address::try_parse(target))
            return std::nullopt;
        return std::string(target);
    }
    std::string_view host = target;
    if (colons == 1) {
        const std::size_t colon = target.find(':');
        if (!port_ok(target.substr(colon + 1)))
            return std::nullopt;
        host = target.substr(0, colon);
    }
    if (ie::ip_address::try_parse(host) || is_host_name(host))
        return std::string(host);
    return std::nullopt;
}

/// "name: 'value' what", on one line whatever the client sent: control
/// bytes in the value shown as \xNN, and at most 100 bytes of it.
std::string bad_value(std::string_view name, std::string_view value, std::string_view what) {
    constexpr std::size_t shown = 100;
    std::string v;
    for (const char c : value.substr(0, shown)) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f)
            v += fmt::format("\\x{:02x}", u);
        else
            v += c;
    }
    if (value.size() > shown)
        v += "...";
    return fmt::format("{}: '{}' {}", name, v, what);
}

} // namespace

namespace {

enum parameter : std::size_t {
    p_target,
    p_count,
    p_interval,
    p_timeout,
    p_size,
    p_ttl,
    p_ip_protocol,
    p_preferred_ip_protocol, // blackbox's module setting, accepted as a synonym
    parameter_count,
};
constexpr std::array<std::string_view, parameter_count> parameter_names{
    "target", "count", "interval", "timeout", "size", "ttl", "ip_protocol", "preferred_ip_protocol",
};
using parameter_values = std::array<std::optional<std::string>, parameter_count>;

/// Splits and decodes the query; known parameters into `values`, others
/// ignored. An error (the 400 reason) or "".
std::string read_parameters(std::string_view query, parameter_values& values) {
    std::string name;
    std::string value;
    while (!query.empty()) {
        const std::size_t amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        query.remove_prefix(amp == std::string_view::npos ? query.size() : amp + 1);
        if (pair.empty())
            continue;
        const std::size_t eq = pair.find('=');
        if (!percent_decode(pair.substr(0, eq), name) ||
            !percent_decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1),
                            value))
            return bad_value("query", pair, "is not valid percent-encoding");
        const auto known = std::find(parameter_names.begin(), parameter_names.end(), name);
        if (known == parameter_names.end())
            continue; // module, debug, ...: not ours
        auto& slot = values[static_cast<std::size_t>(known - parameter_names.begin())];
        if (slot)
            return name + ": given twice";
        slot = value;
    }
    if (values[p_ip_protocol] && values[p_preferred_ip_protocol])
        return "ip_protocol: given twice (also as preferred_ip_protocol)";
    return {};
}

template <typename T>
std::string read_number(const parameter_values& values, parameter p, T min, T max, T& out) {
    if (!values[p])
        return {};
    const std::string& text = *values[p];
    const auto n = parse_decimal<std::uint64_t>(text);
    if (!n || *n < static_cast<std::uint64_t>(min) || *n > static_cast<std::uint64_t>(max))
        return bad_value(parameter_names[p], text, fmt::format("is not in {}..{}", min, max));
    out = static_cast<T>(*n);
    return {};
}

std::string read_interval(const parameter_values& values, const probe_limits& limits,
                          probe_request& r) {
    if (!values[p_interval])
        return {};
    const std::string& text = *values[p_interval];
    const auto d = parse_go_duration(text);
    if (!d)
        return bad_value("interval", text, "is not a duration (1s, 200ms, ...)");
    if (*d < limits.min_interval)
        return bad_value("interval", text,
                         "is below the minimum " + format_duration(limits.min_interval));
    r.interval = *d;
    return {};
}

/// The timeout when the query does not give one: Prometheus's scrape
/// timeout less 0.5 s (blackbox's offset; the whole scrape timeout if it is
/// shorter than that), else limits.default_timeout; at most max_timeout.
std::string default_timeout(std::string_view header, const probe_limits& limits,
                            std::chrono::nanoseconds& out) {
    out = std::min(limits.default_timeout, limits.max_timeout);
    header = trim(header);
    if (header.empty())
        return {};
    double seconds = 0;
    const auto r = std::from_chars(header.data(), header.data() + header.size(), seconds);
    if (r.ec != std::errc() || r.ptr != header.data() + header.size() || !std::isfinite(seconds) ||
        seconds < 0)
        return bad_value("X-Prometheus-Scrape-Timeout-Seconds", header,
                         "is not a number of seconds");
    if (seconds == 0)
        return {}; // as blackbox: 0 says nothing
    const double budget = seconds > 0.5 ? seconds - 0.5 : seconds;
    const double max = std::chrono::duration<double>(limits.max_timeout).count();
    out = budget >= max ? limits.max_timeout
                        : std::chrono::duration_cast<std::chrono::nanoseconds>(
                              std::chrono::duration<double>(budget));
    if (out <= std::chrono::nanoseconds(0))
        out = std::chrono::nanoseconds(1);
    return {};
}

std::string read_timeout(const parameter_values& values, std::string_view header,
                         const probe_limits& limits, probe_request& r) {
    if (!values[p_timeout])
        return default_timeout(header, limits, r.timeout);
    const std::string& text = *values[p_timeout];
    const auto d = is_plain_number(text) ? parse_go_duration(text + "s") : parse_go_duration(text);
    if (!d)
        return bad_value("timeout", text, "is not a duration (2s, 500ms) or a number of seconds");
    if (*d <= std::chrono::nanoseconds(0))
        return bad_value("timeout", text, "is not positive");
    if (*d > limits.max_timeout)
        return bad_value("timeout", text,
                         "is above the maximum " + format_duration(limits.max_timeout));
    r.timeout = *d;
    return {};
}

std::string read_ip_protocol(const parameter_values& values, probe_request& r) {
    const parameter p = values[p_preferred_ip_protocol] ? p_preferred_ip_protocol : p_ip_protocol;
    if (!values[p])
        return {};
    const std::string& text = *values[p];
    if (text == "ip4")
        r.ip_protocol = network_kind::ip4;
    else if (text == "ip6")
        r.ip_protocol = network_kind::ip6;
    else if (text == "ip")
        r.ip_protocol = network_kind::ip;
    else
        return bad_value(parameter_names[p], text, "is not ip4, ip6 or ip");
    return {};
}

} // namespace

std::variant<probe_request, std::string> parse_probe_query(std::string_view query,
                                                           std::string_view scrape_timeout_header,
                                                           const probe_limits& limits) {
    parameter_values values;
    if (std::string e = read_parameters(query, values); !e.empty())
        return e;
    if (!values[p_target] || values[p_target]->empty())
        return std::string("target: missing (/probe?target=ADDRESS-OR-NAME)");
    probe_request r;
    const auto host = target_host(*values[p_target]);
    if (!host)
        return bad_value("target", *values[p_target], "is not an address or a host name");
    r.target = *host;
    const std::uint32_t max_count = std::max<std::uint32_t>(limits.max_count, 1);
    for (std::string e :
         {read_number(values, p_count, std::uint32_t{1}, max_count, r.count),
          read_interval(values, limits, r), read_timeout(values, scrape_timeout_header, limits, r),
          read_number(values, p_size, std::uint32_t{0}, ie::max_payload_size, r.size),
          read_number(values, p_ttl, std::uint8_t{1}, std::uint8_t{255}, r.ttl),
          read_ip_protocol(values, r)})
        if (!e.empty())
            return e;
    // The pings' sends must all fall inside the budget, the last one with
    // time left to wait for its reply.
    const auto sends = (r.count - 1) * r.interval;
    if (sends >= r.timeout)
        return fmt::format("timeout: {} pings {} apart do not fit in {}{}: (count - 1) * interval "
                           "must be below the timeout",
                           r.count, format_duration(r.interval), format_duration(r.timeout),
                           values[p_timeout] ? ""
                                             : " (the scrape timeout less 0.5s, or the default)");
    return r;
}

} // namespace icmpengine_exporter
