// SPDX-License-Identifier: MIT
#include "reply_matcher.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>

namespace icmpengine::detail {
namespace {

using verdict_kind = match_verdict::kind;

match_verdict matched(std::uint32_t index) noexcept {
    return {verdict_kind::matched, index, nullptr};
}

match_verdict invalid(const char* why) noexcept {
    return {verdict_kind::invalid, no_slot, why};
}

/// A genuine answer to a ping that has ended: a duplicate if that ping had
/// its reply (an error after a reply counts as late), otherwise late.
/// `index`: the slot, if it still describes that ping's use.
match_verdict stale(slot_outcome outcome, bool is_error, std::uint32_t index) noexcept {
    const bool duplicate = !is_error && outcome == slot_outcome::reply;
    return {duplicate ? verdict_kind::duplicate : verdict_kind::late, index, nullptr};
}

/// Raw IPv4 sockets deliver the IP header too: parses it into `out`,
/// moving `d.data` past it. A header whose total length runs past what a
/// truncated receive holds is parsed from a copy that claims no more than
/// itself.
parse_error strip_ipv4_header(datagram& d, bool truncated, ipv4_header& out) noexcept {
    parse_error e = parse_ipv4_header(d.data, out);
    if (e == parse_error::truncated && truncated && !d.data.empty()) {
        const std::size_t header = (std::to_integer<std::size_t>(d.data[0]) & 0x0f) * 4;
        std::array<std::byte, 60> copy{};
        if (header >= ipv4_min_header_size && header <= d.data.size()) {
            std::copy_n(d.data.begin(), header, copy.begin());
            copy[2] = std::byte(header >> 8);
            copy[3] = std::byte(header & 0xff);
            e = parse_ipv4_header(std::span<const std::byte>(copy.data(), header), out);
        }
    }
    if (e != parse_error::none)
        return e;
    d.source = out.source;
    d.ttl = out.ttl;
    d.tos = out.tos;
    d.data = d.data.subspan(out.header_size);
    if (d.full_length != unknown_length)
        d.full_length = d.full_length >= out.header_size ? d.full_length - out.header_size : 0;
    return parse_error::none;
}

} // namespace

parsed_datagram parse_datagram(const datagram& received, ip_family family, bool raw,
                               std::uint16_t raw_identifier) noexcept {
    using kind = parsed_datagram::kind;
    parsed_datagram p;
    datagram d = received;
    // Only a whole raw IPv4 packet can have its ICMP checksum verified (the
    // kernel verified it for every other socket kind).
    bool verify_checksum = false;
    if (raw && family == ip_family::v4) {
        const bool truncated = d.full_length == unknown_length || d.full_length > d.data.size();
        verify_checksum = !truncated; // the token and payload checks remain
        ipv4_header ip;
        if ((p.error = strip_ipv4_header(d, truncated, ip)) != parse_error::none)
            return p;
    }
    p.source = d.source;
    p.ttl = d.ttl;
    p.tos = d.tos;
    if ((p.error = parse_icmp(d.data, family, verify_checksum, p.message)) != parse_error::none)
        return p;
    const icmp_message& m = p.message;
    // Raw sockets see every process's ICMP: only our identifier is ours.
    if (raw && m.kind != icmp_kind::other && m.kind != icmp_kind::echo_request &&
        m.identifier != raw_identifier) {
        p.what = kind::foreign;
        return p;
    }
    switch (m.kind) {
    case icmp_kind::echo_reply:
        p.what = kind::echo_reply;
        if (d.full_length != unknown_length)
            p.payload_length =
                d.full_length >= icmp_header_size ? d.full_length - icmp_header_size : 0;
        return p;
    case icmp_kind::dest_unreachable:
    case icmp_kind::time_exceeded:
    case icmp_kind::packet_too_big:
    case icmp_kind::parameter_problem:
        p.what = m.quoted_destination ? kind::icmp_error : kind::invalid;
        return p;
    case icmp_kind::echo_request:
    case icmp_kind::other:
        break;
    }
    p.what = kind::foreign;
    return p;
}

ping_status error_status(ip_family family, std::uint8_t type, std::uint8_t code) noexcept {
    if (family == ip_family::v4) {
        switch (type) {
        case icmp4_dest_unreachable:
            return code == icmp4_frag_needed_code ? ping_status::packet_too_big
                                                  : ping_status::unreachable;
        case icmp4_time_exceeded:
            return ping_status::time_exceeded;
        default:
            return ping_status::parameter_problem;
        }
    }
    switch (type) {
    case icmp6_dest_unreachable:
        return ping_status::unreachable;
    case icmp6_packet_too_big:
        return ping_status::packet_too_big;
    case icmp6_time_exceeded:
        return ping_status::time_exceeded;
    default:
        return ping_status::parameter_problem;
    }
}

std::uint64_t reply_matcher::tag(std::uint32_t slot, std::uint32_t generation,
                                 std::uint16_t sequence, const ip_address& target,
                                 std::size_t payload_size) const noexcept {
    std::uint64_t a = 0;
    std::uint64_t b = 0;
    std::memcpy(&a, target.bytes().data(), 8);
    std::memcpy(&b, target.bytes().data() + 8, 8);
    const std::uint64_t size_and_family =
        std::uint64_t{payload_size} << 1 | (target.is_v6() ? 1u : 0u);
    const token_key key{m_key.k0 ^ a, m_key.k1 ^ (b + size_and_family * 0x9e3779b97f4a7c15ull)};
    return token_tag(key, slot, generation, sequence);
}

match_verdict reply_matcher::match(const slot_table& slots, const icmp_message& m,
                                   const ip_address& peer, std::size_t payload_length,
                                   bool is_error) const noexcept {
    if (m.payload.size() >= token_size)
        return match_token(slots, m, peer, payload_length, is_error);
    return match_tokenless(slots, m, peer, payload_length, is_error);
}

match_verdict reply_matcher::match_token(const slot_table& slots, const icmp_message& m,
                                         const ip_address& peer, std::size_t payload_length,
                                         bool is_error) const noexcept {
    const echo_token t = *read_token(m.payload);
    if (t.slot >= slots.size() || (t.slot & 0xffffu) != m.sequence)
        return invalid("token for no slot of ours");
    const slot& s = slots[t.slot];
    const bool current = t.generation == s.generation;
    // The size the request was sent with. A reply is as long as its request;
    // an ICMP error's quote and a truncated receive are not, and then only
    // the slot can say, as long as it still describes that use.
    std::size_t sent_size = payload_length;
    const bool prefix_only = is_error || payload_length == unknown_length;
    if (prefix_only) {
        if (!current) // about an earlier use of a reused slot: unverifiable
            return is_error ? stale(slot_outcome::other, is_error, no_slot)
                            : invalid("truncated reply to a reused slot");
        sent_size = s.payload_size;
    }
    // The tag binds slot, generation, sequence, target and size: a copy from
    // another source, or of another length, fails here whatever became of
    // the slot since (even after reuse).
    if (tag(t.slot, t.generation, m.sequence, peer, sent_size) != t.tag) {
        // fping --check-source: our token, echoed by another host (a NAT,
        // an anycast or broadcast answer). Never a match: the tag is keyed
        // with the address pinged.
        if (m_check_source && current && !is_error &&
            tag(t.slot, t.generation, m.sequence, s.target, sent_size) == t.tag)
            return {verdict_kind::wrong_source, no_slot, "reply from another address"};
        return invalid("token mismatch");
    }
    // The tag binds the address, not its scope: a link-local reply from
    // another interface than the ping went out on is not its reply.
    if (current && !same_host(s.target, peer))
        return invalid("token from another interface");
    if ((prefix_only && m.payload.size() > sent_size) ||
        !payload_matches(m.payload, sent_size, static_cast<std::uint32_t>(sent_size), &t,
                         m_random_fill ? &t.tag : nullptr))
        return invalid("authentic token, altered payload");
    if (current && s.state == slot_state::in_flight)
        return matched(t.slot);
    return stale(current                            ? s.outcome
                 : t.generation + 1 == s.generation ? s.prev_outcome
                                                    : slot_outcome::other,
                 is_error, current ? t.slot : no_slot);
}

match_verdict reply_matcher::match_tokenless(const slot_table& slots, const icmp_message& m,
                                             const ip_address& peer, std::size_t payload_length,
                                             bool is_error) const noexcept {
    // Among the slots that share the sequence (index modulo 2^16).
    std::optional<std::uint32_t> found;
    std::optional<slot_outcome> ended;
    std::uint32_t ended_index = no_slot;
    for (std::size_t i = m.sequence; i < slots.size(); i += 65536) {
        const auto index = static_cast<std::uint32_t>(i);
        const slot& s = slots[index];
        if (!same_host(s.target, peer))
            continue;
        if (s.state != slot_state::in_flight) {
            if (!s.has_token()) {
                ended = s.outcome;
                ended_index = index;
            }
            continue;
        }
        if (!is_error && (s.has_token() ||
                          (payload_length != unknown_length && s.payload_size != payload_length)))
            continue;
        // An ICMP error quoting a few payload bytes (fewer than a token) must
        // quote what this ping sent: the start of its token, or its pattern.
        if (is_error && !m.payload.empty() && !quote_matches(slots, index, m))
            continue;
        if (found)
            return invalid("ambiguous token-less match");
        found = index;
    }
    if (found) {
        const slot& s = slots[*found];
        const std::size_t full = payload_length == unknown_length ? s.payload_size : payload_length;
        const std::uint64_t seed = tag(*found, s.generation, m.sequence, s.target, s.payload_size);
        if (!is_error && !payload_matches(m.payload, full, s.payload_size, nullptr,
                                          m_random_fill ? &seed : nullptr))
            return invalid("token-less reply, altered payload");
        return matched(*found);
    }
    if (ended)
        return stale(*ended, is_error, ended_index);
    return invalid("no ping of ours");
}

bool reply_matcher::quote_matches(const slot_table& slots, std::uint32_t index,
                                  const icmp_message& m) const noexcept {
    // Rebuild the start of the request this slot sent and compare.
    const slot& s = slots[index];
    const std::size_t n = std::min<std::size_t>(m.payload.size(), s.payload_size);
    if (n != m.payload.size() || n > token_size)
        return false;
    std::array<std::byte, icmp_header_size + token_size> expected{};
    const echo_token token{index, s.generation,
                           tag(index, s.generation, m.sequence, s.target, s.payload_size)};
    const auto size = static_cast<std::uint32_t>(std::min<std::size_t>(s.payload_size, token_size));
    // The random fill is seeded with the tag of the whole request.
    build_echo_request(expected, s.target.family(), 0, m.sequence, size,
                       s.has_token() ? &token : nullptr, false,
                       m_random_fill ? &token.tag : nullptr);
    return std::equal(m.payload.begin(), m.payload.end(), expected.begin() + icmp_header_size);
}

} // namespace icmpengine::detail
