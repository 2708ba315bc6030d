// SPDX-License-Identifier: MIT
// Tests of detail::reply_matcher and parse_datagram (lib/reply_matcher.hpp):
// the matching rules one by one, on packets made from the requests the
// engine would send (build_echo_request with the matcher's tag), over a
// real slot_table. Each test takes a datagram the way engine_receive.cpp
// does: parse_datagram, then match with the source (an echo reply) or the
// quoted destination (an ICMP error), or parse_quoted_echo and match with
// msg_name's destination (the error queue).
#include <catch2/catch.hpp>

#include "packet.hpp"
#include "reply_matcher.hpp"
#include "slot_table.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace {

using namespace icmpengine;
using namespace icmpengine::detail;

using byte_vector = std::vector<std::byte>;
using bytes = std::span<const std::byte>;
using verdict_kind = match_verdict::kind;

constexpr token_key test_key{0x243f6a8885a308d3ULL, 0x13198a2e03707344ULL};
constexpr std::uint16_t our_identifier = 0x4242;

const ip_address target_a = ip_address::from_v4(0xc0000201);  // 192.0.2.1
const ip_address target_b = ip_address::from_v4(0xc0000202);  // 192.0.2.2
const ip_address router_v4 = ip_address::from_v4(0xcb007101); // 203.0.113.1
const ip_address local_v4 = ip_address::from_v4(0x0a0000fe);  // 10.0.0.254

// 2001:db8::last (RFC 3849), or fe80::last on interface `scope`.
ip_address v6(bool link_local, std::uint8_t last, std::uint32_t scope = 0) {
    std::array<std::uint8_t, 16> b{};
    b[0] = link_local ? 0xfe : 0x20;
    b[1] = link_local ? 0x80 : 0x01;
    b[2] = link_local ? 0x00 : 0x0d;
    b[3] = link_local ? 0x00 : 0xb8;
    b[15] = last;
    return ip_address::from_v6_bytes(b, scope);
}

void put16(byte_vector& v, std::size_t at, std::uint16_t x) {
    v.at(at) = static_cast<std::byte>(x >> 8);
    v.at(at + 1) = static_cast<std::byte>(x);
}

void put_address(byte_vector& v, std::size_t at, const ip_address& a) {
    const std::size_t n = a.is_v4() ? 4 : 16;
    for (std::size_t i = 0; i < n; ++i)
        v.at(at + i) = static_cast<std::byte>(a.bytes()[i]);
}

byte_vector cat(byte_vector a, bytes b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

// An IPv4 header in front of `inner` bytes, protocol ICMP.
byte_vector make_ipv4_header(std::size_t inner, const ip_address& source,
                             const ip_address& destination) {
    byte_vector v(ipv4_min_header_size);
    v[0] = std::byte{0x45};
    put16(v, 2, static_cast<std::uint16_t>(v.size() + inner));
    v[8] = std::byte{64};
    v[9] = std::byte{1};
    put_address(v, 12, source);
    put_address(v, 16, destination);
    return v;
}

byte_vector make_ipv6_header(std::size_t inner, const ip_address& source,
                             const ip_address& destination) {
    byte_vector v(ipv6_header_size);
    v[0] = std::byte{0x60};
    put16(v, 4, static_cast<std::uint16_t>(inner));
    v[6] = std::byte{58};
    v[7] = std::byte{64};
    put_address(v, 8, source);
    put_address(v, 24, destination);
    return v;
}

// The echo reply a host sends back for `request`: its type changed and,
// for ICMPv4, its checksum recomputed.
byte_vector reply_to(byte_vector request, ip_family family) {
    request.at(0) =
        static_cast<std::byte>(family == ip_family::v4 ? icmp4_echo_reply : icmp6_echo_reply);
    if (family == ip_family::v4) {
        put16(request, 2, 0);
        put16(request, 2, internet_checksum(request));
    }
    return request;
}

// An ICMP error (`type`, code 0) from a router, quoting the IP header of
// `request` to `destination` and its first 8 + `payload_quoted` bytes.
byte_vector error_for(const byte_vector& request, ip_family family, std::uint8_t type,
                      const ip_address& destination, std::size_t payload_quoted) {
    byte_vector v(icmp_header_size);
    v[0] = static_cast<std::byte>(type);
    const byte_vector ip = family == ip_family::v4
                               ? make_ipv4_header(request.size(), local_v4, destination)
                               : make_ipv6_header(request.size(), v6(false, 0xfe), destination);
    v = cat(v, ip);
    v = cat(v, bytes(request).first(icmp_header_size + payload_quoted));
    if (family == ip_family::v4)
        put16(v, 2, internet_checksum(v));
    return v;
}

// An engine's matching state: its slot table and matcher, and the socket
// kind parse_datagram is told about.
struct pinger {
    explicit pinger(ip_family f, bool raw_socket = false, bool random_fill = false,
                    bool check_source = false)
        : family(f), raw(raw_socket), matcher(test_key, random_fill, check_source) {}

    ip_family family;
    bool raw;
    slot_table slots{1u << 20};
    reply_matcher matcher;

    // engine_core::launch: a slot from alloc, a new use of it, its request.
    std::uint32_t launch(const ip_address& target, std::uint32_t payload_size) {
        const std::uint32_t index = slots.alloc(target, payload_size >= token_size);
        REQUIRE(index != no_slot);
        slots.begin_use(index, target, payload_size);
        return index;
    }
    // The same in a slot the test chooses (slot_table::claim).
    std::uint32_t launch_at(std::uint32_t index, const ip_address& target,
                            std::uint32_t payload_size) {
        slots.claim(index);
        slots.begin_use(index, target, payload_size);
        return index;
    }
    // engine_core::end (+ finish once its send completed): frees the slot.
    void end(std::uint32_t index, slot_outcome outcome, bool release = true) {
        slot& s = slots[index];
        s.state = slot_state::ended;
        s.outcome = outcome;
        if (release)
            slots.release(index);
    }

    // engine_core::build_request: what slot `index` sent in its current use.
    byte_vector request(std::uint32_t index) const {
        const slot& s = slots[index];
        const auto sequence = static_cast<std::uint16_t>(index & 0xffffu);
        const echo_token token{
            index, s.generation,
            matcher.tag(index, s.generation, sequence, s.target, s.payload_size)};
        byte_vector v(icmp_header_size + s.payload_size);
        REQUIRE(build_echo_request(v, family, raw ? our_identifier : 0, sequence, s.payload_size,
                                   s.has_token() ? &token : nullptr, raw && family == ip_family::v4,
                                   matcher.random_fill() ? &token.tag : nullptr) == v.size());
        return v;
    }
    byte_vector reply(std::uint32_t index) const { return reply_to(request(index), family); }

    parsed_datagram parse(bytes data, const ip_address& source, std::size_t full_length) const {
        return parse_datagram(datagram{data, full_length, source, 0}, family, raw, our_identifier);
    }

    // engine_core::process_message, match_reply and match_error up to the
    // verdict, for a datagram received whole (full_length: as the kernel
    // reported it).
    match_verdict receive(bytes data, const ip_address& source) const {
        return receive(data, source, data.size());
    }
    match_verdict receive(bytes data, const ip_address& source, std::size_t full_length) const {
        const parsed_datagram p = parse(data, source, full_length);
        if (p.what == parsed_datagram::kind::echo_reply)
            return matcher.match(slots, p.message, p.source, p.payload_length, false);
        if (p.what == parsed_datagram::kind::icmp_error)
            return matcher.match(slots, p.message, *p.message.quoted_destination, 0, true);
        FAIL("parse_datagram: neither an echo reply nor an ICMP error");
        return {};
    }

    // engine_core::handle_errqueue up to the verdict: our request quoted
    // back, `destination` from msg_name.
    match_verdict errqueue(bytes quote, const ip_address& destination) const {
        icmp_message m;
        REQUIRE(parse_quoted_echo(quote, family, m) == parse_error::none);
        return matcher.match(slots, m, destination, 0, true);
    }
};

bool matched(const match_verdict& v, std::uint32_t index) {
    return v.what == verdict_kind::matched && v.slot == index && v.reason == nullptr;
}

// Invalid, for the reason the rule gives (the engine logs it).
std::string rejection(const match_verdict& v) {
    if (v.what != verdict_kind::invalid)
        return "not invalid";
    return v.reason != nullptr ? v.reason : "no reason";
}

} // namespace

TEST_CASE("a genuine reply matches its ping", "[match]") {
    const ip_family family = GENERATE(ip_family::v4, ip_family::v6);
    const ip_address target = family == ip_family::v4 ? target_a : v6(false, 1);
    pinger p(family);
    const std::uint32_t other = p.launch(target, 56);
    const std::uint32_t index = p.launch(target, 56);
    CHECK(matched(p.receive(p.reply(index), target), index));
    CHECK(matched(p.receive(p.reply(other), target), other));
}

TEST_CASE("a reply from another source matches no ping", "[match]") {
    pinger p(ip_family::v4);
    SECTION("with a token: the tag binds the target") {
        const std::uint32_t index = p.launch(target_a, 56);
        CHECK(rejection(p.receive(p.reply(index), target_b)) == "token mismatch");
        CHECK(matched(p.receive(p.reply(index), target_a), index));
    }
    SECTION("without a token") {
        const std::uint32_t index = p.launch(target_a, 8);
        CHECK(rejection(p.receive(p.reply(index), target_b)) == "no ping of ours");
        CHECK(matched(p.receive(p.reply(index), target_a), index));
    }
}

TEST_CASE("check_source tells our token echoed from another address apart", "[match][source]") {
    const ip_family family = GENERATE(ip_family::v4, ip_family::v6);
    const ip_address target = family == ip_family::v4 ? target_a : v6(false, 1);
    const ip_address other = family == ip_family::v4 ? target_b : v6(false, 2);
    pinger checking(family, false, false, true);
    const std::uint32_t index = checking.launch(target, 56);
    const match_verdict v = checking.receive(checking.reply(index), other);
    CHECK(v.what == verdict_kind::wrong_source);
    CHECK(v.slot == no_slot);
    CHECK(std::string(v.reason) == "reply from another address");
    // A forged tag from elsewhere is no echo of ours: invalid, as ever.
    byte_vector forged = checking.reply(index);
    forged.at(icmp_header_size + 15) ^= std::byte{0x80};
    if (family == ip_family::v4) {
        put16(forged, 2, 0);
        put16(forged, 2, internet_checksum(forged));
    }
    CHECK(rejection(checking.receive(forged, other)) == "token mismatch");
    // The ping is still in flight and its own reply matches.
    CHECK(matched(checking.receive(checking.reply(index), target), index));
    // Without check_source the same echo is just invalid.
    pinger plain(family);
    const std::uint32_t i = plain.launch(target, 56);
    CHECK(rejection(plain.receive(plain.reply(i), other)) == "token mismatch");
}

TEST_CASE("random fill: replies match byte for byte, each request differs", "[match][random]") {
    const ip_family family = GENERATE(ip_family::v4, ip_family::v6);
    const std::uint32_t size = GENERATE(56u, 200u, 8u);
    const ip_address target = family == ip_family::v4 ? target_a : v6(false, 1);
    pinger p(family, false, true);
    const std::uint32_t a = p.launch(target, size);
    const std::uint32_t b = p.launch(target, size);
    CHECK(matched(p.receive(p.reply(a), target), a));
    CHECK(matched(p.receive(p.reply(b), target), b));
    // Not the fixed pattern, and not the same bytes in two requests.
    const byte_vector ra = p.request(a);
    const byte_vector rb = p.request(b);
    const std::size_t first = size >= token_size ? icmp_header_size + token_size : icmp_header_size;
    std::size_t pattern_bytes = 0;
    for (std::size_t i = first; i < ra.size(); ++i)
        pattern_bytes += ra[i] == static_cast<std::byte>(i - icmp_header_size) ? 1 : 0;
    CHECK(pattern_bytes < (ra.size() - first) / 4);
    CHECK(!std::equal(ra.begin() + static_cast<std::ptrdiff_t>(first), ra.end(),
                      rb.begin() + static_cast<std::ptrdiff_t>(first)));
    // One random byte changed: refused.
    byte_vector altered = p.reply(a);
    altered.back() ^= std::byte{1};
    if (family == ip_family::v4) {
        put16(altered, 2, 0);
        put16(altered, 2, internet_checksum(altered));
    }
    const match_verdict v = p.receive(altered, target);
    CHECK(v.what == verdict_kind::invalid);
    // A matcher expecting the fixed pattern refuses the random payload.
    pinger fixed(family);
    const std::uint32_t f = fixed.launch(target, size);
    byte_vector random_reply = reply_to(p.request(a), family);
    (void)f;
    CHECK(fixed.receive(random_reply, target).what != verdict_kind::matched);
}

TEST_CASE("a reply with another sequence number matches no ping", "[match]") {
    pinger p(ip_family::v4);
    const std::uint32_t size = GENERATE(56u, 8u);
    const std::uint32_t index = p.launch(target_a, size);
    p.launch(target_b, size); // sequence index + 1, to another host
    byte_vector reply = p.reply(index);
    put16(reply, 6, static_cast<std::uint16_t>(index + 1));
    put16(reply, 2, 0);
    put16(reply, 2, internet_checksum(reply));
    CHECK(rejection(p.receive(reply, target_a)) ==
          (size >= token_size ? "token for no slot of ours" : "no ping of ours"));
}

TEST_CASE("a reply whose payload differs from the request matches no ping", "[match]") {
    pinger p(ip_family::v6);
    const ip_address target = v6(false, 1);
    SECTION("with a token") {
        const std::uint32_t index = p.launch(target, 56);
        byte_vector reply = p.reply(index);
        SECTION("a pattern byte changed") {
            reply.at(icmp_header_size + 40) ^= std::byte{1};
            CHECK(rejection(p.receive(reply, target)) == "authentic token, altered payload");
        }
        SECTION("the tag changed: forged") {
            reply.at(icmp_header_size + 15) ^= std::byte{0x80};
            CHECK(rejection(p.receive(reply, target)) == "token mismatch");
        }
        SECTION("the generation changed") {
            reply.at(icmp_header_size + 7) ^= std::byte{1};
            CHECK(rejection(p.receive(reply, target)) == "token mismatch");
        }
        SECTION("a byte more than was sent") {
            reply.push_back(std::byte{56});
            CHECK(rejection(p.receive(reply, target)) == "token mismatch");
        }
    }
    SECTION("without a token") {
        const std::uint32_t index = p.launch(target, 12);
        byte_vector reply = p.reply(index);
        SECTION("a pattern byte changed") {
            reply.at(icmp_header_size + 3) ^= std::byte{1};
            CHECK(rejection(p.receive(reply, target)) == "token-less reply, altered payload");
        }
        SECTION("shorter than was sent") {
            reply.pop_back();
            CHECK(rejection(p.receive(reply, target)) == "no ping of ours");
        }
    }
}

TEST_CASE("a genuine reply for an earlier use of a slot is late or a duplicate", "[match]") {
    pinger p(ip_family::v4);
    const std::uint32_t index = p.launch_at(7, target_a, 56);
    const byte_vector first = p.reply(index);
    SECTION("the ping had its reply: a duplicate, before and after the slot is freed") {
        REQUIRE(matched(p.receive(first, target_a), index));
        p.end(index, slot_outcome::reply, false);
        CHECK(p.receive(first, target_a).what == verdict_kind::duplicate);
        p.slots.release(index);
        CHECK(p.receive(first, target_a).what == verdict_kind::duplicate);
        p.launch_at(index, target_b, 56); // the slot reused
        CHECK(p.receive(first, target_a).what == verdict_kind::duplicate);
        CHECK(matched(p.receive(p.reply(index), target_b), index));
        // An ICMP error about a ping that had its reply is late, not a
        // duplicate.
        const byte_vector error =
            error_for(p.request(index), ip_family::v4, icmp4_time_exceeded, target_b, 56);
        p.end(index, slot_outcome::reply);
        CHECK(p.receive(error, router_v4).what == verdict_kind::late);
    }
    SECTION("the ping timed out: late") {
        p.end(index, slot_outcome::other);
        CHECK(p.receive(first, target_a).what == verdict_kind::late);
        p.launch_at(index, target_a, 56);
        CHECK(p.receive(first, target_a).what == verdict_kind::late);
    }
    SECTION("two uses ago: late, whatever became of it") {
        p.end(index, slot_outcome::reply);
        p.launch_at(index, target_a, 56);
        p.end(index, slot_outcome::reply);
        p.launch_at(index, target_a, 56);
        CHECK(p.receive(first, target_a).what == verdict_kind::late);
    }
    SECTION("an ICMP error for an earlier use: late") {
        const byte_vector error =
            error_for(p.request(index), ip_family::v4, icmp4_dest_unreachable, target_a, 56);
        p.end(index, slot_outcome::other);
        p.launch_at(index, target_a, 56);
        CHECK(p.receive(error, router_v4).what == verdict_kind::late);
    }
    SECTION("a truncated reply for an earlier use cannot be verified") {
        p.end(index, slot_outcome::other);
        p.launch_at(index, target_a, 56);
        CHECK(rejection(p.receive(bytes(first).first(40), target_a, unknown_length)) ==
              "truncated reply to a reused slot");
    }
    SECTION("a token-less ping that ended") {
        const std::uint32_t tokenless = p.launch_at(8, target_a, 8);
        const byte_vector reply = p.reply(tokenless);
        REQUIRE(matched(p.receive(reply, target_a), tokenless));
        p.end(tokenless, slot_outcome::reply);
        CHECK(p.receive(reply, target_a).what == verdict_kind::duplicate);
    }
}

TEST_CASE("a reply cut short by the receive buffer matches as far as it goes", "[match]") {
    SECTION("datagram socket: the full length is unknown") {
        pinger p(ip_family::v4);
        const std::uint32_t index = p.launch(target_a, 56);
        const byte_vector reply = p.reply(index);
        CHECK(matched(
            p.receive(bytes(reply).first(icmp_header_size + 20), target_a, unknown_length), index));
        // The whole token is needed: a cut token authenticates nothing.
        CHECK(rejection(p.receive(bytes(reply).first(icmp_header_size + 10), target_a,
                                  unknown_length)) == "no ping of ours");
        byte_vector changed = reply;
        changed.at(icmp_header_size + 18) ^= std::byte{4};
        CHECK(rejection(p.receive(bytes(changed).first(icmp_header_size + 20), target_a,
                                  unknown_length)) == "authentic token, altered payload");
    }
    SECTION("raw IPv4 socket: the IP header's length runs past the buffer") {
        pinger p(ip_family::v4, true);
        const std::uint32_t index = p.launch(target_a, 56);
        const byte_vector reply = p.reply(index);
        const byte_vector packet = cat(make_ipv4_header(reply.size(), target_a, local_v4), reply);
        const std::size_t cut = ipv4_min_header_size + icmp_header_size + 24;
        // The source comes from the IP header, not from msg_name.
        CHECK(matched(p.receive(bytes(packet).first(cut), router_v4, packet.size()), index));
        CHECK(matched(p.receive(packet, router_v4), index));
    }
}

TEST_CASE("a reply without a token is matched by source and sequence", "[match][tokenless]") {
    pinger p(ip_family::v4);
    SECTION("the one ping to that source with that sequence") {
        const std::uint32_t index = p.launch(target_a, 8);
        p.launch_at(index + 65536, target_b, 8); // the same sequence, another host
        CHECK(matched(p.receive(p.reply(index), target_a), index));
        CHECK(matched(p.receive(p.reply(index + 65536), target_b), index + 65536));
    }
    SECTION("the payload length tells two pings apart") {
        const std::uint32_t index = p.launch(target_a, 8);
        p.launch_at(index + 65536, target_a, 4);
        CHECK(matched(p.receive(p.reply(index + 65536), target_a), index + 65536));
    }
    SECTION("two pings the reply could answer: refused, never guessed") {
        const std::uint32_t index = p.launch(target_a, 8);
        // slot_table::alloc never hands out this slot (tokenless_conflict);
        // the matcher refuses the ambiguity all the same.
        CHECK(p.slots.tokenless_conflict(index + 65536, target_a));
        CHECK_FALSE(p.slots.tokenless_conflict(index + 65536, target_b));
        p.launch_at(index + 65536, target_a, 8);
        CHECK(rejection(p.receive(p.reply(index), target_a)) == "ambiguous token-less match");
    }
    SECTION("a token ping does not answer a token-less reply") {
        const std::uint32_t index = p.launch(target_a, 56);
        byte_vector reply = p.reply(index);
        reply.resize(icmp_header_size + 8);
        CHECK(rejection(p.receive(reply, target_a)) == "no ping of ours");
    }
}

TEST_CASE("an ICMP error matches the ping its quote is from", "[match][error]") {
    const ip_family family = GENERATE(ip_family::v4, ip_family::v6);
    const bool v4 = family == ip_family::v4;
    const ip_address a = v4 ? target_a : v6(false, 1);
    const ip_address b = v4 ? target_b : v6(false, 2);
    const ip_address router = v4 ? router_v4 : v6(false, 0x99);
    const std::uint8_t type = v4 ? icmp4_time_exceeded : icmp6_time_exceeded;
    pinger p(family);
    const std::uint32_t index = p.launch(a, 56);
    const byte_vector request = p.request(index);

    SECTION("a quote with the whole token") {
        CHECK(matched(p.receive(error_for(request, family, type, a, 56), router), index));
        CHECK(matched(p.receive(error_for(request, family, type, a, 16), router), index));
        CHECK(rejection(p.receive(error_for(request, family, type, b, 56), router)) ==
              "token mismatch");
    }
    SECTION("no payload quoted (RFC 792): destination and sequence") {
        CHECK(matched(p.receive(error_for(request, family, type, a, 0), router), index));
        CHECK(rejection(p.receive(error_for(request, family, type, b, 0), router)) ==
              "no ping of ours");
    }
    SECTION("a short quote must be the start of what was sent") {
        CHECK(matched(p.receive(error_for(request, family, type, a, 8), router), index));
        byte_vector changed = request;
        changed.at(icmp_header_size + 2) ^= std::byte{1};
        CHECK(rejection(p.receive(error_for(changed, family, type, a, 8), router)) ==
              "no ping of ours");
    }
    SECTION("two pings to the same host with the same sequence") {
        const std::uint32_t twin = p.launch_at(index + 65536, a, 56);
        // Nothing of the payload quoted: either could be meant.
        CHECK(rejection(p.receive(error_for(request, family, type, a, 0), router)) ==
              "ambiguous token-less match");
        // Eight bytes quote the slot index and generation: they tell.
        CHECK(matched(p.receive(error_for(request, family, type, a, 8), router), index));
        CHECK(matched(p.receive(error_for(p.request(twin), family, type, a, 8), router), twin));
    }
    SECTION("through the error queue: the destination from msg_name") {
        CHECK(matched(p.errqueue(request, a), index));
        CHECK(matched(p.errqueue(bytes(request).first(icmp_header_size + 4), a), index));
        CHECK(rejection(p.errqueue(request, b)) == "token mismatch");
    }
}

TEST_CASE("a link-local target's reply must come from the ping's interface", "[match][scope]") {
    pinger p(ip_family::v6);
    const ip_address target = v6(true, 1, 2); // fe80::1%2
    const std::uint32_t size = GENERATE(56u, 8u);
    const std::uint32_t index = p.launch(target, size);
    const byte_vector reply = p.reply(index);
    CHECK(matched(p.receive(reply, v6(true, 1, 2)), index));
    CHECK(matched(p.receive(reply, v6(true, 1, 0)), index)); // no scope reported
    CHECK(rejection(p.receive(reply, v6(true, 1, 3))) ==
          (size >= token_size ? "token from another interface" : "no ping of ours"));
    // An error queue quote names the destination with its scope as well.
    CHECK(p.errqueue(p.request(index), v6(true, 1, 3)).what == verdict_kind::invalid);
    CHECK(matched(p.errqueue(p.request(index), v6(true, 1, 2)), index));
}

TEST_CASE("parse_datagram keeps only our identifier on raw sockets", "[parse]") {
    using kind = parsed_datagram::kind;
    const ip_family family = GENERATE(ip_family::v4, ip_family::v6);
    const bool v4 = family == ip_family::v4;
    const ip_address target = v4 ? target_a : v6(false, 1);
    pinger p(family, true);
    const std::uint32_t index = p.launch(target, 56);
    const byte_vector request = p.request(index);
    // Another process's request: the same but for the identifier.
    byte_vector foreign_request = request;
    put16(foreign_request, 4, static_cast<std::uint16_t>(our_identifier ^ 1));
    const byte_vector reply = reply_to(request, family);
    const byte_vector foreign = reply_to(foreign_request, family);
    const std::uint8_t type = v4 ? icmp4_time_exceeded : icmp6_time_exceeded;
    const byte_vector error = error_for(request, family, type, target, 56);
    const byte_vector foreign_error = error_for(foreign_request, family, type, target, 56);
    // Raw IPv4 sockets deliver the IP header too.
    const auto as_received = [&](const byte_vector& icmp, const ip_address& from) {
        return v4 ? cat(make_ipv4_header(icmp.size(), from, local_v4), icmp) : icmp;
    };
    const auto parse = [&](const pinger& q, const byte_vector& data, const ip_address& from) {
        return q.parse(data, from, data.size());
    };
    const ip_address router = v4 ? router_v4 : v6(false, 0x99);

    CHECK(parse(p, as_received(reply, target), target).what == kind::echo_reply);
    CHECK(parse(p, as_received(foreign, target), target).what == kind::foreign);
    CHECK(parse(p, as_received(error, router), router).what == kind::icmp_error);
    CHECK(parse(p, as_received(foreign_error, router), router).what == kind::foreign);
    CHECK(matched(p.receive(as_received(reply, target), target), index));
    // Our own requests, looped back to a raw socket, are not replies.
    CHECK(parse(p, as_received(request, target), target).what == kind::foreign);

    // A datagram socket's kernel demultiplexes by identifier (and rewrites
    // it): parse_datagram does not look at it.
    pinger d(family);
    CHECK(parse(d, foreign, target).what == kind::echo_reply);
}

TEST_CASE("parse_datagram reports the payload length and checks raw IPv4 checksums", "[parse]") {
    using kind = parsed_datagram::kind;
    pinger p(ip_family::v4, true);
    const std::uint32_t index = p.launch(target_a, 56);
    const byte_vector reply = p.reply(index);
    const byte_vector packet = cat(make_ipv4_header(reply.size(), target_a, local_v4), reply);

    const parsed_datagram whole = p.parse(packet, router_v4, packet.size());
    CHECK(whole.what == kind::echo_reply);
    CHECK(whole.payload_length == 56);
    CHECK(whole.source == target_a);
    CHECK(whole.ttl == 64);

    byte_vector corrupt = packet;
    corrupt.at(packet.size() - 1) ^= std::byte{1};
    const parsed_datagram bad = p.parse(corrupt, router_v4, corrupt.size());
    CHECK(bad.what == kind::invalid);
    CHECK(bad.error == parse_error::bad_checksum);
    // Cut short, it cannot be checksummed: the payload check decides.
    const std::size_t cut = packet.size() - 4;
    const parsed_datagram prefix = p.parse(bytes(packet).first(cut), router_v4, packet.size());
    CHECK(prefix.what == kind::echo_reply);
    CHECK(prefix.payload_length == 56);
    CHECK(matched(p.receive(bytes(corrupt).first(cut), router_v4, packet.size()), index));
    byte_vector early = packet;
    early.at(cut - 1) ^= std::byte{1};
    CHECK(rejection(p.receive(bytes(early).first(cut), router_v4, packet.size())) ==
          "authentic token, altered payload");
}
