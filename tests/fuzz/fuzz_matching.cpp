// Fuzz target for the reply-matching path of lib/engine.cpp, without
// sockets or io_uring.
//
// engine_core's matching is private, so this target rebuilds the path a
// received datagram takes from the public pieces it is made of: the input
// launches a few pings (slot index, generation, target, payload size; a token
// from token_tag under a fixed key) whose requests build_echo_request writes,
// then delivers packets: genuine replies and ICMP errors for them, stale ones
// from a previous use of a slot, the same changed by the input, or raw bytes.
// Each goes through a copy of the engine's decision procedure
// (process_message -> parse_icmp -> find_slot: read_token -> ping_tag ->
// payload_matches, or quote_matches for a short quote) and the outcome is
// checked against the safety property,
// decided from the bytes alone:
//
//   A packet that matches an in-flight ping is (a prefix of) that ping's
//   genuine reply or of an ICMP error quoting its request: the right source
//   (replies) or quoted destination (errors), sequence, type and payload.
//
// and that a packet genuine for several pings (an ICMP error quoting too
// little to tell them apart) matches none; and, so that a matcher that
// refuses everything fails too, the liveness property: an unchanged genuine
// reply or error for an in-flight ping that nothing else could claim does
// match it.
//
// The copy (`mirror` below) must follow lib/engine.cpp: when find_slot or
// process_message change there, change it here. The input format is in
// matching_input.hpp.
#include "fuzz_input.hpp"
#include "matching_input.hpp"
#include "packet.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace icmpengine;
using namespace icmpengine::detail;
using icmpengine::fuzz::fuzz_input;
namespace layout = icmpengine::fuzz::matching;
using bytes = std::span<const std::byte>;
using byte_vector = std::vector<std::byte>;

constexpr token_key key{0x0123456789abcdefULL, 0x0fedcba987654321ULL};
constexpr std::size_t unknown_length = std::numeric_limits<std::size_t>::max();

std::uint8_t u8(std::byte b) {
    return std::to_integer<std::uint8_t>(b);
}
std::uint16_t be16(bytes d, std::size_t at) {
    return static_cast<std::uint16_t>(u8(d[at]) << 8 | u8(d[at + 1]));
}
std::uint32_t be32(bytes d, std::size_t at) {
    return std::uint32_t{be16(d, at)} << 16 | be16(d, at + 2);
}
void put16(std::span<std::byte> d, std::size_t at, std::uint16_t v) {
    d[at] = static_cast<std::byte>(v >> 8);
    d[at + 1] = static_cast<std::byte>(v);
}
void put_address(std::span<std::byte> d, std::size_t at, const ip_address& a) {
    const std::size_t n = a.is_v4() ? 4 : 16;
    for (std::size_t i = 0; i < n; ++i)
        d[at + i] = static_cast<std::byte>(a.bytes()[i]);
}

std::uint8_t request_type(ip_family f) {
    return f == ip_family::v4 ? icmp4_echo_request : icmp6_echo_request;
}
std::uint8_t reply_type(ip_family f) {
    return f == ip_family::v4 ? icmp4_echo_reply : icmp6_echo_reply;
}

// 2001:db8::last (RFC 3849), or fe80::last on interface `scope`.
ip_address v6(bool link_local, std::uint8_t last, std::uint32_t scope = 0) {
    std::array<std::uint8_t, 16> b{};
    if (link_local) {
        b[0] = 0xfe;
        b[1] = 0x80;
    } else {
        b[0] = 0x20;
        b[1] = 0x01;
        b[2] = 0x0d;
        b[3] = 0xb8;
    }
    b[15] = last;
    return ip_address::from_v6_bytes(b, scope);
}

// Targets and other peers. The link-local ones differ only in scope id,
// which counts only when both sides have one.
const std::array<ip_address, 4> hosts_v4{
    ip_address::from_v4(0xc0000201), // 192.0.2.1
    ip_address::from_v4(0xc0000202), // 192.0.2.2
    ip_address::from_v4(0xc6336407), // 198.51.100.7
    ip_address::from_v4(0x0a000001), // 10.0.0.1
};
const std::array<ip_address, 5> hosts_v6{
    v6(false, 1), v6(false, 2), v6(true, 1, 2), v6(true, 1, 0), v6(true, 1, 3),
};
const ip_address our_v4 = ip_address::from_v4(0x0a0000fe);    // 10.0.0.254
const ip_address router_v4 = ip_address::from_v4(0xcb007101); // 203.0.113.1
const ip_address our_v6 = v6(false, 0xfe);

// An address as a quoted IP header carries it: without a scope id.
ip_address unscoped(const ip_address& a) {
    return a.is_v4() ? a : ip_address::from_v6_bytes(a.bytes());
}

ip_address host(ip_family f, std::uint8_t b) {
    return f == ip_family::v4 ? hosts_v4[b % hosts_v4.size()] : hosts_v6[b % hosts_v6.size()];
}

// ------------------------------------------------------------ the engine

// The engine state matching reads (engine_core.hpp: slot; the outcomes it
// keeps only for counting stale replies are left out), plus what the model
// needs to build packets and judge the outcome.
enum class slot_state : std::uint8_t { free, in_flight, ended };

struct slot {
    ip_address target;
    std::uint32_t generation = 0;
    std::uint32_t payload_size = 0;
    slot_state state = slot_state::free;
    bool has_token = false;
    // Not engine state: the request this use of the slot sent, and the
    // previous use's (for stale replies).
    byte_vector request;
    byte_vector previous_request;
};

struct model_engine {
    ip_family family = ip_family::v4;
    bool raw = false;
    std::uint16_t raw_identifier = 0;
    std::size_t slot_count = 0;          ///< m_slots.size()
    std::map<std::uint32_t, slot> slots; ///< the used ones; the rest are free
    std::vector<std::uint32_t> launched; ///< indices, in launch order

    const slot& at(std::size_t index) const {
        static const slot never_used;
        const auto it = slots.find(static_cast<std::uint32_t>(index));
        return it == slots.end() ? never_used : it->second;
    }
};

// ---------------------------------------------------------------- mirror
//
// What lib/engine.cpp does, decision for decision; statistics, logging,
// timestamps and the on_stray hook are left out. Reference: same_host,
// engine_core::tokenless_conflict, launch, process_message, find_slot,
// quote_matches, ping_tag, match_reply, match_error, handle_errqueue.
namespace mirror {

// engine.cpp: same_host.
bool same_host(const ip_address& a, const ip_address& b) {
    if (a.family() != b.family() || a.bytes() != b.bytes())
        return false;
    return a.scope_id() == 0 || b.scope_id() == 0 || a.scope_id() == b.scope_id();
}

// engine.cpp: engine_core::tokenless_conflict.
bool tokenless_conflict(const model_engine& e, std::uint32_t index, const ip_address& target) {
    for (std::size_t i = index & 0xffffU; i < e.slot_count; i += 65536)
        if (i != index && e.at(i).state != slot_state::free && same_host(e.at(i).target, target))
            return true;
    return false;
}

// engine.cpp: engine_core::ping_tag: token_tag keyed with the engine's
// secret mixed with the target's address bytes (not its scope id) and the
// payload size.
std::uint64_t ping_tag(std::uint32_t index, std::uint32_t generation, std::uint16_t sequence,
                       const ip_address& target, std::size_t payload_size) {
    std::uint64_t a = 0;
    std::uint64_t b = 0;
    std::memcpy(&a, target.bytes().data(), 8);
    std::memcpy(&b, target.bytes().data() + 8, 8);
    const std::uint64_t size_and_family =
        std::uint64_t{payload_size} << 1 | (target.is_v6() ? 1U : 0U);
    const token_key k{key.k0 ^ a, key.k1 ^ (b + size_and_family * 0x9e3779b97f4a7c15ULL)};
    return token_tag(k, index, generation, sequence);
}

// engine.cpp: engine_core::launch, for a slot alloc_slot hands out. A ping
// still in flight in the slot times out first (end + finish: the model has
// no send completions). alloc_slot refuses a token-less ping whose
// sequence another ping to the same host holds; then nothing is sent.
void launch(model_engine& e, std::uint32_t index, const ip_address& target,
            std::uint32_t payload_size) {
    slot& s = e.slots[index];
    s.state = slot_state::free;
    const bool has_token = payload_size >= token_size;
    if (!has_token && tokenless_conflict(e, index, target))
        return;
    ++s.generation;
    s.target = target;
    s.payload_size = payload_size;
    s.has_token = has_token;
    s.state = slot_state::in_flight;

    const auto sequence = static_cast<std::uint16_t>(index & 0xffffU);
    const echo_token token{index, s.generation,
                           ping_tag(index, s.generation, sequence, target, payload_size)};
    s.previous_request = std::move(s.request);
    s.request.assign(icmp_header_size + payload_size, std::byte{0});
    FUZZ_CHECK(build_echo_request(s.request, e.family, e.raw ? e.raw_identifier : 0, sequence,
                                  payload_size, has_token ? &token : nullptr,
                                  e.raw && e.family == ip_family::v4) == s.request.size());
}

// engine.cpp: engine_core::quote_matches: the few payload bytes (fewer
// than a token) an ICMP error quotes are the start of what slot `index`
// sent, rebuilt from the slot.
bool quote_matches(const model_engine& e, std::uint32_t index, const icmp_message& m) {
    const slot& s = e.at(index);
    const std::size_t n = std::min<std::size_t>(m.payload.size(), s.payload_size);
    if (n != m.payload.size() || n > token_size)
        return false;
    std::array<std::byte, icmp_header_size + token_size> expected{};
    const echo_token token{index, s.generation,
                           ping_tag(index, s.generation, m.sequence, s.target, s.payload_size)};
    const auto size = static_cast<std::uint32_t>(std::min<std::size_t>(s.payload_size, token_size));
    build_echo_request(expected, s.target.family(), 0, m.sequence, size,
                       s.has_token ? &token : nullptr, false);
    return std::equal(m.payload.begin(), m.payload.end(), expected.begin() + icmp_header_size);
}

// engine.cpp: engine_core::find_slot (the late and duplicate replies it
// counts are never matched).
std::optional<std::uint32_t> find_slot(const model_engine& e, const icmp_message& m,
                                       const ip_address& peer, std::size_t payload_length,
                                       bool is_error) {
    if (m.payload.size() >= token_size) {
        const echo_token t = *read_token(m.payload);
        if (t.slot >= e.slot_count || (t.slot & 0xffffU) != m.sequence)
            return std::nullopt; // token for no slot of ours
        const slot& s = e.at(t.slot);
        const bool current = t.generation == s.generation;
        std::size_t sent_size = payload_length;
        const bool prefix_only = is_error || payload_length == unknown_length;
        if (prefix_only) {
            if (!current)
                return std::nullopt; // about an earlier use of the slot: unverifiable
            sent_size = s.payload_size;
        }
        if (ping_tag(t.slot, t.generation, m.sequence, peer, sent_size) != t.tag)
            return std::nullopt; // token mismatch
        if (current && !same_host(s.target, peer))
            return std::nullopt; // token from another interface
        if ((prefix_only && m.payload.size() > sent_size) ||
            !payload_matches(m.payload, sent_size, static_cast<std::uint32_t>(sent_size), &t))
            return std::nullopt; // authentic token, altered payload
        if (current && s.state == slot_state::in_flight)
            return t.slot;
        return std::nullopt; // late or duplicate
    }

    std::optional<std::uint32_t> found;
    for (std::size_t i = m.sequence; i < e.slot_count; i += 65536) {
        const slot& s = e.at(i);
        if (!same_host(s.target, peer))
            continue;
        if (s.state != slot_state::in_flight)
            continue;
        if (!is_error &&
            (s.has_token || (payload_length != unknown_length && s.payload_size != payload_length)))
            continue;
        if (is_error && !m.payload.empty() && !quote_matches(e, static_cast<std::uint32_t>(i), m))
            continue;
        if (found)
            return std::nullopt; // ambiguous
        found = static_cast<std::uint32_t>(i);
    }
    if (found) {
        const slot& s = e.at(*found);
        const std::size_t full = payload_length == unknown_length ? s.payload_size : payload_length;
        if (!is_error && !payload_matches(m.payload, full, s.payload_size, nullptr))
            return std::nullopt;
        return found;
    }
    return std::nullopt;
}

struct verdict {
    std::optional<std::uint32_t> slot; ///< the ping credited
    icmp_message message;
};

// engine.cpp: engine_core::process_message, with match_reply's payload
// length and match_error's choice of peer.
verdict process_message(const model_engine& e, bytes payload, std::size_t full_length,
                        ip_address source) {
    verdict v;
    const bool raw = e.raw;
    bool verify_checksum = raw && e.family == ip_family::v4;
    if (raw && e.family == ip_family::v4) {
        ipv4_header ip;
        parse_error error = parse_ipv4_header(payload, ip);
        const bool truncated_receive =
            full_length == unknown_length || full_length > payload.size();
        if (truncated_receive)
            verify_checksum = false;
        if (error == parse_error::truncated && truncated_receive) {
            // The engine reads payload[0] here unchecked; the receive path
            // never hands it an empty prefix of a longer datagram.
            FUZZ_CHECK(!payload.empty());
            const std::size_t header = std::size_t{u8(payload[0]) & 0x0fU} * 4;
            std::array<std::byte, 60> copy{};
            if (header >= ipv4_min_header_size && header <= payload.size()) {
                std::copy_n(payload.begin(), header, copy.begin());
                copy[2] = static_cast<std::byte>(header >> 8);
                copy[3] = static_cast<std::byte>(header & 0xffU);
                error = parse_ipv4_header(bytes(copy.data(), header), ip);
            }
        }
        if (error != parse_error::none)
            return v;
        source = ip.source;
        payload = payload.subspan(ip.header_size);
        if (full_length != unknown_length)
            full_length = full_length >= ip.header_size ? full_length - ip.header_size : 0;
    }
    icmp_message& m = v.message;
    if (parse_icmp(payload, e.family, verify_checksum, m) != parse_error::none)
        return v;
    if (raw && m.kind != icmp_kind::other && m.kind != icmp_kind::echo_request &&
        m.identifier != e.raw_identifier)
        return v;
    switch (m.kind) {
    case icmp_kind::echo_reply: {
        std::size_t payload_length = unknown_length;
        if (full_length != unknown_length)
            payload_length = full_length >= icmp_header_size ? full_length - icmp_header_size : 0;
        v.slot = find_slot(e, m, source, payload_length, false);
        return v;
    }
    case icmp_kind::dest_unreachable:
    case icmp_kind::time_exceeded:
    case icmp_kind::packet_too_big:
    case icmp_kind::parameter_problem:
        if (!m.quoted_destination)
            return v;
        v.slot = find_slot(e, m, *m.quoted_destination, 0, true);
        return v;
    case icmp_kind::echo_request:
    case icmp_kind::other:
        return v;
    }
    return v;
}

// engine.cpp: engine_core::handle_errqueue (ICMP and local origins alike
// end in match_error with the original destination from msg_name).
constexpr std::size_t errqueue_capacity = 2048; // family_state::err_data
verdict handle_errqueue(const model_engine& e, bytes data, const ip_address& destination) {
    verdict v;
    data = data.first(std::min(data.size(), errqueue_capacity));
    if (parse_quoted_echo(data, e.family, v.message) != parse_error::none)
        return v;
    v.slot = find_slot(e, v.message, destination, 0, true);
    return v;
}

} // namespace mirror

// ------------------------------------------------------ known gaps
//
// Where lib/engine.cpp falls short of the properties below, found by this
// target and reported to the engine's owner. Each is a switch so that the
// property is checked in full once the engine is fixed: then make it true
// and update `mirror`.

// Safety: a quote too short to hold a whole token (1 to 15 payload bytes)
// must be the start of what the ping sent. Was matched by (destination,
// sequence) alone, so that a quote that is demonstrably someone else's, or
// an older use of the slot's (bytes 4-7 are the generation), was credited to
// the ping in flight. Fixed: engine_core::quote_matches.
constexpr bool engine_checks_short_quotes = true;

// Liveness: engine.hpp promises that "a reply longer than a buffer still
// matches; its payload is checked as far as it was received". On raw IPv4
// sockets it did not: parse_ipv4_header reports a total length beyond what
// arrived as truncated, and process_message dropped the datagram. Fixed:
// process_message parses the header of a truncated receive on its own.
constexpr bool engine_matches_cut_raw_ipv4 = true;

// Safety: a reply (or error-queue quote) from fe80::1%2 carrying the token
// of a ping to fe80::1%3 matches that ping, though same_host and the
// token-less path hold the two to be different hosts. find_slot's token
// path leaves the source to ping_tag, which binds the target's address
// bytes but not its scope id (before the tag bound the target, it called
// same_host). Fixed: a current slot's token also needs same_host.
constexpr bool engine_checks_token_scope = true;

// ---------------------------------------------------------------- oracle

/// One datagram as the engine receives it.
struct delivery {
    const char* what = "";
    bool errqueue = false;
    byte_vector data;            ///< as received: cut to the receive buffer
    std::size_t full_length = 0; ///< as handle_recv passes it on
    ip_address peer; ///< msg_name: the source, or (error queue) the original destination
    /// Liveness: the ping this packet must match (unchanged and genuine).
    std::optional<std::uint32_t> expected;
};

bool is_prefix(bytes part, bytes whole) {
    return part.size() <= whole.size() && std::equal(part.begin(), part.end(), whole.begin());
}

// `peer` is slot s's target as the engine can tell it: the same host or,
// while engine_checks_token_scope is false and the engine goes by a whole
// token in `payload`, the same address on any interface.
bool right_peer(const ip_address& peer, const slot& s, bytes payload) {
    if (mirror::same_host(peer, s.target))
        return true;
    return !engine_checks_token_scope && s.has_token && payload.size() >= token_size &&
           peer.family() == s.target.family() && peer.bytes() == s.target.bytes();
}

bool is_error_type(ip_family f, std::uint8_t type) {
    if (f == ip_family::v4)
        return type == 3 || type == 11 || type == 12;
    return type >= 1 && type <= 4;
}

// An echo request header (type, code 0) with this sequence and, where the
// engine is the one to tell its packets from other processes' (raw
// sockets), our identifier. On the error queue the kernel has done that.
bool our_request_header(const model_engine& e, bytes request, std::uint16_t sequence,
                        bool check_identifier) {
    return request.size() >= icmp_header_size && u8(request[0]) == request_type(e.family) &&
           u8(request[1]) == 0 && be16(request, 6) == sequence &&
           (!check_identifier || be16(request, 4) == e.raw_identifier);
}

// The quoted payload of an ICMP error or error-queue quote is what slot
// k's ping sent, as far as the quote goes.
bool quote_is_ours(bytes quoted_payload, bytes sent) {
    if (!engine_checks_short_quotes && quoted_payload.size() < token_size)
        return true;
    return is_prefix(quoted_payload, sent);
}

// The safety property, decided from the bytes alone (not from what the
// parser made of them): is `d` a genuine answer to slot k's ping in flight?
// `m` (the parse) is only used to learn where an ICMP error's quote was cut,
// and that cut is checked to lie inside the quoted request.
bool genuine_for(const model_engine& e, const delivery& d, std::uint32_t k, const icmp_message& m) {
    const slot& s = e.at(k);
    if (s.state != slot_state::in_flight)
        return false;
    const bytes sent = bytes(s.request).subspan(icmp_header_size);
    const auto sequence = static_cast<std::uint16_t>(k & 0xffffU);
    bytes data = d.data;

    if (d.errqueue) // our own request, as the kernel quotes it back
        return data.size() >= icmp_header_size &&
               right_peer(d.peer, s, data.subspan(icmp_header_size)) &&
               our_request_header(e, data, sequence, false) &&
               quote_is_ours(data.subspan(icmp_header_size), sent);

    ip_address source = d.peer;
    std::size_t full = d.full_length;
    if (e.raw && e.family == ip_family::v4) {
        if (data.size() < ipv4_min_header_size || u8(data[0]) >> 4 != 4)
            return false;
        const std::size_t ip_size = std::size_t{u8(data[0]) & 0x0fU} * 4;
        if (ip_size < ipv4_min_header_size || data.size() < ip_size)
            return false;
        source = ip_address::from_v4(be32(data, 12));
        data = data.subspan(ip_size);
        if (full != unknown_length)
            full = full >= ip_size ? full - ip_size : 0;
    }
    if (data.size() < icmp_header_size)
        return false;

    if (u8(data[0]) == reply_type(e.family)) {
        if (u8(data[1]) != 0 || be16(data, 6) != sequence ||
            (e.raw && be16(data, 4) != e.raw_identifier) ||
            !right_peer(source, s, data.subspan(icmp_header_size)))
            return false;
        const bytes payload = data.subspan(icmp_header_size);
        if (!is_prefix(payload, sent))
            return false;
        if (full != unknown_length)
            return full == icmp_header_size + sent.size();
        // Cut short by the receive buffer: a cut token authenticates nothing.
        return !s.has_token || payload.size() >= token_size;
    }

    if (!is_error_type(e.family, u8(data[0])))
        return false;
    const bytes quote = data.subspan(icmp_header_size);
    std::size_t ip_size = 0;
    ip_address destination;
    if (e.family == ip_family::v4) {
        if (quote.size() < ipv4_min_header_size || u8(quote[0]) >> 4 != 4 || u8(quote[9]) != 1)
            return false;
        ip_size = std::size_t{u8(quote[0]) & 0x0fU} * 4;
        if (ip_size < ipv4_min_header_size || quote.size() < ip_size)
            return false;
        destination = ip_address::from_v4(be32(quote, 16));
    } else {
        if (quote.size() < ipv6_header_size || u8(quote[0]) >> 4 != 6 || u8(quote[6]) != 58)
            return false;
        ip_size = ipv6_header_size;
        std::array<std::uint8_t, 16> a{};
        for (std::size_t i = 0; i < a.size(); ++i)
            a[i] = u8(quote[24 + i]);
        destination = ip_address::from_v6_bytes(a);
    }
    const bytes request = quote.subspan(ip_size);
    if (!our_request_header(e, request, sequence, e.raw) ||
        !mirror::same_host(destination, s.target))
        return false;
    if (m.payload.data() != request.data() + icmp_header_size ||
        m.payload.size() > request.size() - icmp_header_size)
        return false;
    return quote_is_ours(m.payload, sent);
}

std::string hex(bytes data) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    for (const std::byte b : data) {
        s += digits[u8(b) >> 4];
        s += digits[u8(b) & 0x0fU];
    }
    return s;
}

[[noreturn]] void violation(const model_engine& e, const delivery& d,
                            std::optional<std::uint32_t> got, const char* what) {
    std::fprintf(stderr, "fuzz_matching: %s\n", what);
    std::fprintf(stderr, "  engine: %s %s, %zu slots\n",
                 e.family == ip_family::v4 ? "IPv4" : "IPv6", e.raw ? "raw" : "datagram",
                 e.slot_count);
    for (const auto& [index, s] : e.slots)
        std::fprintf(stderr, "  slot %u: %s gen %u to %s, %u payload bytes%s\n", index,
                     s.state == slot_state::in_flight ? "in flight"
                     : s.state == slot_state::ended   ? "ended"
                                                      : "free",
                     s.generation, s.target.to_string().c_str(), s.payload_size,
                     s.has_token ? ", token" : "");
    std::fprintf(stderr, "  packet (%s%s): %zu bytes, full length %s, peer %s\n    %s\n", d.what,
                 d.errqueue ? ", error queue" : "", d.data.size(),
                 d.full_length == unknown_length ? "unknown"
                                                 : std::to_string(d.full_length).c_str(),
                 d.peer.to_string().c_str(), hex(d.data).c_str());
    std::fprintf(stderr, "  matched: %s; expected: %s\n",
                 got ? std::to_string(*got).c_str() : "none",
                 d.expected ? std::to_string(*d.expected).c_str() : "no requirement");
    icmpengine::fuzz::fail(what, __FILE__, __LINE__);
}

// ------------------------------------------------------------- packets

// The input's `change`: a length change, then single-byte edits. Returns
// whether the bytes are still what was built.
bool apply_change(byte_vector& data, fuzz_input& in) {
    const byte_vector before = data;
    const std::uint8_t length = in.u8();
    if (length >= 128) {
        const bytes extra = in.take(length - 127U);
        data.insert(data.end(), extra.begin(), extra.end());
    } else {
        data.resize(data.size() - std::min<std::size_t>(length, data.size()));
    }
    for (unsigned edits = in.u8() % 4; edits > 0; --edits) {
        const std::uint16_t at = in.u16();
        const std::uint8_t flip = in.u8();
        if (!data.empty())
            data[at % data.size()] ^= static_cast<std::byte>(flip);
    }
    return data == before;
}

// What handle_recv hands process_message for a datagram of data.size()
// bytes and a receive buffer of `buffer` bytes (0: large enough): raw
// sockets report the full length of a truncated datagram, ping sockets not.
void receive(const model_engine& e, delivery& d, std::uint8_t buffer) {
    d.full_length = d.data.size();
    const std::size_t room = std::size_t{buffer} * 2;
    if (buffer != 0 && d.data.size() > room) {
        d.data.resize(room);
        if (!e.raw)
            d.full_length = unknown_length;
    }
}

// A raw IPv4 socket's view: the IP header in front (IHL 5..8, the options
// NOPs). Its checksum is not checked by the engine and left zero.
byte_vector with_ipv4_header(bytes icmp, const ip_address& source, const ip_address& destination,
                             std::uint8_t options) {
    const std::size_t ip_size = ipv4_min_header_size + std::size_t{options % 4U} * 4;
    byte_vector v(ip_size + icmp.size(), std::byte{1});
    v[0] = static_cast<std::byte>(0x40 | ip_size / 4);
    v[1] = std::byte{0};
    put16(v, 2, static_cast<std::uint16_t>(v.size()));
    put16(v, 4, 0x1234);
    put16(v, 6, 0);
    v[8] = std::byte{64};
    v[9] = std::byte{1};
    put16(v, 10, 0);
    put_address(v, 12, source);
    put_address(v, 16, destination);
    std::copy(icmp.begin(), icmp.end(), v.begin() + std::ptrdiff_t(ip_size));
    return v;
}

// The slot a `ping` byte names, and which of its requests.
struct ping_choice {
    std::uint32_t index = 0;
    const byte_vector* request = nullptr;
    bool previous = false;
};
ping_choice choose(const model_engine& e, std::uint8_t b) {
    ping_choice c;
    c.index = e.launched[(b & 0x7fU) % e.launched.size()];
    const slot& s = e.at(c.index);
    c.previous = (b & layout::ping_previous) != 0 && !s.previous_request.empty();
    c.request = c.previous ? &s.previous_request : &s.request;
    return c;
}

ip_address peer_of(const model_engine& e, const slot& s, std::uint8_t b) {
    return b == layout::peer_genuine ? s.target : host(e.family, static_cast<std::uint8_t>(b - 1));
}

// Liveness for an ICMP error or error-queue quote of the payload bytes
// `quoted`, unchanged, for slot k's request, naming `destination`: a whole
// token identifies the ping; a shorter quote only (destination, sequence)
// and those bytes, and find_slot then takes the one ping in flight with all
// three or, if there are several, none. (A destination quoted inside an
// ICMPv6 error has no scope id: it is the same host as fe80::1 on every
// interface.)
std::optional<std::uint32_t> expected_for_quote(const model_engine& e, std::uint32_t k,
                                                const ip_address& destination, bytes quoted) {
    const slot& s = e.at(k);
    if (s.state != slot_state::in_flight)
        return std::nullopt;
    if (s.has_token && quoted.size() >= token_size)
        return k;
    unsigned holders = 0;
    for (std::size_t i = k & 0xffffU; i < e.slot_count; i += 65536) {
        const slot& other = e.at(i);
        if (other.state == slot_state::in_flight && mirror::same_host(other.target, destination) &&
            (!engine_checks_short_quotes ||
             is_prefix(quoted, bytes(other.request).subspan(icmp_header_size))))
            ++holders;
    }
    return holders == 1 ? std::optional<std::uint32_t>(k) : std::nullopt;
}

std::optional<delivery> make_reply(const model_engine& e, fuzz_input& in) {
    delivery d;
    d.what = "reply";
    const ping_choice c = choose(e, in.u8());
    const slot& s = e.at(c.index);
    const std::uint8_t peer = in.u8();
    const std::uint8_t options = in.u8();
    const std::uint8_t buffer = in.u8();
    if (c.request->empty())
        return std::nullopt; // the slot was never launched
    d.peer = peer_of(e, s, peer);

    byte_vector icmp = *c.request;
    icmp[0] = static_cast<std::byte>(reply_type(e.family));
    if (e.family == ip_family::v4) {
        put16(icmp, 2, 0);
        put16(icmp, 2, internet_checksum(icmp));
    }
    d.data = e.raw && e.family == ip_family::v4 ? with_ipv4_header(icmp, d.peer, our_v4, options)
                                                : std::move(icmp);
    const bool unchanged = apply_change(d.data, in);
    receive(e, d, buffer);

    if (unchanged && !c.previous && peer == layout::peer_genuine &&
        s.state == slot_state::in_flight) {
        const std::size_t ip_size =
            e.raw && e.family == ip_family::v4 ? ipv4_min_header_size + options % 4U * 4 : 0;
        const bool cut = d.data.size() < d.full_length || d.full_length == unknown_length;
        const bool whole_token =
            !s.has_token || d.data.size() >= ip_size + icmp_header_size + token_size;
        if (!cut || ((ip_size == 0 || engine_matches_cut_raw_ipv4) &&
                     d.data.size() >= ip_size + icmp_header_size && whole_token))
            d.expected = c.index;
    }
    return d;
}

std::optional<delivery> make_error(const model_engine& e, fuzz_input& in) {
    delivery d;
    d.what = "ICMP error";
    const ping_choice c = choose(e, in.u8());
    const slot& s = e.at(c.index);
    const std::uint8_t peer = in.u8();
    const std::uint8_t type_choice = in.u8();
    const std::uint8_t code = in.u8();
    const std::uint16_t quote_choice = in.u16();
    const std::uint8_t buffer = in.u8();
    if (c.request->empty())
        return std::nullopt;
    const bool v4 = e.family == ip_family::v4;

    const bytes request = *c.request;
    const std::size_t quoted =
        icmp_header_size + quote_choice % (request.size() - icmp_header_size + 1);
    const std::size_t ip_size = v4 ? ipv4_min_header_size : ipv6_header_size;
    byte_vector icmp(icmp_header_size + ip_size + quoted, std::byte{0});
    icmp[0] = static_cast<std::byte>(v4 ? std::array<std::uint8_t, 3>{3, 11, 12}[type_choice % 3]
                                        : std::array<std::uint8_t, 4>{1, 2, 3, 4}[type_choice % 4]);
    icmp[1] = static_cast<std::byte>(code % 16);
    const std::span<std::byte> ip = std::span(icmp).subspan(icmp_header_size, ip_size);
    const ip_address destination = peer_of(e, s, peer);
    if (v4) {
        ip[0] = std::byte{0x45};
        put16(ip, 2, static_cast<std::uint16_t>(ip_size + request.size()));
        ip[8] = std::byte{1};
        ip[9] = std::byte{1};
        put_address(ip, 12, our_v4);
        put_address(ip, 16, destination);
    } else {
        ip[0] = std::byte{0x60};
        put16(ip, 4, static_cast<std::uint16_t>(request.size()));
        ip[6] = std::byte{58};
        ip[7] = std::byte{1};
        put_address(ip, 8, our_v6);
        put_address(ip, 24, destination);
    }
    std::copy_n(request.begin(), quoted, icmp.begin() + std::ptrdiff_t(icmp_header_size + ip_size));
    if (v4)
        put16(icmp, 2, internet_checksum(icmp));
    // The router that sent it is the source; matching goes by the quote.
    d.peer = v4 ? router_v4 : our_v6;
    d.data = e.raw && v4 ? with_ipv4_header(icmp, d.peer, our_v4, 0) : std::move(icmp);
    const bool unchanged = apply_change(d.data, in);
    receive(e, d, buffer);

    if (unchanged && !c.previous && peer == layout::peer_genuine) {
        const std::size_t outer = e.raw && v4 ? ipv4_min_header_size : 0;
        const std::size_t headers = outer + icmp_header_size + ip_size + icmp_header_size;
        const bool cut = d.data.size() < d.full_length || d.full_length == unknown_length;
        if ((!cut || outer == 0 || engine_matches_cut_raw_ipv4) && d.data.size() >= headers)
            d.expected = expected_for_quote(e, c.index, unscoped(destination),
                                            bytes(d.data).subspan(headers));
    }
    return d;
}

std::optional<delivery> make_errqueue(const model_engine& e, fuzz_input& in) {
    delivery d;
    d.what = "error queue quote";
    d.errqueue = true;
    const ping_choice c = choose(e, in.u8());
    const slot& s = e.at(c.index);
    const std::uint8_t peer = in.u8();
    const std::uint16_t quote_choice = in.u16();
    if (c.request->empty())
        return std::nullopt;
    const bytes request = *c.request;
    const std::size_t quoted =
        icmp_header_size + quote_choice % (request.size() - icmp_header_size + 1);
    d.data.assign(request.begin(), request.begin() + std::ptrdiff_t(quoted));
    d.peer = peer_of(e, s, peer);
    const bool unchanged = apply_change(d.data, in);
    d.full_length = d.data.size();
    if (unchanged && !c.previous && peer == layout::peer_genuine)
        d.expected =
            expected_for_quote(e, c.index, d.peer, bytes(d.data).subspan(icmp_header_size));
    return d;
}

std::optional<delivery> make_raw_bytes(const model_engine& e, fuzz_input& in) {
    delivery d;
    d.what = "raw bytes";
    d.errqueue = (in.u8() & 1) != 0;
    const ping_choice c = choose(e, 0);
    d.peer = peer_of(e, e.at(c.index), in.u8());
    const std::uint8_t buffer = in.u8();
    const bytes raw = in.take(in.u8());
    d.data.assign(raw.begin(), raw.end());
    if (d.errqueue)
        d.full_length = d.data.size();
    else
        receive(e, d, buffer);
    return d;
}

void deliver(model_engine& e, const std::optional<delivery>& packet) {
    if (!packet)
        return;
    const delivery& d = *packet;
    const mirror::verdict v = d.errqueue
                                  ? mirror::handle_errqueue(e, d.data, d.peer)
                                  : mirror::process_message(e, d.data, d.full_length, d.peer);
    if (v.slot && !genuine_for(e, d, *v.slot, v.message))
        violation(e, d, v.slot, "a packet that is not a genuine answer matched a ping");
    if (v.slot) {
        // An ICMP error quoting too little to tell two pings apart (same
        // destination and sequence) is refused, never guessed.
        unsigned claimants = 0;
        for (const auto& [index, s] : e.slots)
            if (genuine_for(e, d, index, v.message))
                ++claimants;
        if (claimants > 1)
            violation(e, d, v.slot, "a packet that answers several pings matched one of them");
    }
    if (d.expected && v.slot != d.expected)
        violation(e, d, v.slot, "a genuine answer did not match its ping");
    if (v.slot) // match_reply / match_error end the ping
        e.slots[*v.slot].state = slot_state::ended;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz_input in(bytes(reinterpret_cast<const std::byte*>(data), size));
    model_engine e;
    const std::uint8_t mode = in.u8();
    e.family = (mode & layout::mode_v6) != 0 ? ip_family::v6 : ip_family::v4;
    e.raw = (mode & layout::mode_raw) != 0;
    // As engine_core's constructor derives it from the key.
    e.raw_identifier = static_cast<std::uint16_t>(key.k0 >> 48 ^ key.k1);
    const std::uint8_t extra_slots = in.u8();

    struct launch_spec {
        std::uint32_t index;
        ip_address target;
        std::uint32_t size;
        std::uint32_t generation;
    };
    std::vector<launch_spec> launches(1 + in.u8() % layout::max_launches);
    bool high = false;
    for (launch_spec& l : launches) {
        l.index = layout::slot_index(in.u8());
        l.target = host(e.family, in.u8());
        l.size = layout::payload_size(in.u8());
        l.generation = layout::generation_base(in.u8());
        high = high || l.index >= 65536;
    }
    // The engine grows to 2^16 slots before it reuses any, so indices past
    // 2^16 mean every lower one exists.
    e.slot_count = (high ? 65536 + 8 : 8) + extra_slots % 8;
    for (const launch_spec& l : launches) {
        if (e.slots.find(l.index) == e.slots.end()) {
            e.slots[l.index].generation = l.generation;
            e.launched.push_back(l.index);
        }
        mirror::launch(e, l.index, l.target, l.size);
    }

    while (!in.empty()) {
        switch (static_cast<layout::event>(in.u8() % layout::event_count)) {
        case layout::event::reply:
            deliver(e, make_reply(e, in));
            break;
        case layout::event::error:
            deliver(e, make_error(e, in));
            break;
        case layout::event::errqueue:
            deliver(e, make_errqueue(e, in));
            break;
        case layout::event::raw_bytes:
            deliver(e, make_raw_bytes(e, in));
            break;
        case layout::event::relaunch: {
            const std::uint32_t index = choose(e, in.u8()).index;
            const ip_address target = host(e.family, in.u8());
            mirror::launch(e, index, target, layout::payload_size(in.u8()));
            break;
        }
        }
    }
    return 0;
}
