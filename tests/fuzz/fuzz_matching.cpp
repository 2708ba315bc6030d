// SPDX-License-Identifier: MIT
// Fuzz target for reply matching: lib/reply_matcher.hpp's parse_datagram and
// reply_matcher::match over a real detail::slot_table, without sockets or
// io_uring.
//
// The input launches a few pings (slot index, generation, target, payload
// size) as engine_core::launch does (engine_send.cpp): slot_table::claim
// stands in for alloc (the input chooses the index; a token-less ping is
// refused where alloc would refuse it, tokenless_conflict), begin_use, and
// the request from build_echo_request with the token reply_matcher::tag
// makes (fixed key). Then it delivers packets: genuine replies and ICMP
// errors for them, stale ones from a previous use of a slot, the same
// changed by the input, or raw bytes. Each takes the engine's path
// (engine_receive.cpp): process_message (parse_datagram, then match with
// the source for an echo reply or with the quoted destination for an ICMP
// error) or handle_errqueue (parse_quoted_echo, then match with msg_name's
// destination), and the verdict is checked against the safety property,
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
// The oracle knows nothing of tokens or tags: it compares the packet with
// the bytes the model remembers sending. The input format is in
// matching_input.hpp.
//
// History. Until the matcher moved out of engine_core into
// lib/reply_matcher.cpp, this target ran a hand-kept copy of it, and what
// the copy and the engine did apart was invisible. What the target found
// then, all fixed in the library and checked in full here:
//  - a quote of 1 to 15 payload bytes (too short for a whole token) was
//    matched by (destination, sequence) alone, even when it was
//    demonstrably another ping's or an older use's (quote_matches);
//  - a reply cut short by the receive buffer on a raw IPv4 socket was
//    dropped, though engine.hpp promises it matches (parse_datagram parses
//    a truncated receive's IP header on its own);
//  - a reply from fe80::1%3 carrying the token of a ping to fe80::1%2
//    matched it: the tag binds the address, not its scope
//    (regressions/fuzz_matching-token-scope-reply).
#include "fuzz_input.hpp"
#include "matching_input.hpp"
#include "packet.hpp"
#include "reply_matcher.hpp"
#include "slot_table.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <map>
#include <memory>
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
using verdict_kind = match_verdict::kind;

constexpr token_key key{0x0123456789abcdefULL, 0x0fedcba987654321ULL};

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

// The oracle's own statement of "the same host" (README, "Matching"):
// family and address bytes equal; a scope id counts only when both sides
// have one. Not lib's same_host, so that a bug there is caught here.
bool same_host_spec(const ip_address& a, const ip_address& b) {
    return a.family() == b.family() && a.bytes() == b.bytes() &&
           (a.scope_id() == 0 || b.scope_id() == 0 || a.scope_id() == b.scope_id());
}

// ------------------------------------------------------------ the engine

// What the model remembers of a slot it launched: not engine state, but
// what the oracle judges packets by.
struct ping_record {
    ip_address target;
    bool has_token = false;
    bool in_flight = false;
    byte_vector request;          ///< this use's, ICMP header onwards
    byte_vector previous_request; ///< the previous use's (stale replies)
};

// A slot table of `count` slots, as an engine has once that many pings
// were in flight at once (the table never shrinks). Kept from one input to
// the next: one of 65,544 slots is megabytes, and building one per input
// made the fuzzer a hundred times slower. Each input leaves it as it found
// it (~model_engine), so that inputs stay independent.
slot_table& table_of_size(std::uint32_t count) {
    static std::map<std::uint32_t, std::unique_ptr<slot_table>> tables;
    std::unique_ptr<slot_table>& t = tables[count];
    if (!t) {
        t = std::make_unique<slot_table>(0xffffffffu);
        t->claim(count - 1); // grows the table
        t->release(count - 1);
    }
    return *t;
}

// The engine's matching state: the real slot table and matcher, with the
// socket kind and raw identifier process_message passes to parse_datagram.
struct model_engine {
    model_engine(ip_family f, bool raw_socket, slot_table& table)
        : family(f), raw(raw_socket), slots(table) {}
    model_engine(const model_engine&) = delete;
    model_engine& operator=(const model_engine&) = delete;
    // Every slot the input touched back to a never-used one.
    ~model_engine() {
        for (const auto& [index, p] : pings) {
            if (slots[index].state != slot_state::free)
                slots.release(index);
            slots[index] = slot{};
        }
        FUZZ_CHECK(slots.in_use() == 0);
    }

    ip_family family;
    bool raw;
    // As engine_core's constructor derives it from the key.
    std::uint16_t raw_identifier = static_cast<std::uint16_t>(key.k0 >> 48 ^ key.k1);
    slot_table& slots;
    reply_matcher matcher{key};
    std::map<std::uint32_t, ping_record> pings; ///< the launched slots
    std::vector<std::uint32_t> launched;        ///< their indices, in launch order

    const ping_record& at(std::uint32_t index) const {
        static const ping_record never_used;
        const auto it = pings.find(index);
        return it == pings.end() ? never_used : it->second;
    }
};

// engine_expiry.cpp: engine_core::end: the ping's outcome; the slot waits
// for its send CQE before finish() frees it (the model never reaps one, so
// an ended slot is freed only when the input launches in it again).
void end_ping(model_engine& e, std::uint32_t index, bool reply) {
    slot& s = e.slots[index];
    if (s.state != slot_state::in_flight)
        return;
    s.state = slot_state::ended;
    s.outcome = reply ? slot_outcome::reply : slot_outcome::other;
    e.pings[index].in_flight = false;
}

// engine_send.cpp: engine_core::launch in slot `index`. A ping still in
// flight there times out first, and the ended one's slot is freed
// (end + finish). slot_table::alloc would refuse a token-less ping whose
// sequence another ping to the same host holds: then nothing is sent.
void launch(model_engine& e, std::uint32_t index, const ip_address& target,
            std::uint32_t payload_size) {
    end_ping(e, index, false);
    if (e.slots[index].state != slot_state::free)
        e.slots.release(index);
    const bool has_token = payload_size >= token_size;
    if (!has_token && e.slots.tokenless_conflict(index, target))
        return;
    e.slots.claim(index);
    const slot& s = e.slots.begin_use(index, target, payload_size);

    const auto sequence = static_cast<std::uint16_t>(index & 0xffffU);
    const echo_token token{index, s.generation,
                           e.matcher.tag(index, s.generation, sequence, target, payload_size)};
    ping_record& p = e.pings[index];
    p.target = target;
    p.has_token = has_token;
    p.in_flight = true;
    p.previous_request = std::move(p.request);
    p.request.assign(icmp_header_size + payload_size, std::byte{0});
    FUZZ_CHECK(build_echo_request(p.request, e.family, e.raw ? e.raw_identifier : 0, sequence,
                                  payload_size, has_token ? &token : nullptr,
                                  e.raw && e.family == ip_family::v4) == p.request.size());
}

/// What became of one delivered packet.
struct outcome {
    match_verdict verdict; ///< invalid with no reason if it never reached the matcher
    icmp_message message;  ///< as parsed
    bool is_error = false; ///< matched as an ICMP error (or error-queue quote)
    bool was_matched() const { return verdict.what == verdict_kind::matched; }
};

// engine_receive.cpp: engine_core::process_message and match_reply /
// match_error up to the verdict.
outcome process_message(const model_engine& e, const datagram& d) {
    outcome o;
    const parsed_datagram p = parse_datagram(d, e.family, e.raw, e.raw_identifier);
    o.message = p.message;
    switch (p.what) {
    case parsed_datagram::kind::echo_reply:
        o.verdict = e.matcher.match(e.slots, p.message, p.source, p.payload_length, false);
        return o;
    case parsed_datagram::kind::icmp_error:
        o.is_error = true;
        o.verdict = e.matcher.match(e.slots, p.message, *p.message.quoted_destination, 0, true);
        return o;
    case parsed_datagram::kind::foreign:
    case parsed_datagram::kind::invalid:
        return o;
    }
    return o;
}

// engine_receive.cpp: engine_core::handle_errqueue (ICMP and local origins
// alike end in match_error with the original destination from msg_name).
constexpr std::size_t errqueue_capacity = 2048; // family_state::err_data
outcome handle_errqueue(const model_engine& e, bytes data, const ip_address& destination) {
    outcome o;
    o.is_error = true;
    data = data.first(std::min(data.size(), errqueue_capacity));
    if (parse_quoted_echo(data, e.family, o.message) != parse_error::none)
        return o;
    o.verdict = e.matcher.match(e.slots, o.message, destination, 0, true);
    return o;
}

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

// On raw IPv4 sockets a packet starts with its IP header, whose source is
// the one the engine reads (the kernel fills msg_name from it, so they
// differ only in a forged delivery): that source and the header's size,
// from the bytes; nullopt if there is no whole header.
struct ipv4_prefix {
    ip_address source;
    std::size_t size;
};
std::optional<ipv4_prefix> raw_ipv4_header(bytes data) {
    if (data.size() < ipv4_min_header_size || u8(data[0]) >> 4 != 4)
        return std::nullopt;
    const std::size_t ip_size = std::size_t{u8(data[0]) & 0x0fU} * 4;
    if (ip_size < ipv4_min_header_size || data.size() < ip_size)
        return std::nullopt;
    return ipv4_prefix{ip_address::from_v4(be32(data, 12)), ip_size};
}

// The safety property, decided from the bytes alone (not from what the
// parser made of them): is `d` a genuine answer to slot k's ping in flight?
// `m` (the parse) is only used to learn where an ICMP error's quote was cut,
// and that cut is checked to lie inside the quoted request.
bool genuine_for(const model_engine& e, const delivery& d, std::uint32_t k, const icmp_message& m) {
    const ping_record& s = e.at(k);
    if (!s.in_flight)
        return false;
    const bytes sent = bytes(s.request).subspan(icmp_header_size);
    const auto sequence = static_cast<std::uint16_t>(k & 0xffffU);
    bytes data = d.data;

    if (d.errqueue) // our own request, as the kernel quotes it back
        return data.size() >= icmp_header_size && same_host_spec(d.peer, s.target) &&
               our_request_header(e, data, sequence, false) &&
               is_prefix(data.subspan(icmp_header_size), sent);

    ip_address source = d.peer;
    std::size_t full = d.full_length;
    if (e.raw && e.family == ip_family::v4) {
        const std::optional<ipv4_prefix> header = raw_ipv4_header(data);
        if (!header)
            return false;
        source = header->source;
        data = data.subspan(header->size);
        if (full != unknown_length)
            full = full >= header->size ? full - header->size : 0;
    }
    if (data.size() < icmp_header_size)
        return false;

    if (u8(data[0]) == reply_type(e.family)) {
        if (u8(data[1]) != 0 || be16(data, 6) != sequence ||
            (e.raw && be16(data, 4) != e.raw_identifier) || !same_host_spec(source, s.target))
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
    if (!our_request_header(e, request, sequence, e.raw) || !same_host_spec(destination, s.target))
        return false;
    if (m.payload.data() != request.data() + icmp_header_size ||
        m.payload.size() > request.size() - icmp_header_size)
        return false;
    return is_prefix(m.payload, sent);
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

const char* verdict_name(const match_verdict& v) {
    switch (v.what) {
    case verdict_kind::matched:
        return "matched";
    case verdict_kind::duplicate:
        return "duplicate";
    case verdict_kind::late:
        return "late";
    case verdict_kind::invalid:
        return v.reason != nullptr ? v.reason : "invalid (did not reach the matcher)";
    case verdict_kind::wrong_source: // the fuzzer's matcher has no check_source
        return "wrong source";
    }
    return "?";
}

[[noreturn]] void violation(const model_engine& e, const delivery& d, const outcome& o,
                            const char* what) {
    std::fprintf(stderr, "fuzz_matching: %s\n", what);
    std::fprintf(stderr, "  engine: %s %s, %zu slots\n",
                 e.family == ip_family::v4 ? "IPv4" : "IPv6", e.raw ? "raw" : "datagram",
                 e.slots.size());
    for (const auto& [index, p] : e.pings) {
        const slot& s = e.slots[index];
        std::fprintf(stderr, "  slot %u: %s gen %u to %s, %u payload bytes%s\n", index,
                     s.state == slot_state::in_flight ? "in flight"
                     : s.state == slot_state::ended   ? "ended"
                                                      : "free",
                     s.generation, s.target.to_string().c_str(), s.payload_size,
                     s.has_token() ? ", token" : "");
    }
    std::fprintf(stderr, "  packet (%s%s): %zu bytes, full length %s, peer %s\n    %s\n", d.what,
                 d.errqueue ? ", error queue" : "", d.data.size(),
                 d.full_length == unknown_length ? "unknown"
                                                 : std::to_string(d.full_length).c_str(),
                 d.peer.to_string().c_str(), hex(d.data).c_str());
    std::fprintf(stderr, "  verdict: %s, slot %s; expected: %s\n", verdict_name(o.verdict),
                 o.was_matched() ? std::to_string(o.verdict.slot).c_str() : "none",
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
    const ping_record& s = e.at(c.index);
    c.previous = (b & layout::ping_previous) != 0 && !s.previous_request.empty();
    c.request = c.previous ? &s.previous_request : &s.request;
    return c;
}

ip_address peer_of(const model_engine& e, const ping_record& s, std::uint8_t b) {
    return b == layout::peer_genuine ? s.target : host(e.family, static_cast<std::uint8_t>(b - 1));
}

// Liveness for an ICMP error or error-queue quote of the payload bytes
// `quoted`, unchanged, for slot k's request, naming `destination`: a whole
// token identifies the ping; a shorter quote only (destination, sequence)
// and those bytes, and the matcher then takes the one ping in flight with all
// three or, if there are several, none. (A destination quoted inside an
// ICMPv6 error has no scope id: it is the same host as fe80::1 on every
// interface.)
std::optional<std::uint32_t> expected_for_quote(const model_engine& e, std::uint32_t k,
                                                const ip_address& destination, bytes quoted) {
    const ping_record& s = e.at(k);
    if (!s.in_flight)
        return std::nullopt;
    if (s.has_token && quoted.size() >= token_size)
        return k;
    unsigned holders = 0;
    for (std::size_t i = k & 0xffffU; i < e.slots.size(); i += 65536) {
        const ping_record& other = e.at(static_cast<std::uint32_t>(i));
        if (other.in_flight && same_host_spec(other.target, destination) &&
            is_prefix(quoted, bytes(other.request).subspan(icmp_header_size)))
            ++holders;
    }
    return holders == 1 ? std::optional<std::uint32_t>(k) : std::nullopt;
}

std::optional<delivery> make_reply(const model_engine& e, fuzz_input& in) {
    delivery d;
    d.what = "reply";
    const ping_choice c = choose(e, in.u8());
    const ping_record& s = e.at(c.index);
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

    if (unchanged && !c.previous && peer == layout::peer_genuine && s.in_flight) {
        const std::size_t ip_size =
            e.raw && e.family == ip_family::v4 ? ipv4_min_header_size + options % 4U * 4 : 0;
        const bool cut = d.data.size() < d.full_length || d.full_length == unknown_length;
        const bool whole_token =
            !s.has_token || d.data.size() >= ip_size + icmp_header_size + token_size;
        if (!cut || (d.data.size() >= ip_size + icmp_header_size && whole_token))
            d.expected = c.index;
    }
    return d;
}

std::optional<delivery> make_error(const model_engine& e, fuzz_input& in) {
    delivery d;
    d.what = "ICMP error";
    const ping_choice c = choose(e, in.u8());
    const ping_record& s = e.at(c.index);
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
        if (d.data.size() >= headers)
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
    const ping_record& s = e.at(c.index);
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
    outcome o;
    if (d.errqueue) {
        o = handle_errqueue(e, d.data, d.peer);
    } else {
        // parse_datagram reads the first byte of a truncated raw IPv4
        // receive unchecked: the receive path never hands it an empty one.
        FUZZ_CHECK(!d.data.empty() || d.full_length == 0);
        o = process_message(e, datagram{d.data, d.full_length, d.peer, 0});
    }
    const match_verdict& v = o.verdict;
    if (v.what == verdict_kind::invalid && v.slot != no_slot)
        violation(e, d, o, "an invalid packet names a slot");
    // A duplicate or late answer may name the slot of the ended ping it
    // answers (for its RTT): never one in flight, never another host's.
    // The host it answers for: an echo reply's source (on raw IPv4 sockets
    // the IP header's, as in genuine_for), an ICMP error's quoted
    // destination (its source is the router that sent it), or the error
    // queue's original destination (msg_name).
    ip_address answered = d.peer;
    if (o.is_error && !d.errqueue && o.message.quoted_destination)
        answered = *o.message.quoted_destination;
    else if (!d.errqueue && e.raw && e.family == ip_family::v4)
        if (const std::optional<ipv4_prefix> header = raw_ipv4_header(d.data))
            answered = header->source;
    if ((v.what == verdict_kind::duplicate || v.what == verdict_kind::late) && v.slot != no_slot &&
        (v.slot >= e.slots.size() || e.slots[v.slot].state == slot_state::in_flight ||
         !same_host_spec(e.slots[v.slot].target, answered)))
        violation(e, d, o, "a duplicate or late answer names a slot it does not answer");
    if (o.was_matched() && !genuine_for(e, d, v.slot, o.message))
        violation(e, d, o, "a packet that is not a genuine answer matched a ping");
    if (o.was_matched()) {
        // An ICMP error quoting too little to tell two pings apart (same
        // destination and sequence) is refused, never guessed.
        unsigned claimants = 0;
        for (const auto& [index, p] : e.pings)
            if (genuine_for(e, d, index, o.message))
                ++claimants;
        if (claimants > 1)
            violation(e, d, o, "a packet that answers several pings matched one of them");
    }
    if (d.expected && !(o.was_matched() && v.slot == *d.expected))
        violation(e, d, o, "a genuine answer did not match its ping");
    if (o.was_matched()) // match_reply / match_error end the ping
        end_ping(e, v.slot, !o.is_error);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz_input in(bytes(reinterpret_cast<const std::byte*>(data), size));
    const std::uint8_t mode = in.u8();
    const ip_family family = (mode & layout::mode_v6) != 0 ? ip_family::v6 : ip_family::v4;
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
        l.target = host(family, in.u8());
        l.size = layout::payload_size(in.u8());
        l.generation = layout::generation_base(in.u8());
        high = high || l.index >= 65536;
    }
    // The engine grows to 2^16 slots before it reuses any, so indices past
    // 2^16 mean every lower one exists.
    const std::uint32_t slot_count = (high ? 65536 + 8 : 8) + extra_slots % 8U;
    model_engine e(family, (mode & layout::mode_raw) != 0, table_of_size(slot_count));
    for (const launch_spec& l : launches) {
        if (e.pings.find(l.index) == e.pings.end()) {
            e.slots[l.index].generation = l.generation; // the input's first generation
            e.launched.push_back(l.index);
            e.pings.emplace(l.index, ping_record{}); // launched, even if refused
        }
        launch(e, l.index, l.target, l.size);
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
            launch(e, index, target, layout::payload_size(in.u8()));
            break;
        }
        }
    }
    return 0;
}
