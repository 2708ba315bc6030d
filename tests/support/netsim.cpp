// SPDX-License-Identifier: MIT
#include "netsim.hpp"

#include "netns.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <bit>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <numbers>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sstream>
#include <stdexcept>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace icmpengine::testing {

using namespace std::chrono_literals;
using std::chrono::nanoseconds;

namespace {

constexpr std::uint8_t proto_icmp = 1;
constexpr std::uint8_t proto_icmpv6 = 58;
// RFC 792 and RFC 4443 message types.
constexpr std::uint8_t icmp4_echo_reply = 0;
constexpr std::uint8_t icmp4_unreachable = 3;
constexpr std::uint8_t icmp4_echo_request = 8;
constexpr std::uint8_t icmp4_time_exceeded = 11;
constexpr std::uint8_t icmp6_unreachable = 1;
constexpr std::uint8_t icmp6_time_exceeded = 3;
constexpr std::uint8_t icmp6_echo_request = 128;
constexpr std::uint8_t icmp6_echo_reply = 129;
// RFC 1812 4.3.2.3 / RFC 4443 2.4(c): an ICMP error carries as much of the
// offending packet as fits in 576 bytes (v4) or the minimum MTU (v6).
constexpr std::size_t icmp4_error_max = 576;
constexpr std::size_t icmp6_error_max = 1280;
constexpr std::size_t ipv4_header = 20;
constexpr std::size_t ipv6_header = 40;
constexpr std::size_t icmp_header = 8;
constexpr std::size_t max_other_packets = 65536;
constexpr std::uint64_t no_index = ~std::uint64_t{0};

constexpr std::array<std::string_view, corruption_kinds> corruption_names = {
    "checksum", "truncate", "type", "code", "sequence", "identifier", "token", "source"};
constexpr std::array<std::string_view, icmp_error_kinds> error_names = {"unreach", "ttl"};

std::string errno_text(const std::string& what) {
    return what + ": " + std::strerror(errno);
}

// ---------------------------------------------------------------- checksums

std::uint32_t sum16(const std::uint8_t* p, std::size_t n, std::uint32_t sum = 0) {
    for (; n > 1; p += 2, n -= 2)
        sum += static_cast<std::uint32_t>(p[0] << 8 | p[1]);
    if (n == 1)
        sum += static_cast<std::uint32_t>(p[0] << 8);
    return sum;
}

std::uint16_t fold(std::uint32_t sum) {
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<std::uint16_t>(~sum & 0xffff);
}

void put16(std::uint8_t* p, std::uint16_t v) {
    p[0] = static_cast<std::uint8_t>(v >> 8);
    p[1] = static_cast<std::uint8_t>(v);
}

std::uint16_t get16(const std::uint8_t* p) {
    return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}

/// Wraps an ICMP / ICMPv6 message (whose checksum field is zero) in an IP
/// header and fills in the checksums: RFC 792 for ICMPv4, RFC 4443 2.3 (with
/// the RFC 8200 8.1 pseudo-header) for ICMPv6.
std::vector<std::uint8_t> ip_packet(const sim_address& src, const sim_address& dst,
                                    std::uint8_t ttl, std::uint16_t ip_id,
                                    std::vector<std::uint8_t> icmp, std::uint8_t tos = 0) {
    std::vector<std::uint8_t> out;
    if (src.family == AF_INET) {
        out.resize(ipv4_header + icmp.size());
        std::uint8_t* h = out.data();
        h[0] = 0x45;
        h[1] = tos;
        put16(h + 2, static_cast<std::uint16_t>(out.size()));
        put16(h + 4, ip_id);
        h[8] = ttl;
        h[9] = proto_icmp;
        std::memcpy(h + 12, src.bytes.data(), 4);
        std::memcpy(h + 16, dst.bytes.data(), 4);
        put16(h + 10, fold(sum16(h, ipv4_header)));
        put16(icmp.data() + 2, fold(sum16(icmp.data(), icmp.size())));
        std::memcpy(h + ipv4_header, icmp.data(), icmp.size());
    } else {
        out.resize(ipv6_header + icmp.size());
        std::uint8_t* h = out.data();
        h[0] = static_cast<std::uint8_t>(0x60 | tos >> 4);
        h[1] = static_cast<std::uint8_t>((tos & 0x0f) << 4);
        put16(h + 4, static_cast<std::uint16_t>(icmp.size()));
        h[6] = proto_icmpv6;
        h[7] = ttl;
        std::memcpy(h + 8, src.bytes.data(), 16);
        std::memcpy(h + 24, dst.bytes.data(), 16);
        std::uint32_t sum = sum16(h + 8, 32);
        sum += static_cast<std::uint32_t>(icmp.size() >> 16) +
               static_cast<std::uint32_t>(icmp.size() & 0xffff);
        sum += proto_icmpv6;
        put16(icmp.data() + 2, fold(sum16(icmp.data(), icmp.size(), sum)));
        std::memcpy(h + ipv6_header, icmp.data(), icmp.size());
    }
    return out;
}

std::size_t ip_header_size(int family) {
    return family == AF_INET ? ipv4_header : ipv6_header;
}

/// Makes the ICMP checksum of a packet built by ip_packet() wrong. Any
/// nonzero XOR mask below 0xffff changes the field by less than 0xffff, so
/// the one's complement sum can no longer verify.
void break_checksum(std::vector<std::uint8_t>& packet, int family) {
    packet[ip_header_size(family) + 3] ^= 0xff;
}

// ---------------------------------------------------------------- randomness

std::uint64_t splitmix(std::uint64_t& state) {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/// A small generator with a fixed algorithm (unlike std:: distributions), so
/// a seed replays the same decisions with any standard library.
class decision_rng {
  public:
    decision_rng(std::uint64_t seed, std::uint64_t stream, const sim_address& a,
                 std::uint64_t count) {
        m_state = seed;
        splitmix(m_state);
        m_state ^= stream * 0xd1b54a32d192ed03ULL;
        splitmix(m_state);
        for (std::size_t i = 0; i < a.size(); ++i)
            m_state = (m_state ^ a.bytes[i]) * 0x100000001b3ULL;
        m_state ^= count * 0x9e3779b97f4a7c15ULL;
        splitmix(m_state);
    }
    std::uint64_t next() { return splitmix(m_state); }
    /// In [0, 1).
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  private:
    std::uint64_t m_state;
};

constexpr std::uint64_t stream_requests = 1;
constexpr std::uint64_t stream_unsolicited = 2;

nanoseconds sample_delay(const delay_spec& d, double u1, double u2) {
    double ns = 0;
    const auto a = static_cast<double>(d.a.count());
    const auto b = static_cast<double>(d.b.count());
    switch (d.kind) {
    case delay_kind::fixed:
        ns = a;
        break;
    case delay_kind::uniform:
        ns = a + u1 * (b - a);
        break;
    case delay_kind::normal: // Box-Muller
        ns = a + b * std::sqrt(-2.0 * std::log1p(-u1)) * std::cos(2.0 * std::numbers::pi * u2);
        break;
    case delay_kind::exponential:
        ns = -a * std::log1p(-u1);
        break;
    }
    return nanoseconds(static_cast<std::int64_t>(std::llround(std::max(ns, 0.0))));
}

// ---------------------------------------------------------------- text

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
        s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
        s.remove_suffix(1);
    return s;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> parts;
    while (true) {
        auto pos = s.find(sep);
        parts.push_back(s.substr(0, pos));
        if (pos == std::string_view::npos)
            return parts;
        s.remove_prefix(pos + 1);
    }
}

[[noreturn]] void bad_token(std::string_view token, const std::string& why) {
    throw std::invalid_argument("netsim profile: bad token '" + std::string(token) + "': " + why);
}

std::optional<double> to_double(std::string_view s) {
    double v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || end != s.data() + s.size() || !std::isfinite(v))
        return std::nullopt;
    return v;
}

std::optional<std::int64_t> to_int(std::string_view s) {
    std::int64_t v = 0;
    int base = 10;
    if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s.remove_prefix(2);
        base = 16;
    }
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
    if (ec != std::errc{} || end != s.data() + s.size() || s.empty())
        return std::nullopt;
    return v;
}

/// Parsing of one knob's value, with the token for error messages.
class knob_parser {
  public:
    knob_parser(std::string_view token, std::string_view value)
        : m_token(token), m_parts(split(value, ':')) {}

    std::size_t count() const { return m_parts.size(); }
    std::string_view part(std::size_t i) const { return m_parts.at(i); }
    void expect(std::size_t min, std::size_t max, const char* usage) const {
        if (m_parts.size() < min || m_parts.size() > max)
            bad_token(m_token, std::string("expected ") + usage);
    }

    double probability(std::size_t i) const {
        auto v = to_double(m_parts.at(i));
        if (!v || *v < 0 || *v > 1)
            bad_token(m_token, "probability '" + std::string(m_parts.at(i)) +
                                   "' must be a number in [0, 1]");
        return *v;
    }

    nanoseconds duration(std::size_t i) const {
        std::string_view s = m_parts.at(i);
        if (s == "0")
            return nanoseconds(0);
        struct unit {
            std::string_view suffix;
            double ns;
        };
        // "ms" before "s" and "ns"/"us" before "s": longest suffix first.
        static constexpr std::array<unit, 4> units = {
            {{"ns", 1.0}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}}};
        for (const unit& u : units) {
            if (s.size() > u.suffix.size() && s.ends_with(u.suffix)) {
                auto v = to_double(s.substr(0, s.size() - u.suffix.size()));
                if (!v || *v < 0 || *v * u.ns > 1e18)
                    break;
                return nanoseconds(static_cast<std::int64_t>(std::llround(*v * u.ns)));
            }
        }
        bad_token(m_token, "duration '" + std::string(s) +
                               "' must be a non-negative number with a unit: ns, us, ms or s");
    }

    std::int64_t integer(std::size_t i, std::int64_t min, std::int64_t max) const {
        auto v = to_int(m_parts.at(i));
        if (!v || *v < min || *v > max)
            bad_token(m_token, "'" + std::string(m_parts.at(i)) + "' must be an integer in [" +
                                   std::to_string(min) + ", " + std::to_string(max) + "]");
        return *v;
    }

    /// The parts from i on, joined back with ':' (an IPv6 address).
    std::string_view rest(std::size_t i) const {
        if (i >= m_parts.size())
            return {};
        const char* begin = m_parts[i].data();
        const char* end = m_parts.back().data() + m_parts.back().size();
        return {begin, static_cast<std::size_t>(end - begin)};
    }

    sim_address address_rest(std::size_t i) const {
        try {
            return sim_address::parse(rest(i));
        } catch (const std::invalid_argument& e) {
            bad_token(m_token, e.what());
        }
    }

  private:
    std::string_view m_token;
    std::vector<std::string_view> m_parts;
};

void parse_knob(std::string_view token, profile_layer& layer, const sim_prefix* target) {
    const auto eq = token.find('=');
    if (eq == std::string_view::npos)
        bad_token(token, "expected NAME=VALUE");
    const std::string_view name = trim(token.substr(0, eq));
    const std::string_view value = trim(token.substr(eq + 1));
    if (value.empty())
        bad_token(token, "empty value");
    knob_parser k(token, value);

    if (name == "delay") {
        delay_spec d;
        std::string_view kind = k.part(0);
        if (kind == "fixed") {
            k.expect(2, 2, "delay=fixed:D");
            d.a = k.duration(1);
        } else if (kind == "uniform") {
            k.expect(3, 3, "delay=uniform:A:B");
            d.kind = delay_kind::uniform;
            d.a = k.duration(1);
            d.b = k.duration(2);
            if (d.b < d.a)
                bad_token(token, "uniform bounds must be in order, A <= B");
        } else if (kind == "normal") {
            k.expect(3, 3, "delay=normal:MEAN:SD");
            d.kind = delay_kind::normal;
            d.a = k.duration(1);
            d.b = k.duration(2);
        } else if (kind == "exp") {
            k.expect(2, 2, "delay=exp:MEAN");
            d.kind = delay_kind::exponential;
            d.a = k.duration(1);
        } else if (k.count() == 1) {
            d.a = k.duration(0);
        } else {
            bad_token(token, "unknown delay distribution '" + std::string(kind) +
                                 "' (fixed, uniform, normal, exp)");
        }
        layer.delay = d;
    } else if (name == "loss") {
        k.expect(1, 1, "loss=P");
        layer.loss = k.probability(0);
    } else if (name == "late") {
        k.expect(2, 2, "late=P:D");
        layer.late = late_spec{k.probability(0), k.duration(1)};
    } else if (name == "dup") {
        k.expect(1, 3, "dup=P[:N[:GAP]]");
        duplicate_spec d;
        d.probability = k.probability(0);
        if (k.count() > 1)
            d.copies = static_cast<unsigned>(k.integer(1, 1, 100));
        if (k.count() > 2)
            d.gap = k.duration(2);
        layer.duplicate = d;
    } else if (name == "reorder") {
        k.expect(1, 2, "reorder=P[:MAXHOLD]");
        reorder_spec r;
        r.probability = k.probability(0);
        if (k.count() > 1)
            r.max_hold = k.duration(1);
        layer.reorder = r;
    } else if (name == "corrupt") {
        k.expect(2, 99, "corrupt=KIND:P[:ARG]");
        const std::string_view kind = k.part(0);
        auto it = std::find(corruption_names.begin(), corruption_names.end(), kind);
        if (it == corruption_names.end())
            bad_token(token, "unknown corruption '" + std::string(kind) +
                                 "' (checksum, truncate, type, code, sequence, identifier, "
                                 "token, source)");
        const corruption c = corruption_at(static_cast<std::size_t>(it - corruption_names.begin()));
        corruption_spec spec;
        spec.probability = k.probability(1);
        if (c == corruption::source) {
            if (k.count() > 2) {
                sim_address a = k.address_rest(2);
                (a.family == AF_INET ? spec.source_v4 : spec.source_v6) = a;
            }
        } else if (k.count() > 3) {
            bad_token(token, "expected corrupt=KIND:P[:ARG]");
        } else if (k.count() == 3) {
            switch (c) {
            case corruption::truncate:
                spec.argument = k.integer(2, 0, 65535);
                break;
            case corruption::type:
            case corruption::code:
                spec.argument = k.integer(2, 0, 255);
                break;
            case corruption::sequence:
            case corruption::identifier:
                spec.argument = k.integer(2, 1, 65535);
                break;
            default:
                bad_token(token, "corrupt=" + std::string(kind) + " takes no argument");
            }
        }
        layer.corruptions[static_cast<std::size_t>(it - corruption_names.begin())] = spec;
    } else if (name == "error") {
        k.expect(2, 3, "error=KIND:P[:CODE]");
        auto it = std::find(error_names.begin(), error_names.end(), k.part(0));
        if (it == error_names.end())
            bad_token(token, "unknown error '" + std::string(k.part(0)) + "' (unreach, ttl)");
        icmp_error_spec e;
        e.probability = k.probability(1);
        if (k.count() > 2)
            e.code = static_cast<std::uint8_t>(k.integer(2, 0, 255));
        layer.errors[static_cast<std::size_t>(it - error_names.begin())] = e;
        double sum = 0;
        for (const auto& x : layer.errors)
            sum += x ? x->probability : 0;
        if (sum > 1 + 1e-12)
            bad_token(token, "error probabilities of one section add up to more than 1");
    } else if (name == "router") {
        sim_address a = k.address_rest(0);
        (a.family == AF_INET ? layer.router_v4 : layer.router_v6) = a;
    } else if (name == "ttl") {
        k.expect(1, 1, "ttl=N");
        layer.ttl = static_cast<std::uint8_t>(k.integer(0, 1, 255));
    } else if (name == "unsolicited") {
        if (target == nullptr || target->length != target->address.size() * 8)
            bad_token(token, "unsolicited needs a section for one address, e.g. "
                             "'198.18.0.9:unsolicited=10'");
        unsolicited_spec u;
        auto rate = to_double(k.part(0));
        if (!rate || *rate <= 0 || *rate > 1e6)
            bad_token(token, "rate '" + std::string(k.part(0)) +
                                 "' must be a number of packets per second in (0, 1e6]");
        u.rate = *rate;
        if (k.count() > 1) {
            u.destination = k.address_rest(1);
            if (u.destination->family != target->address.family)
                bad_token(token, "destination and source are of different families");
        }
        layer.unsolicited = u;
    } else {
        bad_token(token, "unknown knob '" + std::string(name) +
                             "' (delay, loss, late, dup, reorder, corrupt, error, router, "
                             "ttl, unsolicited)");
    }
}

std::string format_duration(nanoseconds d) {
    const auto n = d.count();
    if (n == 0)
        return "0";
    if (n % 1'000'000'000 == 0)
        return std::to_string(n / 1'000'000'000) + "s";
    if (n % 1'000'000 == 0)
        return std::to_string(n / 1'000'000) + "ms";
    if (n % 1'000 == 0)
        return std::to_string(n / 1'000) + "us";
    return std::to_string(n) + "ns";
}

/// Shortest text that parses back to the same double.
std::string format_double(double v) {
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    return ec == std::errc{} ? std::string(buf, end) : std::to_string(v);
}

/// A human-readable duration with three significant decimals: "1.002ms".
std::string describe_duration(nanoseconds d) {
    char buf[64];
    const double n = static_cast<double>(d.count());
    if (std::abs(n) < 1e3)
        std::snprintf(buf, sizeof buf, "%.0fns", n);
    else if (std::abs(n) < 1e6)
        std::snprintf(buf, sizeof buf, "%.3fus", n / 1e3);
    else if (std::abs(n) < 1e9)
        std::snprintf(buf, sizeof buf, "%.3fms", n / 1e6);
    else
        std::snprintf(buf, sizeof buf, "%.3fs", n / 1e9);
    return buf;
}

std::string layer_to_string(const profile_layer& l) {
    std::vector<std::string> knobs;
    if (l.delay) {
        const delay_spec& d = *l.delay;
        switch (d.kind) {
        case delay_kind::fixed:
            knobs.push_back("delay=" + format_duration(d.a));
            break;
        case delay_kind::uniform:
            knobs.push_back("delay=uniform:" + format_duration(d.a) + ":" + format_duration(d.b));
            break;
        case delay_kind::normal:
            knobs.push_back("delay=normal:" + format_duration(d.a) + ":" + format_duration(d.b));
            break;
        case delay_kind::exponential:
            knobs.push_back("delay=exp:" + format_duration(d.a));
            break;
        }
    }
    if (l.loss)
        knobs.push_back("loss=" + format_double(*l.loss));
    if (l.late)
        knobs.push_back("late=" + format_double(l.late->probability) + ":" +
                        format_duration(l.late->delay));
    if (l.duplicate)
        knobs.push_back("dup=" + format_double(l.duplicate->probability) + ":" +
                        std::to_string(l.duplicate->copies) + ":" +
                        format_duration(l.duplicate->gap));
    if (l.reorder)
        knobs.push_back("reorder=" + format_double(l.reorder->probability) + ":" +
                        format_duration(l.reorder->max_hold));
    for (std::size_t i = 0; i < corruption_kinds; ++i) {
        const auto& c = l.corruptions[i];
        if (!c)
            continue;
        std::string base =
            "corrupt=" + std::string(corruption_names[i]) + ":" + format_double(c->probability);
        if (corruption_at(i) == corruption::source) {
            if (!c->source_v4 && !c->source_v6)
                knobs.push_back(base);
            if (c->source_v4)
                knobs.push_back(base + ":" + c->source_v4->to_string());
            if (c->source_v6)
                knobs.push_back(base + ":" + c->source_v6->to_string());
        } else {
            knobs.push_back(base + (c->argument ? ":" + std::to_string(*c->argument) : ""));
        }
    }
    for (std::size_t i = 0; i < icmp_error_kinds; ++i) {
        const auto& e = l.errors[i];
        if (e)
            knobs.push_back("error=" + std::string(error_names[i]) + ":" +
                            format_double(e->probability) +
                            (e->code ? ":" + std::to_string(*e->code) : ""));
    }
    if (l.router_v4)
        knobs.push_back("router=" + l.router_v4->to_string());
    if (l.router_v6)
        knobs.push_back("router=" + l.router_v6->to_string());
    if (l.ttl)
        knobs.push_back("ttl=" + std::to_string(*l.ttl));
    if (l.unsolicited)
        knobs.push_back(
            "unsolicited=" + format_double(l.unsolicited->rate) +
            (l.unsolicited->destination ? ":" + l.unsolicited->destination->to_string() : ""));
    std::string out;
    for (const auto& k : knobs)
        out += (out.empty() ? "" : ",") + k;
    return out;
}

/// The transmit-drop counter of a device in the current network namespace,
/// from /proc/self/net/dev (per namespace, unlike /sys/class/net, which shows
/// the namespace that mounted sysfs).
std::uint64_t device_tx_dropped(const std::string& device) {
    std::ifstream in("/proc/self/net/dev");
    std::string line;
    while (std::getline(in, line)) {
        auto colon = line.find(':');
        if (colon == std::string::npos || trim(std::string_view(line).substr(0, colon)) != device)
            continue;
        std::istringstream fields(line.substr(colon + 1));
        std::uint64_t v = 0;
        // rx: bytes packets errs drop fifo frame compressed multicast,
        // tx: bytes packets errs drop ...
        for (int i = 0; i < 12 && (fields >> v); ++i) {
        }
        return v;
    }
    return 0;
}

/// Refuses the initial network namespace: the one with the fixed inode
/// number PROC_NET_INIT_INO (include/linux/proc_ns.h, since Linux 3.8), or
/// pid 1's where that can be read (it often cannot, without ptrace rights).
void check_private_netns() {
    constexpr ino_t proc_net_init_ino = 0xEFFFFFF9U;
    struct stat self {};
    if (::stat("/proc/self/ns/net", &self) != 0)
        throw std::runtime_error(errno_text("network_simulator: cannot tell whether this is a "
                                            "private network namespace: stat /proc/self/ns/net"));
    struct stat init {};
    const bool init_known = ::stat("/proc/1/ns/net", &init) == 0;
    if (self.st_ino == proc_net_init_ino ||
        (init_known && self.st_ino == init.st_ino && self.st_dev == init.st_dev))
        throw std::runtime_error("network_simulator: refusing to run in the initial network "
                                 "namespace; enter a private one first (enter_private_netns())");
}

/// The ranges the simulator may route and use: reserved for benchmarking
/// (RFC 2544) and documentation (RFC 5737, RFC 3849), never real hosts.
bool in_reserved_range(const sim_address& a) {
    static const std::array<sim_prefix, 5> reserved = {
        sim_prefix::parse("198.18.0.0/15"), sim_prefix::parse("192.0.2.0/24"),
        sim_prefix::parse("198.51.100.0/24"), sim_prefix::parse("203.0.113.0/24"),
        sim_prefix::parse("2001:db8::/32")};
    return std::any_of(reserved.begin(), reserved.end(),
                       [&](const sim_prefix& p) { return p.contains(a); });
}

/// Whether the kernel routes `a` as a local address (RTM_GETROUTE, as
/// `ip route get` does, rtnetlink(7)). An IPv6 address is usable as a source
/// a moment before its local route exists: replies to it would be dropped
/// (Ip6InAddrErrors) until then.
bool routes_as_local(const sim_address& a) {
    const int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        return false;
    struct {
        nlmsghdr header;
        rtmsg route;
        alignas(NLMSG_ALIGNTO) std::uint8_t attributes[RTA_SPACE(16)];
    } request{};
    request.header.nlmsg_len = NLMSG_LENGTH(sizeof(rtmsg)) + RTA_LENGTH(a.size());
    request.header.nlmsg_type = RTM_GETROUTE;
    request.header.nlmsg_flags = NLM_F_REQUEST;
    request.route.rtm_family = static_cast<unsigned char>(a.family);
    request.route.rtm_dst_len = static_cast<unsigned char>(a.size() * 8);
    auto* dst = reinterpret_cast<rtattr*>(request.attributes);
    dst->rta_type = RTA_DST;
    dst->rta_len = static_cast<unsigned short>(RTA_LENGTH(a.size()));
    std::memcpy(RTA_DATA(dst), a.bytes.data(), a.size());
    bool local = false;
    if (::send(fd, &request, request.header.nlmsg_len, 0) ==
        static_cast<ssize_t>(request.header.nlmsg_len)) {
        alignas(nlmsghdr) std::uint8_t reply[4096];
        const ssize_t n = ::recv(fd, reply, sizeof reply, 0);
        const auto* h = reinterpret_cast<const nlmsghdr*>(reply);
        if (n >= static_cast<ssize_t>(NLMSG_LENGTH(sizeof(rtmsg))) && h->nlmsg_type == RTM_NEWROUTE)
            local = static_cast<const rtmsg*>(NLMSG_DATA(h))->rtm_type == RTN_LOCAL;
    }
    ::close(fd);
    return local;
}

bool is_safe_device_name(const std::string& name) {
    if (name.empty() || name.size() >= IFNAMSIZ)
        return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    });
}

/// The parsed fields of an echo request read from the TUN device.
struct echo_request {
    sim_address source;
    sim_address target;
    std::uint8_t tos = 0; ///< IPv4 TOS / IPv6 traffic class
    std::uint16_t identifier = 0;
    std::uint16_t sequence = 0;
    const std::uint8_t* payload = nullptr;
    std::size_t payload_size = 0;
    const std::uint8_t* packet = nullptr; ///< the whole IP packet, for quoting
    std::size_t packet_size = 0;
};

/// Classifies a packet: an echo request (filled into `req`), or else an
/// other_packet description.
bool parse_echo_request(const std::uint8_t* p, std::size_t n, echo_request& req,
                        other_packet& other) {
    other.size = n;
    if (n < 1)
        return false;
    const unsigned version = p[0] >> 4;
    if (version == 4 && n >= ipv4_header) {
        other.family = AF_INET;
        const std::size_t ihl = (p[0] & 0x0fu) * 4u;
        const std::size_t total = get16(p + 2);
        other.protocol = p[9];
        if (ihl < ipv4_header || total < ihl || total > n)
            return false;
        const bool fragment = (get16(p + 6) & 0x3fff) != 0;
        if (p[9] != proto_icmp || fragment || total - ihl < icmp_header)
            return false;
        other.icmp_type = p[ihl];
        if (p[ihl] != icmp4_echo_request)
            return false;
        req.source = sim_address::v4(p + 12);
        req.target = sim_address::v4(p + 16);
        req.tos = p[1];
        req.identifier = get16(p + ihl + 4);
        req.sequence = get16(p + ihl + 6);
        req.payload = p + ihl + icmp_header;
        req.payload_size = total - ihl - icmp_header;
        req.packet = p;
        req.packet_size = total;
        return true;
    }
    if (version == 6 && n >= ipv6_header) {
        other.family = AF_INET6;
        const std::size_t total = ipv6_header + get16(p + 4);
        if (total > n)
            return false;
        // Skip hop-by-hop, routing and destination options headers (RFC 8200
        // 4.1) to name the upper-layer protocol; a fragment header stops us.
        std::uint8_t next = p[6];
        std::size_t off = ipv6_header;
        while ((next == 0 || next == 43 || next == 60) && off + 8 <= total) {
            const std::uint8_t following = p[off];
            off += (std::size_t{p[off + 1]} + 1) * 8;
            next = following;
        }
        other.protocol = next;
        if (next != proto_icmpv6 || off + icmp_header > total)
            return false;
        other.icmp_type = p[off];
        if (p[off] != icmp6_echo_request)
            return false;
        req.source = sim_address::v6(p + 8);
        req.target = sim_address::v6(p + 24);
        req.tos = static_cast<std::uint8_t>((get16(p) >> 4) & 0xff);
        req.identifier = get16(p + off + 4);
        req.sequence = get16(p + off + 6);
        req.payload = p + off + icmp_header;
        req.payload_size = total - off - icmp_header;
        req.packet = p;
        req.packet_size = total;
        return true;
    }
    return false;
}

std::vector<std::uint8_t> echo_reply_message(int family, std::uint16_t identifier,
                                             std::uint16_t sequence, const std::uint8_t* payload,
                                             std::size_t payload_size) {
    std::vector<std::uint8_t> m(icmp_header + payload_size);
    m[0] = family == AF_INET ? icmp4_echo_reply : icmp6_echo_reply;
    put16(m.data() + 4, identifier);
    put16(m.data() + 6, sequence);
    if (payload_size > 0)
        std::memcpy(m.data() + icmp_header, payload, payload_size);
    return m;
}

} // namespace

// ---------------------------------------------------------------- addresses

sim_address sim_address::parse(std::string_view text) {
    const std::string s(trim(text));
    sim_address a;
    if (::inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
        a.family = AF_INET;
        return a;
    }
    if (::inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
        a.family = AF_INET6;
        return a;
    }
    throw std::invalid_argument("'" + s + "' is not an IPv4 or IPv6 address");
}

sim_address sim_address::v4(const std::uint8_t* network_order) {
    sim_address a;
    a.family = AF_INET;
    std::memcpy(a.bytes.data(), network_order, 4);
    return a;
}

sim_address sim_address::v6(const std::uint8_t* network_order) {
    sim_address a;
    a.family = AF_INET6;
    std::memcpy(a.bytes.data(), network_order, 16);
    return a;
}

std::string sim_address::to_string() const {
    if (family != AF_INET && family != AF_INET6)
        return "(none)";
    char buf[INET6_ADDRSTRLEN];
    ::inet_ntop(family, bytes.data(), buf, sizeof buf);
    return buf;
}

sim_prefix sim_prefix::parse(std::string_view text) {
    text = trim(text);
    sim_prefix p;
    const auto slash = text.find('/');
    p.address = sim_address::parse(text.substr(0, slash));
    const unsigned bits = static_cast<unsigned>(p.address.size() * 8);
    p.length = bits;
    if (slash != std::string_view::npos) {
        auto len = to_int(text.substr(slash + 1));
        if (!len || *len < 0 || *len > static_cast<std::int64_t>(bits))
            throw std::invalid_argument("'" + std::string(text) + "': prefix length must be 0.." +
                                        std::to_string(bits));
        p.length = static_cast<unsigned>(*len);
    }
    // Clear the host bits, so "198.18.0.1/16" means 198.18.0.0/16.
    for (unsigned i = p.length; i < bits; ++i)
        p.address.bytes[i / 8] &= static_cast<std::uint8_t>(~(0x80u >> (i % 8)));
    return p;
}

bool sim_prefix::contains(const sim_address& a) const noexcept {
    if (a.family != address.family)
        return false;
    for (unsigned i = 0; i < length; ++i) {
        const unsigned mask = 0x80u >> (i % 8);
        if ((a.bytes[i / 8] & mask) != (address.bytes[i / 8] & mask))
            return false;
    }
    return true;
}

sim_address sim_prefix::last_address(unsigned from_end) const {
    sim_address a = address;
    const std::size_t bits = a.size() * 8;
    for (std::size_t i = length; i < bits; ++i)
        a.bytes[i / 8] |= static_cast<std::uint8_t>(0x80u >> (i % 8));
    // Subtract from_end, with borrow.
    unsigned borrow = from_end;
    for (std::size_t i = a.size(); i-- > 0 && borrow != 0;) {
        const unsigned sub = borrow & 0xff;
        borrow >>= 8;
        if (a.bytes[i] < sub)
            ++borrow;
        a.bytes[i] = static_cast<std::uint8_t>(a.bytes[i] - sub);
    }
    return a;
}

std::string sim_prefix::to_string() const {
    return address.to_string() + "/" + std::to_string(length);
}

// ---------------------------------------------------------------- profiles

std::string_view corruption_name(corruption c) {
    for (std::size_t i = 0; i < corruption_kinds; ++i)
        if (corruption_at(i) == c)
            return corruption_names[i];
    return "?";
}

corruption corruption_at(std::size_t i) {
    return static_cast<corruption>(static_cast<std::uint16_t>(1u << i));
}

std::string_view fate_name(request_fate f) {
    switch (f) {
    case request_fate::replied:
        return "replied";
    case request_fate::dropped:
        return "dropped";
    case request_fate::late:
        return "late";
    case request_fate::error:
        return "error";
    }
    return "?";
}

std::string_view write_kind_name(write_kind k) {
    switch (k) {
    case write_kind::reply:
        return "reply";
    case write_kind::duplicate:
        return "duplicate";
    case write_kind::error:
        return "error";
    case write_kind::unsolicited:
        return "unsolicited";
    }
    return "?";
}

void profile_layer::apply(const profile_layer& over) {
    auto take = [](auto& mine, const auto& theirs) {
        if (theirs)
            mine = theirs;
    };
    take(delay, over.delay);
    take(loss, over.loss);
    take(late, over.late);
    take(duplicate, over.duplicate);
    take(reorder, over.reorder);
    for (std::size_t i = 0; i < corruption_kinds; ++i)
        take(corruptions[i], over.corruptions[i]);
    for (std::size_t i = 0; i < icmp_error_kinds; ++i)
        take(errors[i], over.errors[i]);
    take(router_v4, over.router_v4);
    take(router_v6, over.router_v6);
    take(ttl, over.ttl);
    take(unsolicited, over.unsolicited);
}

profile profile::parse(std::string_view text) {
    profile p;
    bool seen_default = false;
    bool seen_target = false;
    for (std::string_view section : split(text, ';')) {
        section = trim(section);
        if (section.empty())
            continue;
        std::optional<sim_prefix> target;
        std::string_view knobs = section;
        if (section.front() == '[') {
            const auto close = section.find(']');
            if (close == std::string_view::npos || close + 1 >= section.size() ||
                section[close + 1] != ':')
                throw std::invalid_argument("netsim profile: bad target in '" +
                                            std::string(section) +
                                            "': expected [IPV6[/LEN]]:KNOBS");
            try {
                target = sim_prefix::parse(section.substr(1, close - 1));
            } catch (const std::invalid_argument& e) {
                throw std::invalid_argument("netsim profile: bad target '" +
                                            std::string(section.substr(0, close + 1)) +
                                            "': " + e.what());
            }
            if (target->address.family != AF_INET6)
                throw std::invalid_argument("netsim profile: bad target '" +
                                            std::string(section.substr(0, close + 1)) +
                                            "': brackets are for IPv6 only");
            knobs = section.substr(close + 2);
        } else {
            const auto colon = section.find(':');
            const auto eq = section.find('=');
            if (colon != std::string_view::npos && (eq == std::string_view::npos || colon < eq)) {
                const std::string_view t = trim(section.substr(0, colon));
                try {
                    target = sim_prefix::parse(t);
                } catch (const std::invalid_argument& e) {
                    throw std::invalid_argument("netsim profile: bad target '" + std::string(t) +
                                                "': " + e.what() +
                                                " (write IPv6 targets in brackets)");
                }
                if (target->address.family != AF_INET)
                    throw std::invalid_argument("netsim profile: bad target '" + std::string(t) +
                                                "': write IPv6 targets in brackets");
                knobs = section.substr(colon + 1);
            }
        }
        if (!target && (seen_default || seen_target))
            throw std::invalid_argument("netsim profile: bad section '" + std::string(section) +
                                        "': the default section (no target) must come first and "
                                        "only once");
        (target ? seen_target : seen_default) = true;
        profile_layer layer;
        for (std::string_view token : split(knobs, ',')) {
            token = trim(token);
            if (token.empty())
                bad_token(section, "empty knob");
            parse_knob(token, layer, target ? &*target : nullptr);
        }
        if (target)
            p.targets.push_back({*target, layer});
        else
            p.defaults = layer;
    }
    return p;
}

std::string profile::to_string() const {
    std::string out = layer_to_string(defaults);
    for (const auto& t : targets) {
        if (!out.empty())
            out += ';';
        const bool v6 = t.target.address.family == AF_INET6;
        const std::string addr = t.target.length == t.target.address.size() * 8
                                     ? t.target.address.to_string()
                                     : t.target.to_string();
        out += (v6 ? "[" + addr + "]" : addr) + ":" + layer_to_string(t.layer);
    }
    return out;
}

echo_behaviour profile::behaviour_for(const sim_address& target) const {
    profile_layer merged = defaults;
    std::vector<const target_layer*> matching;
    for (const auto& t : targets)
        if (t.target.contains(target))
            matching.push_back(&t);
    std::stable_sort(matching.begin(), matching.end(),
                     [](const target_layer* a, const target_layer* b) {
                         return a->target.length < b->target.length;
                     });
    for (const target_layer* t : matching)
        merged.apply(t->layer);

    echo_behaviour b;
    if (merged.delay)
        b.delay = *merged.delay;
    b.loss = merged.loss.value_or(0);
    if (merged.late)
        b.late = *merged.late;
    if (merged.duplicate)
        b.duplicate = *merged.duplicate;
    if (merged.reorder)
        b.reorder = *merged.reorder;
    for (std::size_t i = 0; i < corruption_kinds; ++i)
        if (merged.corruptions[i])
            b.corruptions[i] = *merged.corruptions[i];
    for (std::size_t i = 0; i < icmp_error_kinds; ++i)
        if (merged.errors[i])
            b.errors[i] = *merged.errors[i];
    b.router_v4 = merged.router_v4;
    b.router_v6 = merged.router_v6;
    b.ttl = merged.ttl.value_or(64);
    return b;
}

// ---------------------------------------------------------------- records

std::chrono::nanoseconds request_record::answer_delay() const noexcept {
    for (const packet_write& w : writes)
        if (w.kind == write_kind::reply || w.kind == write_kind::error)
            return w.written == mono_time{} ? std::chrono::nanoseconds(0) : w.written - received;
    return std::chrono::nanoseconds(0);
}

std::string request_record::to_string() const {
    std::string s = "#" + std::to_string(index) + " " + source.to_string() + " > " +
                    target.to_string() + " id=" + std::to_string(identifier) +
                    " seq=" + std::to_string(sequence) + " len=" + std::to_string(payload_size) +
                    " " + std::string(fate_name(fate));
    if (fate != request_fate::dropped)
        s += " delay=" + describe_duration(delay);
    if (fate == request_fate::error)
        s += " icmp=" + std::to_string(error_type) + "/" + std::to_string(error_code);
    if (duplicates > 0)
        s += " dup=" + std::to_string(duplicates);
    if (reordered)
        s += " reordered";
    if (corruptions != 0) {
        s += " corrupt=";
        bool first = true;
        for (std::size_t i = 0; i < corruption_kinds; ++i) {
            if (!corrupted(corruption_at(i)))
                continue;
            s += (first ? "" : "+") + std::string(corruption_names[i]);
            first = false;
        }
    }
    if (!writes.empty()) {
        s += " writes=[";
        for (std::size_t i = 0; i < writes.size(); ++i) {
            const packet_write& w = writes[i];
            s += (i ? ", " : "") + std::string(write_kind_name(w.kind)) + " " +
                 (w.written == mono_time{} ? "pending"
                                           : "+" + describe_duration(w.written - received));
        }
        s += "]";
    }
    return s;
}

std::string simulator_summary::to_string() const {
    std::string s = "requests " + std::to_string(requests) + ": replied " +
                    std::to_string(replied) + ", dropped " + std::to_string(dropped) + ", late " +
                    std::to_string(late) + ", error " + std::to_string(errors) + "\n";
    s += "duplicated " + std::to_string(duplicated) + " (" + std::to_string(duplicate_packets) +
         " extra packets), reordered " + std::to_string(reordered) + ", corrupted " +
         std::to_string(corrupted);
    if (corrupted > 0) {
        s += " (";
        bool first = true;
        for (std::size_t i = 0; i < corruption_kinds; ++i) {
            if (per_corruption[i] == 0)
                continue;
            s += (first ? "" : ", ") + std::string(corruption_names[i]) + " " +
                 std::to_string(per_corruption[i]);
            first = false;
        }
        s += ")";
    }
    s += "\nunsolicited " + std::to_string(unsolicited) + ", other packets " +
         std::to_string(other_packets) + ", packets written " + std::to_string(packets_written) +
         ", dropped by the TUN queue " + std::to_string(kernel_dropped) + "\n";
    s += "write lateness (written - scheduled): p50 " + describe_duration(lateness_p50) + ", p99 " +
         describe_duration(lateness_p99) + ", max " + describe_duration(lateness_max) + "\n";
    return s;
}

// ---------------------------------------------------------------- simulator

struct network_simulator::pending_write {
    mono_time due{};
    std::uint64_t order = 0; ///< FIFO among equal `due`
    write_kind kind = write_kind::reply;
    std::vector<std::uint8_t> bytes;
    std::uint64_t request = no_index; ///< record index, for request writes
    std::size_t slot = 0;             ///< index in that record's writes
    bool hold = false;                ///< reorder: hold instead of writing at `due`
    nanoseconds max_hold{0};
    // Unsolicited writes.
    std::size_t stream = no_index; ///< rate stream, or no_index for send_unsolicited()
    std::uint64_t generation = 0;
    sim_address source;
    sim_address destination;
    std::uint16_t identifier = 0;
    std::uint16_t sequence = 0;

    /// Min-heap order for std::push_heap (which builds a max-heap).
    friend bool operator<(const pending_write& a, const pending_write& b) {
        return a.due != b.due ? a.due > b.due : a.order > b.order;
    }
};

struct network_simulator::held_write {
    pending_write write;
    mono_time release{};
};

struct network_simulator::command {
    std::shared_ptr<const profile> new_profile;
    pending_write unsolicited; ///< when !new_profile
};

struct network_simulator::unsolicited_stream {
    sim_address source;
    sim_address destination;
    nanoseconds interval{0};
    std::uint64_t sent = 0;
};

struct network_simulator::shared_state {
    mutable std::mutex mutex;
    mutable std::condition_variable changed;
    std::vector<request_record> requests;
    std::vector<unsolicited_record> unsolicited;
    std::vector<other_packet> others;
    simulator_summary counts;
    std::size_t pending = 0; ///< request and on-demand writes not yet written
    std::vector<command> commands;
    std::uint64_t profiles_requested = 0;
    std::uint64_t profiles_applied = 0;
    bool thread_exited = false;
    std::atomic<bool> has_commands{false};
    std::atomic<bool> stop{false};
};

network_simulator::network_simulator(simulator_config config)
    : m_config(std::move(config)), m_shared(std::make_unique<shared_state>()) {
    const simulator_config& c = m_config;
    if (!is_safe_device_name(c.device))
        throw std::invalid_argument("network_simulator: bad device name '" + c.device + "'");
    if (c.v4_prefix.address.family != AF_INET || c.v6_prefix.address.family != AF_INET6)
        throw std::invalid_argument("network_simulator: v4_prefix " + c.v4_prefix.to_string() +
                                    " / v6_prefix " + c.v6_prefix.to_string() +
                                    " are of the wrong family");
    if (c.v4_local.family != AF_INET || c.v4_prefix.contains(c.v4_local))
        throw std::invalid_argument("network_simulator: v4_local " + c.v4_local.to_string() +
                                    " must be an IPv4 address outside " + c.v4_prefix.to_string());
    if (c.v6_local.family != AF_INET6 || c.v6_prefix.contains(c.v6_local))
        throw std::invalid_argument("network_simulator: v6_local " + c.v6_local.to_string() +
                                    " must be an IPv6 address outside " + c.v6_prefix.to_string());
    for (const sim_prefix* p : {&c.v4_prefix, &c.v6_prefix})
        if (!in_reserved_range(p->address) || !in_reserved_range(p->last_address()))
            throw std::invalid_argument("network_simulator: prefix " + p->to_string() +
                                        " is outside the benchmarking and documentation "
                                        "ranges (198.18.0.0/15, 192.0.2.0/24, 198.51.100.0/24, "
                                        "203.0.113.0/24, 2001:db8::/32)");
    for (const sim_address* a : {&c.v4_local, &c.v6_local})
        if (!in_reserved_range(*a))
            throw std::invalid_argument("network_simulator: local address " + a->to_string() +
                                        " is outside the benchmarking and documentation "
                                        "ranges");
    if (c.mtu < 1280 || c.mtu > 65535)
        throw std::invalid_argument("network_simulator: mtu " + std::to_string(c.mtu) +
                                    " must be in [1280, 65535]");
    check_private_netns();
    m_profile = std::make_shared<const profile>(c.profile);

    try {
        m_tun_fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (m_tun_fd < 0)
            throw std::runtime_error(errno_text("network_simulator: open /dev/net/tun"));
        ifreq ifr{};
        ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
        std::strncpy(ifr.ifr_name, c.device.c_str(), IFNAMSIZ - 1);
        if (::ioctl(m_tun_fd, TUNSETIFF, &ifr) < 0)
            throw std::runtime_error(errno_text("network_simulator: TUNSETIFF " + c.device));
        m_wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (m_wake_fd < 0)
            throw std::runtime_error(errno_text("network_simulator: eventfd"));

        const std::string dev = " dev " + c.device;
        using icmpengine::testing::run;
        run("ip link set" + dev + " mtu " + std::to_string(c.mtu) + " txqueuelen " +
            std::to_string(c.queue_length) + " up");
        // The local addresses are /32 and /128 so that nothing of the routed
        // prefixes becomes local: the kernel must not answer those itself.
        run("ip -4 addr add " + c.v4_local.to_string() + "/32" + dev);
        m_undo.insert(m_undo.begin(), "ip -4 addr del " + c.v4_local.to_string() + "/32" + dev);
        run("ip -6 addr add " + c.v6_local.to_string() + "/128" + dev + " nodad");
        m_undo.insert(m_undo.begin(), "ip -6 addr del " + c.v6_local.to_string() + "/128" + dev);
        run("ip -4 route add " + c.v4_prefix.to_string() + dev);
        m_undo.insert(m_undo.begin(), "ip -4 route del " + c.v4_prefix.to_string() + dev);
        run("ip -6 route add " + c.v6_prefix.to_string() + dev);
        m_undo.insert(m_undo.begin(), "ip -6 route del " + c.v6_prefix.to_string() + dev);

        // The IPv6 local route is installed by addrconf's work queue, after
        // `ip addr add` returned (even with nodad): wait for it.
        const mono_time give_up = mono_clock::now() + 2s;
        while (!routes_as_local(c.v6_local)) {
            if (mono_clock::now() > give_up)
                throw std::runtime_error("network_simulator: " + c.v6_local.to_string() +
                                         " did not become a local address within 2 s");
            std::this_thread::sleep_for(200us);
        }

        rebuild_unsolicited_streams(mono_clock::now());
        m_thread = std::thread([this] { thread_main(); });
    } catch (...) {
        tear_down();
        throw;
    }
}

network_simulator::~network_simulator() {
    tear_down();
}

void network_simulator::tear_down() noexcept {
    if (m_thread.joinable()) {
        m_shared->stop.store(true);
        const std::uint64_t one = 1;
        (void)!::write(m_wake_fd, &one, sizeof one);
        m_thread.join();
    }
    for (const std::string& cmd : m_undo) {
        try {
            icmpengine::testing::run(cmd);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "network_simulator: cleanup: %s\n", e.what());
        }
    }
    m_undo.clear();
    if (m_wake_fd >= 0)
        ::close(m_wake_fd);
    if (m_tun_fd >= 0)
        ::close(m_tun_fd); // a non-persistent TUN device disappears with its fd
    m_wake_fd = m_tun_fd = -1;
}

sim_address network_simulator::local_address(int family) const {
    return family == AF_INET ? m_config.v4_local : m_config.v6_local;
}

sim_address network_simulator::default_router(int family) const {
    return (family == AF_INET ? m_config.v4_prefix : m_config.v6_prefix).last_address(1);
}

void network_simulator::set_profile(profile p) {
    command c;
    c.new_profile = std::make_shared<const profile>(std::move(p));
    std::unique_lock lock(m_shared->mutex);
    m_shared->commands.push_back(std::move(c));
    m_shared->has_commands.store(true);
    const std::uint64_t ticket = ++m_shared->profiles_requested;
    const std::uint64_t one = 1;
    (void)!::write(m_wake_fd, &one, sizeof one);
    // Wait until the thread uses it, so that the next ping sees it.
    m_shared->changed.wait(
        lock, [&] { return m_shared->profiles_applied >= ticket || m_shared->thread_exited; });
}

void network_simulator::send_unsolicited(const sim_address& source, const sim_address& destination,
                                         std::uint16_t identifier, std::uint16_t sequence,
                                         std::vector<std::uint8_t> payload) {
    if (source.family != destination.family ||
        (source.family != AF_INET && source.family != AF_INET6))
        throw std::invalid_argument("send_unsolicited: " + source.to_string() + " and " +
                                    destination.to_string() +
                                    " must be addresses of the same family");
    command c;
    pending_write& w = c.unsolicited;
    w.kind = write_kind::unsolicited;
    w.source = source;
    w.destination = destination;
    w.identifier = identifier;
    w.sequence = sequence;
    w.bytes =
        echo_reply_message(source.family, identifier, sequence, payload.data(), payload.size());
    {
        std::lock_guard lock(m_shared->mutex);
        m_shared->commands.push_back(std::move(c));
        m_shared->has_commands.store(true);
        ++m_shared->pending;
    }
    const std::uint64_t one = 1;
    (void)!::write(m_wake_fd, &one, sizeof one);
}

bool network_simulator::wait_for_requests(std::size_t count, nanoseconds timeout) const {
    std::unique_lock lock(m_shared->mutex);
    return m_shared->changed.wait_for(lock, timeout,
                                      [&] { return m_shared->counts.requests >= count; });
}

bool network_simulator::wait_until_flushed(nanoseconds timeout) const {
    std::unique_lock lock(m_shared->mutex);
    return m_shared->changed.wait_for(lock, timeout, [&] { return m_shared->pending == 0; });
}

std::vector<request_record> network_simulator::requests() const {
    std::lock_guard lock(m_shared->mutex);
    return m_shared->requests;
}

std::vector<unsolicited_record> network_simulator::unsolicited() const {
    std::lock_guard lock(m_shared->mutex);
    return m_shared->unsolicited;
}

std::vector<other_packet> network_simulator::other_packets() const {
    std::lock_guard lock(m_shared->mutex);
    return m_shared->others;
}

simulator_summary network_simulator::summary() const {
    simulator_summary s;
    std::vector<nanoseconds> lateness;
    {
        std::lock_guard lock(m_shared->mutex);
        s = m_shared->counts;
        for (const request_record& r : m_shared->requests) {
            if (r.reordered) // held on purpose: not a measure of timing
                continue;
            for (const packet_write& w : r.writes)
                if (w.written != mono_time{})
                    lateness.push_back(w.written - w.scheduled);
        }
        for (const unsolicited_record& u : m_shared->unsolicited)
            lateness.push_back(u.write.written - u.write.scheduled);
    }
    s.kernel_dropped = device_tx_dropped(m_config.device);
    if (!lateness.empty()) {
        std::sort(lateness.begin(), lateness.end());
        s.lateness_p50 = lateness[lateness.size() / 2];
        s.lateness_p99 = lateness[std::min(lateness.size() - 1, lateness.size() * 99 / 100)];
        s.lateness_max = lateness.back();
    }
    return s;
}

// The simulator thread. It sleeps in ppoll() until a packet arrives or the
// next write is `spin_window` away, then spins on the clock (still reading
// the TUN device without blocking) and writes each packet as soon as its time
// has come. Timer slack is 1 ns so ppoll() wakes when asked (prctl(2)
// PR_SET_TIMERSLACK; the default 50 us would be the whole error budget).
void network_simulator::thread_main() {
    thread_loop();
    {
        std::lock_guard lock(m_shared->mutex);
        m_shared->thread_exited = true;
    }
    m_shared->changed.notify_all();
}

void network_simulator::thread_loop() {
    ::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    if (m_config.realtime_priority > 0 && !m_config.busy_poll) {
        sched_param param{};
        param.sched_priority = m_config.realtime_priority;
        // Failure (no CAP_SYS_NICE, RLIMIT_RTPRIO) only costs precision.
        (void)::pthread_setschedparam(::pthread_self(), SCHED_FIFO, &param);
    }
    std::vector<std::uint8_t> buffer(65536);
    nanoseconds wake_lateness{0}; ///< how late ppoll() timeouts return, smoothed
    // At most a batch per call, so that a burst of requests does not hold
    // back writes that fall due meanwhile.
    auto read_available = [&] {
        for (int i = 0; i < 64; ++i) {
            const ssize_t n = ::read(m_tun_fd, buffer.data(), buffer.size());
            const mono_time now = mono_clock::now();
            if (n <= 0)
                return;
            handle_packet(buffer.data(), static_cast<std::size_t>(n), now);
        }
    };
    while (!m_shared->stop.load(std::memory_order_relaxed)) {
        if (m_shared->has_commands.load(std::memory_order_relaxed))
            run_commands(mono_clock::now());
        write_due(mono_clock::now());
        const std::optional<mono_time> next = next_deadline();
        const mono_time now = mono_clock::now();
        // Spin for the window, widened to twice the wake-up lateness seen
        // lately (a busy host wakes threads late), at most 1 ms.
        const nanoseconds window = std::clamp(2 * wake_lateness + 10us, m_config.spin_window,
                                              std::max(m_config.spin_window, nanoseconds(1ms)));
        if (m_config.busy_poll || (next && *next - now <= window)) {
            read_available();
            continue;
        }
        timespec timeout{};
        timespec* timeout_ptr = nullptr;
        mono_time wake_at{};
        if (next) {
            wake_at = *next - window;
            const auto wait = wake_at - now;
            timeout.tv_sec = static_cast<time_t>(wait.count() / 1'000'000'000);
            timeout.tv_nsec = static_cast<long>(wait.count() % 1'000'000'000);
            timeout_ptr = &timeout;
        }
        pollfd fds[2] = {{m_tun_fd, POLLIN, 0}, {m_wake_fd, POLLIN, 0}};
        const int r = ::ppoll(fds, 2, timeout_ptr, nullptr);
        if (r == 0 && next) {
            // Track the lateness: jump up to a new high, decay slowly.
            const nanoseconds late = std::max(nanoseconds(0), mono_clock::now() - wake_at);
            wake_lateness = late > wake_lateness ? late : (wake_lateness * 31 + late) / 32;
        }
        if (r < 0 && errno != EINTR) {
            std::fprintf(stderr, "network_simulator: ppoll: %s\n", std::strerror(errno));
            return;
        }
        if (r > 0 && (fds[1].revents & POLLIN) != 0) {
            std::uint64_t v;
            (void)!::read(m_wake_fd, &v, sizeof v);
            if (m_shared->has_commands.load(std::memory_order_relaxed))
                run_commands(mono_clock::now());
        }
        if (r > 0 && (fds[0].revents & POLLIN) != 0)
            read_available();
    }
}

std::optional<mono_time> network_simulator::next_deadline() const {
    std::optional<mono_time> next;
    if (!m_heap.empty())
        next = m_heap.front().due;
    for (const held_write& h : m_held)
        if (!next || h.release < *next)
            next = h.release;
    return next;
}

void network_simulator::run_commands(mono_time now) {
    std::vector<command> commands;
    {
        std::lock_guard lock(m_shared->mutex);
        commands.swap(m_shared->commands);
        m_shared->has_commands.store(false);
    }
    for (command& c : commands) {
        if (c.new_profile) {
            m_profile = std::move(c.new_profile);
            rebuild_unsolicited_streams(now);
            {
                std::lock_guard lock(m_shared->mutex);
                ++m_shared->profiles_applied;
            }
            m_shared->changed.notify_all();
        } else {
            pending_write w = std::move(c.unsolicited);
            w.due = now;
            w.bytes = ip_packet(w.source, w.destination, m_profile->behaviour_for(w.source).ttl,
                                m_ip_id++, std::move(w.bytes));
            schedule(std::move(w));
        }
    }
}

void network_simulator::rebuild_unsolicited_streams(mono_time now) {
    ++m_stream_generation; // heap entries of the old streams are discarded
    m_streams.clear();
    for (const auto& t : m_profile->targets) {
        if (!t.layer.unsolicited)
            continue;
        unsolicited_stream s;
        s.source = t.target.address;
        s.destination = t.layer.unsolicited->destination.value_or(local_address(s.source.family));
        s.interval =
            nanoseconds(static_cast<std::int64_t>(std::llround(1e9 / t.layer.unsolicited->rate)));
        m_streams.push_back(s);
    }
    for (std::size_t i = 0; i < m_streams.size(); ++i) {
        unsolicited_stream& s = m_streams[i];
        decision_rng rng(m_config.seed, stream_unsolicited, s.source, s.sent);
        pending_write w;
        w.kind = write_kind::unsolicited;
        w.due = now + s.interval;
        w.stream = i;
        w.generation = m_stream_generation;
        w.source = s.source;
        w.destination = s.destination;
        w.identifier = static_cast<std::uint16_t>(rng.next());
        w.sequence = static_cast<std::uint16_t>(rng.next());
        std::vector<std::uint8_t> payload(56);
        for (std::size_t b = 0; b < payload.size(); ++b)
            payload[b] = static_cast<std::uint8_t>(b);
        w.bytes =
            ip_packet(s.source, s.destination, m_profile->behaviour_for(s.source).ttl, m_ip_id++,
                      echo_reply_message(s.source.family, w.identifier, w.sequence, payload.data(),
                                         payload.size()));
        schedule(std::move(w));
    }
}

void network_simulator::schedule(pending_write w) {
    w.order = m_write_order++;
    m_heap.push_back(std::move(w));
    std::push_heap(m_heap.begin(), m_heap.end());
}

void network_simulator::write_due(mono_time now) {
    release_held(now, false);
    while (!m_heap.empty() && m_heap.front().due <= now) {
        std::pop_heap(m_heap.begin(), m_heap.end());
        pending_write w = std::move(m_heap.back());
        m_heap.pop_back();
        if (w.stream != no_index && w.generation != m_stream_generation)
            continue; // a stream of an earlier profile
        if (w.hold) {
            const mono_time release = w.due + w.max_hold;
            m_held.push_back({std::move(w), release});
            continue;
        }
        write_packet(w);
        const bool is_reply = w.kind == write_kind::reply || w.kind == write_kind::duplicate;
        if (is_reply && !m_held.empty())
            release_held(now, true); // the overtaking reply is out: the held ones follow
        if (w.stream != no_index) {
            unsolicited_stream& s = m_streams[w.stream];
            ++s.sent;
            decision_rng rng(m_config.seed, stream_unsolicited, s.source, s.sent);
            pending_write next;
            next.kind = write_kind::unsolicited;
            next.due = w.due + s.interval;
            next.stream = w.stream;
            next.generation = w.generation;
            next.source = s.source;
            next.destination = s.destination;
            next.identifier = static_cast<std::uint16_t>(rng.next());
            next.sequence = static_cast<std::uint16_t>(rng.next());
            // Same payload and TTL as the previous one: swap in the new
            // identifier and sequence and fix the checksums.
            std::vector<std::uint8_t> message(
                w.bytes.begin() + static_cast<std::ptrdiff_t>(ip_header_size(s.source.family)),
                w.bytes.end());
            put16(message.data() + 2, 0);
            put16(message.data() + 4, next.identifier);
            put16(message.data() + 6, next.sequence);
            const std::uint8_t ttl = s.source.family == AF_INET ? w.bytes[8] : w.bytes[7];
            next.bytes = ip_packet(s.source, s.destination, ttl, m_ip_id++, std::move(message));
            schedule(std::move(next));
        }
    }
}

void network_simulator::release_held(mono_time now, bool all) {
    for (auto it = m_held.begin(); it != m_held.end();) {
        if (all || it->release <= now) {
            write_packet(it->write);
            it = m_held.erase(it);
        } else {
            ++it;
        }
    }
}

void network_simulator::write_packet(pending_write& w) {
    const mono_time at = mono_clock::now();
    const ssize_t n = ::write(m_tun_fd, w.bytes.data(), w.bytes.size());
    if (n != static_cast<ssize_t>(w.bytes.size()))
        std::fprintf(stderr, "network_simulator: write to %s: %s\n", m_config.device.c_str(),
                     n < 0 ? std::strerror(errno) : "short write");
    {
        std::lock_guard lock(m_shared->mutex);
        ++m_shared->counts.packets_written;
        if (w.kind == write_kind::unsolicited) {
            ++m_shared->counts.unsolicited;
            if (m_shared->unsolicited.size() < m_config.max_records)
                m_shared->unsolicited.push_back(
                    {w.source, w.destination, w.identifier, w.sequence,
                     packet_write{write_kind::unsolicited, w.due, at, w.bytes.size()}});
        } else if (w.request < m_shared->requests.size()) {
            m_shared->requests[w.request].writes[w.slot].written = at;
        }
        if (w.stream == no_index)
            --m_shared->pending;
    }
    m_shared->changed.notify_all();
}

void network_simulator::handle_packet(const std::uint8_t* data, std::size_t size, mono_time now) {
    other_packet other;
    other.received = now;
    if (handle_echo_request(data, size, now, other))
        return;
    {
        std::lock_guard lock(m_shared->mutex);
        ++m_shared->counts.other_packets;
        if (m_shared->others.size() < max_other_packets)
            m_shared->others.push_back(other);
    }
    m_shared->changed.notify_all();
}

bool network_simulator::handle_echo_request(const std::uint8_t* data, std::size_t size,
                                            mono_time now, other_packet& other) {
    echo_request req;
    if (!parse_echo_request(data, size, req, other))
        return false;
    const int family = req.target.family;
    const echo_behaviour b = m_profile->behaviour_for(req.target);

    // Draw every decision, always in the same order and number, so that one
    // knob's probability does not shift the others' outcomes.
    decision_rng rng(m_config.seed, stream_requests, req.target, m_target_counts[req.target]++);
    const double u_error = rng.uniform();
    const double u_loss = rng.uniform();
    const double u_late = rng.uniform();
    const double u_dup = rng.uniform();
    const double u_reorder = rng.uniform();
    std::array<double, corruption_kinds> u_corrupt{};
    for (double& u : u_corrupt)
        u = rng.uniform();
    const double u_delay1 = rng.uniform();
    const double u_delay2 = rng.uniform();

    request_record rec;
    rec.received = now;
    rec.source = req.source;
    rec.target = req.target;
    rec.identifier = req.identifier;
    rec.sequence = req.sequence;
    rec.payload_size = req.payload_size;
    rec.delay = sample_delay(b.delay, u_delay1, u_delay2);
    rec.reply_identifier = req.identifier;
    rec.reply_sequence = req.sequence;
    rec.reply_source = req.target;

    std::optional<icmp_error_kind> error;
    double cumulative = 0;
    for (std::size_t i = 0; i < icmp_error_kinds && !error; ++i) {
        cumulative += b.errors[i].probability;
        if (u_error < cumulative)
            error = static_cast<icmp_error_kind>(i);
    }

    std::vector<pending_write> writes;
    if (error) {
        rec.fate = request_fate::error;
        const icmp_error_spec& spec = b.errors[static_cast<std::size_t>(*error)];
        const bool v4 = family == AF_INET;
        if (*error == icmp_error_kind::unreachable) {
            rec.error_type = v4 ? icmp4_unreachable : icmp6_unreachable;
            rec.error_code = spec.code.value_or(v4 ? 1 : 3);
        } else {
            rec.error_type = v4 ? icmp4_time_exceeded : icmp6_time_exceeded;
            rec.error_code = spec.code.value_or(0);
        }
        const sim_address router =
            (v4 ? b.router_v4 : b.router_v6).value_or(default_router(family));
        rec.reply_source = router;
        const std::size_t room =
            (v4 ? icmp4_error_max : icmp6_error_max) - ip_header_size(family) - icmp_header;
        const std::size_t quoted = std::min(req.packet_size, room);
        std::vector<std::uint8_t> m(icmp_header + quoted);
        m[0] = rec.error_type;
        m[1] = rec.error_code;
        if (v4 && rec.error_type == icmp4_unreachable && rec.error_code == 4)
            put16(m.data() + 6, static_cast<std::uint16_t>(m_config.mtu)); // RFC 1191
        std::memcpy(m.data() + icmp_header, req.packet, quoted);
        pending_write w;
        w.kind = write_kind::error;
        w.due = now + rec.delay;
        // Linux sends errors with IPTOS_PREC_INTERNETCONTROL (icmp_send()).
        w.bytes = ip_packet(router, req.source, b.ttl, m_ip_id++, std::move(m),
                            v4 ? std::uint8_t{0xc0} : std::uint8_t{0});
        writes.push_back(std::move(w));
    } else if (u_loss < b.loss) {
        rec.fate = request_fate::dropped;
    } else {
        if (u_late < b.late.probability) {
            rec.fate = request_fate::late;
            rec.delay = b.late.delay;
        }
        if (u_dup < b.duplicate.probability)
            rec.duplicates = b.duplicate.copies;
        rec.reordered = u_reorder < b.reorder.probability;
        for (std::size_t i = 0; i < corruption_kinds; ++i)
            if (u_corrupt[i] < b.corruptions[i].probability)
                rec.corruptions |= static_cast<std::uint16_t>(corruption_at(i));

        auto arg = [&](corruption c, std::int64_t fallback) {
            for (std::size_t i = 0; i < corruption_kinds; ++i)
                if (corruption_at(i) == c)
                    return b.corruptions[i].argument.value_or(fallback);
            return fallback;
        };
        std::size_t payload_size = req.payload_size;
        if (rec.corrupted(corruption::truncate))
            payload_size = std::min(
                payload_size,
                static_cast<std::size_t>(
                    arg(corruption::truncate, static_cast<std::int64_t>(req.payload_size / 2))));
        if (rec.corrupted(corruption::sequence))
            rec.reply_sequence =
                static_cast<std::uint16_t>(req.sequence + arg(corruption::sequence, 0x8000));
        if (rec.corrupted(corruption::identifier))
            rec.reply_identifier =
                static_cast<std::uint16_t>(req.identifier + arg(corruption::identifier, 0x8000));
        if (rec.corrupted(corruption::source)) {
            const corruption_spec& s = b.corruptions[static_cast<std::size_t>(
                std::countr_zero(static_cast<unsigned>(corruption::source)))];
            const auto& chosen = family == AF_INET ? s.source_v4 : s.source_v6;
            if (chosen) {
                rec.reply_source = *chosen;
            } else {
                rec.reply_source.bytes[req.target.size() - 1] ^= 1;
            }
        }
        std::vector<std::uint8_t> m = echo_reply_message(
            family, rec.reply_identifier, rec.reply_sequence, req.payload, payload_size);
        if (rec.corrupted(corruption::type))
            m[0] = static_cast<std::uint8_t>(arg(corruption::type, family == AF_INET ? 253 : 200));
        if (rec.corrupted(corruption::code))
            m[1] = static_cast<std::uint8_t>(arg(corruption::code, 1));
        if (rec.corrupted(corruption::token))
            for (std::size_t i = icmp_header; i < std::min(m.size(), icmp_header + 16); ++i)
                m[i] = static_cast<std::uint8_t>(~m[i]);
        std::vector<std::uint8_t> packet =
            ip_packet(rec.reply_source, req.source, b.ttl, m_ip_id++, std::move(m), req.tos);
        if (rec.corrupted(corruption::checksum))
            break_checksum(packet, family);

        for (unsigned copy = 0; copy <= rec.duplicates; ++copy) {
            pending_write w;
            w.kind = copy == 0 ? write_kind::reply : write_kind::duplicate;
            w.due = now + rec.delay + copy * b.duplicate.gap;
            w.bytes = packet;
            w.hold = rec.reordered;
            w.max_hold = b.reorder.max_hold;
            writes.push_back(std::move(w));
        }
    }

    {
        std::lock_guard lock(m_shared->mutex);
        simulator_summary& c = m_shared->counts;
        rec.index = c.requests++;
        switch (rec.fate) {
        case request_fate::replied:
            ++c.replied;
            break;
        case request_fate::dropped:
            ++c.dropped;
            break;
        case request_fate::late:
            ++c.late;
            break;
        case request_fate::error:
            ++c.errors;
            break;
        }
        if (rec.duplicates > 0) {
            ++c.duplicated;
            c.duplicate_packets += rec.duplicates;
        }
        c.reordered += rec.reordered ? 1 : 0;
        c.corrupted += rec.corruptions != 0 ? 1 : 0;
        for (std::size_t i = 0; i < corruption_kinds; ++i)
            c.per_corruption[i] += rec.corrupted(corruption_at(i)) ? 1 : 0;
        m_shared->pending += writes.size();
        for (std::size_t i = 0; i < writes.size(); ++i) {
            writes[i].request = rec.index;
            writes[i].slot = i;
            rec.writes.push_back(
                {writes[i].kind, writes[i].due, mono_time{}, writes[i].bytes.size()});
        }
        if (m_shared->requests.size() < m_config.max_records)
            m_shared->requests.push_back(std::move(rec));
    }
    m_shared->changed.notify_all();
    for (pending_write& w : writes)
        schedule(std::move(w));
    return true;
}

} // namespace icmpengine::testing
