// SPDX-License-Identifier: MIT
// Fuzz target for lib/packet.hpp: the input goes to every parse entry point
// (parse_icmp for v4 and v6, with and without checksum verification;
// parse_quoted_echo; parse_ipv4_header and parse_icmp on what follows it;
// read_token; payload_matches), and each result is checked against what
// packet.hpp promises for *any* input:
//  - every returned span lies inside the input, where the format puts it;
//  - type, code and kind agree with the bytes; fields other than those are
//    left at their defaults on error;
//  - a second call gives the same result (no hidden state);
//  - checksum verification changes nothing but the bad_checksum verdict.
// Then parameters taken from the input drive a round trip: build_echo_request
// -> parse_icmp / parse_quoted_echo / an ICMP error quoting it -> read_token
// and payload_matches, which must accept exactly what was built, its
// allowed truncations, and nothing with a byte changed.
#include "fuzz_input.hpp"
#include "packet.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>
#include <vector>

namespace {

using namespace icmpengine;
using namespace icmpengine::detail;
using icmpengine::fuzz::fuzz_input;
using bytes = std::span<const std::byte>;

std::uint8_t u8(std::byte b) {
    return std::to_integer<std::uint8_t>(b);
}
std::uint16_t be16(bytes d, std::size_t at) {
    return static_cast<std::uint16_t>(u8(d[at]) << 8 | u8(d[at + 1]));
}
std::uint32_t be32(bytes d, std::size_t at) {
    return std::uint32_t{be16(d, at)} << 16 | be16(d, at + 2);
}
std::uint64_t be64(bytes d, std::size_t at) {
    return std::uint64_t{be32(d, at)} << 32 | be32(d, at + 4);
}
void put16(std::span<std::byte> d, std::size_t at, std::uint16_t v) {
    d[at] = static_cast<std::byte>(v >> 8);
    d[at + 1] = static_cast<std::byte>(v);
}

// `inner` lies within `outer` (compared as addresses: std::less gives a total
// order even for pointers into different objects). An empty span points
// nowhere in particular; where it must point is checked where it matters.
bool inside(bytes inner, bytes outer) {
    const std::less<const std::byte*> before;
    return inner.empty() || (!before(inner.data(), outer.data()) &&
                             !before(outer.data() + outer.size(), inner.data() + inner.size()));
}

bool same_span(bytes a, bytes b) {
    return a.data() == b.data() && a.size() == b.size();
}

bool same_message(const icmp_message& a, const icmp_message& b) {
    return a.kind == b.kind && a.type == b.type && a.code == b.code &&
           a.identifier == b.identifier && a.sequence == b.sequence &&
           same_span(a.payload, b.payload) && a.quoted_destination == b.quoted_destination;
}

bool is_default(const icmp_message& m) {
    return m.kind == icmp_kind::other && m.type == 0 && m.code == 0 && m.identifier == 0 &&
           m.sequence == 0 && m.payload.empty() && !m.quoted_destination;
}

std::uint8_t request_type(ip_family f) {
    return f == ip_family::v4 ? icmp4_echo_request : icmp6_echo_request;
}
std::uint8_t reply_type(ip_family f) {
    return f == ip_family::v4 ? icmp4_echo_reply : icmp6_echo_reply;
}

// RFC 792 / RFC 4443 type numbers, written out independently of packet.cpp.
icmp_kind expected_kind(ip_family f, std::uint8_t type, std::uint8_t code) {
    if (f == ip_family::v4) {
        switch (type) {
        case 0:
            return icmp_kind::echo_reply;
        case 8:
            return icmp_kind::echo_request;
        case 3:
            return code == 4 ? icmp_kind::packet_too_big : icmp_kind::dest_unreachable;
        case 11:
            return icmp_kind::time_exceeded;
        case 12:
            return icmp_kind::parameter_problem;
        default:
            return icmp_kind::other;
        }
    }
    switch (type) {
    case 129:
        return icmp_kind::echo_reply;
    case 128:
        return icmp_kind::echo_request;
    case 1:
        return icmp_kind::dest_unreachable;
    case 2:
        return icmp_kind::packet_too_big;
    case 3:
        return icmp_kind::time_exceeded;
    case 4:
        return icmp_kind::parameter_problem;
    default:
        return icmp_kind::other;
    }
}

void check_token(bytes payload) {
    const auto t = read_token(payload);
    const auto again = read_token(payload);
    FUZZ_CHECK(t == again);
    FUZZ_CHECK(t.has_value() == (payload.size() >= token_size));
    if (t) {
        FUZZ_CHECK(t->slot == be32(payload, 0));
        FUZZ_CHECK(t->generation == be32(payload, 4));
        FUZZ_CHECK(t->tag == be64(payload, 8));
    }
}

// What parse_icmp must make of an ICMP error, from packet.hpp's rules
// written out independently: the quote starts right after the 8-byte error
// header and is cut only at its end, by the RFC 4884 length (if >= 128 and
// within the data) and then by the quoted IP length (if it covers the
// headers); it must hold an IP header (v4: 20..60 bytes, protocol 1, first
// fragment; v6: 40 bytes, next header 58) followed by a whole echo request
// header with code 0.
struct quote_verdict {
    parse_error error = parse_error::none;
    bytes request; ///< the quoted echo request, on success
    ip_address destination;
};

quote_verdict expected_quote(bytes data, ip_family f) {
    const std::uint8_t type = u8(data[0]);
    bytes quote = data.subspan(icmp_header_size);
    std::size_t rfc4884 = 0;
    if (f == ip_family::v4)
        rfc4884 = std::size_t{u8(data[5])} * 4;
    else if (type == icmp6_dest_unreachable || type == icmp6_time_exceeded)
        rfc4884 = std::size_t{u8(data[4])} * 8;
    if (rfc4884 >= 128 && rfc4884 <= quote.size())
        quote = quote.first(rfc4884);

    quote_verdict v;
    if (quote.empty())
        return {parse_error::truncated, {}, {}};
    std::size_t ip_size = 0;
    if (f == ip_family::v4) {
        ip_size = std::size_t{u8(quote[0]) & 0x0fU} * 4;
        if (u8(quote[0]) >> 4 != 4 || ip_size < ipv4_min_header_size)
            return {parse_error::bad_ip_header, {}, {}};
        if (quote.size() < ip_size)
            return {parse_error::truncated, {}, {}};
        if (u8(quote[9]) != 1)
            return {parse_error::bad_ip_header, {}, {}};
        if ((be16(quote, 6) & 0x1fffU) != 0)
            return {parse_error::quote_not_echo, {}, {}};
        const std::size_t total = be16(quote, 2);
        if (total >= ip_size + icmp_header_size && total < quote.size())
            quote = quote.first(total);
        v.destination = ip_address::from_v4(be32(quote, 16));
    } else {
        ip_size = ipv6_header_size;
        if (u8(quote[0]) >> 4 != 6)
            return {parse_error::bad_ip_header, {}, {}};
        if (quote.size() < ip_size)
            return {parse_error::truncated, {}, {}};
        if (u8(quote[6]) != 58)
            return {parse_error::quote_not_echo, {}, {}};
        const std::size_t length = be16(quote, 4);
        if (length >= icmp_header_size && ip_size + length < quote.size())
            quote = quote.first(ip_size + length);
        std::array<std::uint8_t, 16> a{};
        for (std::size_t i = 0; i < a.size(); ++i)
            a[i] = u8(quote[24 + i]);
        v.destination = ip_address::from_v6_bytes(a);
    }
    v.request = quote.subspan(ip_size);
    if (v.request.size() < icmp_header_size)
        return {parse_error::truncated, {}, {}};
    if (u8(v.request[0]) != request_type(f) || u8(v.request[1]) != 0)
        return {parse_error::quote_not_echo, {}, {}};
    return v;
}

void check_error_quote(bytes data, ip_family f, parse_error e, const icmp_message& m) {
    const quote_verdict v = expected_quote(data, f);
    FUZZ_CHECK(e == v.error);
    if (e != parse_error::none)
        return;
    FUZZ_CHECK(m.quoted_destination == v.destination);
    FUZZ_CHECK(m.identifier == be16(v.request, 4) && m.sequence == be16(v.request, 6));
    FUZZ_CHECK(same_span(m.payload, v.request.subspan(icmp_header_size)));
}

// parse_icmp on arbitrary bytes; returns the verdict for the caller's
// cross-checks.
parse_error check_parse_icmp(bytes data, ip_family f, bool verify, icmp_message& m) {
    const parse_error e = parse_icmp(data, f, verify, m);
    icmp_message again;
    FUZZ_CHECK(parse_icmp(data, f, verify, again) == e);
    FUZZ_CHECK(same_message(m, again));
    FUZZ_CHECK(inside(m.payload, data));

    if (data.size() < icmp_header_size) {
        FUZZ_CHECK(e == parse_error::truncated && is_default(m));
        return e;
    }
    FUZZ_CHECK(m.type == u8(data[0]) && m.code == u8(data[1]));
    FUZZ_CHECK(m.kind == expected_kind(f, m.type, m.code));
    if (f == ip_family::v4 && verify)
        FUZZ_CHECK((e == parse_error::bad_checksum) == (internet_checksum(data) != 0));
    else
        FUZZ_CHECK(e != parse_error::bad_checksum);
    if (e != parse_error::none) {
        FUZZ_CHECK(m.identifier == 0 && m.sequence == 0 && m.payload.empty() &&
                   !m.quoted_destination);
    }
    if (e == parse_error::bad_checksum)
        return e;

    switch (m.kind) {
    case icmp_kind::echo_reply:
    case icmp_kind::echo_request:
        if (m.code != 0) {
            FUZZ_CHECK(e == parse_error::bad_code);
            break;
        }
        FUZZ_CHECK(e == parse_error::none);
        FUZZ_CHECK(m.identifier == be16(data, 4) && m.sequence == be16(data, 6));
        FUZZ_CHECK(same_span(m.payload, data.subspan(icmp_header_size)));
        FUZZ_CHECK(!m.quoted_destination);
        break;
    case icmp_kind::dest_unreachable:
    case icmp_kind::time_exceeded:
    case icmp_kind::packet_too_big:
    case icmp_kind::parameter_problem:
        check_error_quote(data, f, e, m);
        break;
    case icmp_kind::other:
        FUZZ_CHECK(e == parse_error::none && m.identifier == 0 && m.sequence == 0 &&
                   m.payload.empty() && !m.quoted_destination);
        break;
    }
    if (e == parse_error::none)
        check_token(m.payload);
    return e;
}

// Both families, with and without checksum verification: verification may
// only turn a verdict into bad_checksum, and means nothing for ICMPv6.
void check_all_parses(bytes data) {
    for (const ip_family f : {ip_family::v4, ip_family::v6}) {
        icmp_message plain;
        icmp_message verified;
        const parse_error e_plain = check_parse_icmp(data, f, false, plain);
        const parse_error e_verified = check_parse_icmp(data, f, true, verified);
        if (e_verified != parse_error::bad_checksum) {
            FUZZ_CHECK(e_plain == e_verified);
            FUZZ_CHECK(same_message(plain, verified));
        }
        if (f == ip_family::v6)
            FUZZ_CHECK(e_verified != parse_error::bad_checksum);
    }
}

void check_parse_quoted_echo(bytes data) {
    for (const ip_family f : {ip_family::v4, ip_family::v6}) {
        icmp_message m;
        const parse_error e = parse_quoted_echo(data, f, m);
        icmp_message again;
        FUZZ_CHECK(parse_quoted_echo(data, f, again) == e && same_message(m, again));
        FUZZ_CHECK(inside(m.payload, data));
        if (data.size() < icmp_header_size)
            FUZZ_CHECK(e == parse_error::truncated);
        else if (u8(data[0]) != request_type(f))
            FUZZ_CHECK(e == parse_error::quote_not_echo);
        else if (u8(data[1]) != 0)
            FUZZ_CHECK(e == parse_error::bad_code);
        else
            FUZZ_CHECK(e == parse_error::none);

        if (e == parse_error::none) {
            FUZZ_CHECK(m.kind == icmp_kind::echo_request && m.type == request_type(f) &&
                       m.code == 0);
            FUZZ_CHECK(m.identifier == be16(data, 4) && m.sequence == be16(data, 6));
            FUZZ_CHECK(same_span(m.payload, data.subspan(icmp_header_size)));
            FUZZ_CHECK(!m.quoted_destination);
            check_token(m.payload);
        } else {
            FUZZ_CHECK(m.identifier == 0 && m.sequence == 0 && m.payload.empty() &&
                       !m.quoted_destination);
            if (data.size() >= 2) {
                FUZZ_CHECK(m.type == u8(data[0]) && m.code == u8(data[1]));
                FUZZ_CHECK(m.kind == expected_kind(f, m.type, m.code));
            } else {
                FUZZ_CHECK(is_default(m));
            }
        }
    }
}

// The raw IPv4 socket path: the IP header, then the ICMP message after it.
void check_parse_ipv4(bytes data) {
    ipv4_header h;
    const parse_error e = parse_ipv4_header(data, h);
    ipv4_header again;
    FUZZ_CHECK(parse_ipv4_header(data, again) == e);
    FUZZ_CHECK(h.source == again.source && h.destination == again.destination &&
               h.ttl == again.ttl && h.protocol == again.protocol &&
               h.header_size == again.header_size);

    parse_error expected = parse_error::none;
    std::size_t header_size = 0;
    if (data.empty()) {
        expected = parse_error::truncated;
    } else if (u8(data[0]) >> 4 != 4 || (u8(data[0]) & 0x0fU) < 5) {
        expected = parse_error::bad_ip_header;
    } else {
        header_size = std::size_t{u8(data[0]) & 0x0fU} * 4;
        if (data.size() < header_size)
            expected = parse_error::truncated;
        else if (be16(data, 2) < header_size)
            expected = parse_error::bad_ip_header;
        else if (be16(data, 2) > data.size())
            expected = parse_error::truncated;
    }
    FUZZ_CHECK(e == expected);
    if (e != parse_error::none) {
        FUZZ_CHECK(h.source == ip_address{} && h.destination == ip_address{} && h.ttl == 0 &&
                   h.protocol == 0 && h.header_size == 0);
        return;
    }
    FUZZ_CHECK(h.header_size == header_size);
    FUZZ_CHECK(h.source == ip_address::from_v4(be32(data, 12)));
    FUZZ_CHECK(h.destination == ip_address::from_v4(be32(data, 16)));
    FUZZ_CHECK(h.ttl == u8(data[8]) && h.protocol == u8(data[9]));
    // As parse_datagram (reply_matcher.cpp) does for raw IPv4 sockets.
    icmp_message m;
    check_parse_icmp(data.subspan(h.header_size), ip_family::v4, true, m);
}

// payload_matches as packet.hpp specifies it, written out independently.
bool expected_payload_match(bytes received, std::size_t full_size, std::uint32_t sent_size,
                            const echo_token* token) {
    if (full_size != sent_size || received.size() > full_size)
        return false;
    std::size_t i = 0;
    if (token != nullptr && sent_size >= token_size) {
        if (received.size() < token_size || be32(received, 0) != token->slot ||
            be32(received, 4) != token->generation || be64(received, 8) != token->tag)
            return false;
        i = token_size;
    }
    for (; i < received.size(); ++i)
        if (u8(received[i]) != (i & 0xffU))
            return false;
    return true;
}

// payload_matches on the raw input, with sizes around the input's own.
void check_payload_matches(bytes data, fuzz_input& in) {
    const echo_token token{in.u32(), in.u32(), in.u64()};
    const echo_token* t = (in.u8() & 1) != 0 ? &token : nullptr;
    const std::int64_t around = std::int64_t(data.size()) + static_cast<std::int8_t>(in.u8());
    const std::size_t sent = around < 0 ? 0 : static_cast<std::size_t>(around);
    for (const std::size_t full : {sent, sent + 1, data.size()}) {
        const auto sent32 = static_cast<std::uint32_t>(sent);
        const bool got = payload_matches(data, full, sent32, t);
        FUZZ_CHECK(got == payload_matches(data, full, sent32, t));
        FUZZ_CHECK(got == expected_payload_match(data, full, sent32, t));
    }
}

// build_echo_request with parameters from the input, then everything that
// reads such a packet back.
void check_round_trip(fuzz_input& in) {
    const ip_family f = (in.u8() & 1) != 0 ? ip_family::v6 : ip_family::v4;
    const std::uint16_t identifier = in.u16();
    const std::uint16_t sequence = in.u16();
    // Up to an Ethernet MTU's worth: the fill pattern wraps at 256 and the
    // token ends at 16. The largest payload (max_payload_size) is left to
    // test_packet.cpp: each such run would cost as much as a thousand others.
    const std::uint32_t size = in.u16() % 1500;
    const echo_token token{in.u32(), in.u32(), in.u64()};
    const std::uint8_t flags = in.u8();
    const echo_token* t = (flags & 1) != 0 ? &token : nullptr;
    const bool checksum = (flags & 2) != 0;
    const bool has_token = t != nullptr && size >= token_size;
    const std::size_t packet_size = icmp_header_size + size;

    // Too small a buffer: nothing is built.
    std::vector<std::byte> buffer(packet_size + 16, std::byte{0xa5});
    FUZZ_CHECK(build_echo_request(std::span(buffer).first(packet_size - 1), f, identifier, sequence,
                                  size, t, checksum) == 0);
    // A larger one: exactly packet_size bytes are written.
    std::fill(buffer.begin(), buffer.end(), std::byte{0xa5});
    FUZZ_CHECK(build_echo_request(buffer, f, identifier, sequence, size, t, checksum) ==
               packet_size);
    for (std::size_t i = packet_size; i < buffer.size(); ++i)
        FUZZ_CHECK(buffer[i] == std::byte{0xa5});
    const std::span<std::byte> packet = std::span(buffer).first(packet_size);
    FUZZ_CHECK(u8(packet[0]) == request_type(f) && u8(packet[1]) == 0);
    FUZZ_CHECK(be16(packet, 4) == identifier && be16(packet, 6) == sequence);
    if (checksum)
        FUZZ_CHECK(internet_checksum(packet) == 0);
    else
        FUZZ_CHECK(be16(packet, 2) == 0);

    // Read back as our own request (the error queue) and as any ICMP.
    icmp_message q;
    FUZZ_CHECK(parse_quoted_echo(packet, f, q) == parse_error::none);
    FUZZ_CHECK(q.identifier == identifier && q.sequence == sequence);
    const bytes payload = q.payload;
    FUZZ_CHECK(payload.size() == size);
    icmp_message r;
    FUZZ_CHECK(check_parse_icmp(packet, f, checksum, r) == parse_error::none);
    FUZZ_CHECK(r.kind == icmp_kind::echo_request && same_span(r.payload, payload));
    if (has_token)
        FUZZ_CHECK(read_token(payload) == token);

    // What was sent matches; so does every prefix that keeps the token whole.
    FUZZ_CHECK(payload_matches(payload, size, size, t));
    FUZZ_CHECK(!payload_matches(payload, size + 1, size, t));
    FUZZ_CHECK(!payload_matches(payload, size, size + 1, t));
    // Nor does more than was sent, even if it continues the fill pattern.
    std::vector<std::byte> longer(payload.begin(), payload.end());
    longer.push_back(static_cast<std::byte>(size & 0xffU));
    FUZZ_CHECK(!payload_matches(longer, size, size, t));
    const std::size_t cut = in.u16() % (size + 1);
    FUZZ_CHECK(payload_matches(payload.first(cut), size, size, t) ==
               (!has_token || cut >= token_size));
    // Any changed byte is refused: the token and the fill are all checked.
    if (size > 0) {
        std::vector<std::byte> changed(payload.begin(), payload.end());
        const std::size_t at = in.u16() % size;
        changed[at] ^= static_cast<std::byte>(in.u8() | 1);
        FUZZ_CHECK(!payload_matches(changed, size, size, t));
    }
    if (has_token) {
        echo_token other = token;
        other.tag ^= std::uint64_t{1} << (in.u8() % 64);
        FUZZ_CHECK(!payload_matches(payload, size, size, &other));
    }

    // The peer's reply: the request with the reply type and a fresh checksum.
    std::vector<std::byte> reply(packet.begin(), packet.end());
    reply[0] = static_cast<std::byte>(reply_type(f));
    put16(reply, 2, 0);
    put16(reply, 2, internet_checksum(reply));
    icmp_message m;
    FUZZ_CHECK(check_parse_icmp(reply, f, true, m) == parse_error::none);
    FUZZ_CHECK(m.kind == icmp_kind::echo_reply && m.identifier == identifier &&
               m.sequence == sequence);
    FUZZ_CHECK(payload_matches(m.payload, size, size, t));

    // An ICMP error quoting the request behind a genuine IP header, cut
    // where the input says (a router quotes at least the ICMP header).
    const std::uint8_t error_type = f == ip_family::v4
                                        ? std::array<std::uint8_t, 3>{3, 11, 12}[in.u8() % 3]
                                        : std::array<std::uint8_t, 4>{1, 2, 3, 4}[in.u8() % 4];
    const std::size_t ip_size = f == ip_family::v4 ? ipv4_min_header_size : ipv6_header_size;
    const std::size_t quoted = icmp_header_size + in.u16() % (size + 1);
    std::vector<std::byte> error(icmp_header_size + ip_size + quoted);
    error[0] = static_cast<std::byte>(error_type);
    error[1] = static_cast<std::byte>(in.u8() % 16);
    const std::span<std::byte> ip = std::span(error).subspan(icmp_header_size, ip_size);
    const std::uint32_t destination = in.u32();
    std::array<std::uint8_t, 16> destination6{};
    if (f == ip_family::v4) {
        ip[0] = std::byte{0x45};
        put16(ip, 2, static_cast<std::uint16_t>(ip_size + packet_size));
        ip[8] = std::byte{1}; // the TTL that ran out
        ip[9] = std::byte{1};
        put16(ip, 16, static_cast<std::uint16_t>(destination >> 16));
        put16(ip, 18, static_cast<std::uint16_t>(destination));
    } else {
        ip[0] = std::byte{0x60};
        put16(ip, 4, static_cast<std::uint16_t>(packet_size));
        ip[6] = std::byte{58};
        ip[7] = std::byte{1};
        for (std::size_t i = 0; i < 4; ++i)
            destination6[i] = static_cast<std::uint8_t>(destination >> (24 - 8 * i));
        destination6[15] = 1;
        for (std::size_t i = 0; i < 16; ++i)
            ip[24 + i] = static_cast<std::byte>(destination6[i]);
    }
    std::copy_n(packet.begin(), quoted, error.begin() + std::ptrdiff_t(icmp_header_size + ip_size));
    put16(error, 2, internet_checksum(error));
    icmp_message e;
    FUZZ_CHECK(check_parse_icmp(error, f, true, e) == parse_error::none);
    FUZZ_CHECK(e.identifier == identifier && e.sequence == sequence);
    FUZZ_CHECK(e.quoted_destination == (f == ip_family::v4
                                            ? ip_address::from_v4(destination)
                                            : ip_address::from_v6_bytes(destination6)));
    // The quoted IP length is right, and the RFC 4884 length zero: the quote
    // is exactly what was cut.
    FUZZ_CHECK(e.payload.size() == quoted - icmp_header_size);
    FUZZ_CHECK(payload_matches(e.payload, size, size, t) ==
               (!has_token || e.payload.size() >= token_size));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const bytes input(reinterpret_cast<const std::byte*>(data), size);
    check_all_parses(input);
    check_parse_quoted_echo(input);
    check_parse_ipv4(input);
    check_token(input);
    fuzz_input in(input);
    check_payload_matches(input, in);
    check_round_trip(in);
    return 0;
}
