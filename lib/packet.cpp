// detail::packet: building ICMP echo requests and parsing what comes back.
//
// ICMPv4: RFC 792 (messages), RFC 1191 (fragmentation needed), RFC 1812
// 4.3.2.3 (how much of the original datagram routers quote). ICMPv6: RFC 4443.
// Extended ICMP (the length attribute of error messages): RFC 4884.
// Checksum: RFC 1071.
//
// Every read goes through the load_* helpers below, which index bytes inside
// spans whose size has been checked first: the parsers see hostile input
// (anything on the wire can be addressed to a raw socket) and run under the
// fuzzer and ASan/UBSan.
#include "packet.hpp"

#include <algorithm>

namespace icmpengine::detail {
namespace {

using bytes = std::span<const std::byte>;

constexpr std::uint8_t u8(std::byte b) noexcept {
    return std::to_integer<std::uint8_t>(b);
}

// Big-endian loads and stores, byte by byte: no alignment assumption, no
// aliasing, no dependence on host byte order. Callers check the bounds.
constexpr std::uint16_t load_be16(bytes d, std::size_t at) noexcept {
    return static_cast<std::uint16_t>(u8(d[at]) << 8 | u8(d[at + 1]));
}
constexpr std::uint32_t load_be32(bytes d, std::size_t at) noexcept {
    return std::uint32_t{load_be16(d, at)} << 16 | load_be16(d, at + 2);
}
constexpr std::uint64_t load_be64(bytes d, std::size_t at) noexcept {
    return std::uint64_t{load_be32(d, at)} << 32 | load_be32(d, at + 4);
}
constexpr void store_be16(std::span<std::byte> d, std::size_t at, std::uint16_t v) noexcept {
    d[at] = static_cast<std::byte>(v >> 8);
    d[at + 1] = static_cast<std::byte>(v);
}
constexpr void store_be32(std::span<std::byte> d, std::size_t at, std::uint32_t v) noexcept {
    store_be16(d, at, static_cast<std::uint16_t>(v >> 16));
    store_be16(d, at + 2, static_cast<std::uint16_t>(v));
}
constexpr void store_be64(std::span<std::byte> d, std::size_t at, std::uint64_t v) noexcept {
    store_be32(d, at, static_cast<std::uint32_t>(v >> 32));
    store_be32(d, at + 4, static_cast<std::uint32_t>(v));
}

// The splitmix64 finaliser (Stafford's "Mix13"): a bijection on 64 bits in
// which every input bit flips each output bit with probability ~1/2.
constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

constexpr std::uint8_t echo_request_type(ip_family family) noexcept {
    return family == ip_family::v4 ? icmp4_echo_request : icmp6_echo_request;
}

// The fill pattern: payload byte i is uint8_t(i), for i >= first.
bool fill_matches(bytes payload, std::size_t first) noexcept {
    for (std::size_t i = first; i < payload.size(); ++i)
        if (u8(payload[i]) != static_cast<std::uint8_t>(i))
            return false;
    return true;
}

// An echo request's ICMP header and payload, at the start of `data`. Shared
// by the quote inside an ICMP error and the error-queue copy of our request.
struct echo_fields {
    std::uint16_t identifier = 0;
    std::uint16_t sequence = 0;
    bytes payload;
};

// The original datagram quoted by an ICMP error (everything after the
// 8-byte error header), trimmed to the RFC 4884 length attribute when the
// sender set a plausible one. An RFC 4884 sender pads the quote with zeros
// and appends an extension structure (MPLS labels, interface info); neither
// is part of our packet. A length is only honoured if it is at least the 128
// octets RFC 4884 requires alongside an extension and fits in what
// we received: older senders were merely asked to zero that byte, and a
// junk value must not cut a quote that would otherwise match.
bytes error_quote(bytes data, ip_family family, std::uint8_t type) noexcept {
    bytes quote = data.subspan(icmp_header_size);
    std::size_t length = 0;
    if (family == ip_family::v4) {
        // Byte 5 (the sixth octet), in 32-bit words, for types 3, 11 and
        // 12; bytes 6-7 of type 3 code 4 stay the next-hop MTU (RFC 1191).
        length = std::size_t{u8(data[5])} * 4;
    } else if (type == icmp6_dest_unreachable || type == icmp6_time_exceeded) {
        // Byte 4 (the fifth octet), in 64-bit words, for types 1 and 3.
        // Packet Too Big and Parameter Problem carry an MTU / pointer there.
        length = std::size_t{u8(data[4])} * 8;
    }
    if (length >= 128 && length <= quote.size())
        quote = quote.first(length);
    return quote;
}

// Our echo request at the start of `data`, which must hold its whole header.
// `bad_code_error` is what a nonzero code means to the caller: inside an
// ICMP error quote it makes the packet someone else's (quote_not_echo), on
// the error queue it is our own request gone wrong (bad_code).
parse_error parse_echo_request(bytes data, ip_family family, parse_error bad_code_error,
                               echo_fields& out) noexcept {
    if (data.size() < icmp_header_size)
        return parse_error::truncated;
    if (u8(data[0]) != echo_request_type(family))
        return parse_error::quote_not_echo;
    if (u8(data[1]) != 0)
        return bad_code_error;
    out.identifier = load_be16(data, 4);
    out.sequence = load_be16(data, 6);
    out.payload = data.subspan(icmp_header_size);
    return parse_error::none;
}

// The quoted IPv4 packet of an ICMPv4 error: IPv4 header then our request.
// The quoted total length describes the original packet, which the router
// need not have quoted in full (RFC 792: header + 64 bits; RFC 1812 4.3.2.3:
// as much as fits in 576 bytes), so it only ever trims the quote, never
// demands more bytes; a value that cannot be right (shorter than the
// headers) is ignored rather than trusted.
parse_error parse_quoted_ipv4(bytes quote, echo_fields& echo,
                              std::optional<ip_address>& destination) noexcept {
    if (quote.empty())
        return parse_error::truncated;
    if (u8(quote[0]) >> 4 != 4)
        return parse_error::bad_ip_header;
    const std::size_t header_size = std::size_t{u8(quote[0]) & 0x0fU} * 4;
    if (header_size < ipv4_min_header_size)
        return parse_error::bad_ip_header;
    if (quote.size() < header_size)
        return parse_error::truncated;
    if (u8(quote[9]) != 1) // IPPROTO_ICMP
        return parse_error::bad_ip_header;
    // A non-first fragment carries no ICMP header: what follows the IP
    // header is the middle of some payload, never our request's header.
    if ((load_be16(quote, 6) & 0x1fffU) != 0)
        return parse_error::quote_not_echo;
    const std::size_t total_length = load_be16(quote, 2);
    if (total_length >= header_size + icmp_header_size && total_length < quote.size())
        quote = quote.first(total_length);
    if (const auto e = parse_echo_request(quote.subspan(header_size), ip_family::v4,
                                          parse_error::quote_not_echo, echo);
        e != parse_error::none)
        return e;
    destination = ip_address::from_v4(load_be32(quote, 16));
    return parse_error::none;
}

// The quoted IPv6 packet of an ICMPv6 error: the fixed 40-byte header, then
// our request. We send no extension headers, so a next header other than
// ICMPv6 means the packet was not ours (RFC 4443 2.4 (c) quotes "as much of
// the invoking packet as possible" up to the minimum MTU).
parse_error parse_quoted_ipv6(bytes quote, echo_fields& echo,
                              std::optional<ip_address>& destination) noexcept {
    if (quote.empty())
        return parse_error::truncated;
    if (u8(quote[0]) >> 4 != 6)
        return parse_error::bad_ip_header;
    if (quote.size() < ipv6_header_size)
        return parse_error::truncated;
    if (u8(quote[6]) != 58) // IPPROTO_ICMPV6
        return parse_error::quote_not_echo;
    // Payload length, like the IPv4 total length, only trims (0 would mean
    // a jumbogram, RFC 2675, and never holds our request).
    const std::size_t payload_length = load_be16(quote, 4);
    if (payload_length >= icmp_header_size && ipv6_header_size + payload_length < quote.size())
        quote = quote.first(ipv6_header_size + payload_length);
    if (const auto e = parse_echo_request(quote.subspan(ipv6_header_size), ip_family::v6,
                                          parse_error::quote_not_echo, echo);
        e != parse_error::none)
        return e;
    std::array<std::uint8_t, 16> address{};
    for (std::size_t i = 0; i < address.size(); ++i)
        address[i] = u8(quote[24 + i]);
    // The scope of a link-local target is not on the wire: left 0.
    destination = ip_address::from_v6_bytes(address);
    return parse_error::none;
}

// What an ICMP type means for the engine; `other` for anything unknown.
icmp_kind classify(ip_family family, std::uint8_t type, std::uint8_t code) noexcept {
    if (family == ip_family::v4) {
        switch (type) {
        case icmp4_echo_reply:
            return icmp_kind::echo_reply;
        case icmp4_echo_request:
            return icmp_kind::echo_request;
        case icmp4_dest_unreachable:
            return code == icmp4_frag_needed_code ? icmp_kind::packet_too_big
                                                  : icmp_kind::dest_unreachable;
        case icmp4_time_exceeded:
            return icmp_kind::time_exceeded;
        case icmp4_parameter_problem:
            return icmp_kind::parameter_problem;
        default:
            return icmp_kind::other;
        }
    }
    switch (type) {
    case icmp6_echo_reply:
        return icmp_kind::echo_reply;
    case icmp6_echo_request:
        return icmp_kind::echo_request;
    case icmp6_dest_unreachable:
        return icmp_kind::dest_unreachable;
    case icmp6_packet_too_big:
        return icmp_kind::packet_too_big;
    case icmp6_time_exceeded:
        return icmp_kind::time_exceeded;
    case icmp6_parameter_problem:
        return icmp_kind::parameter_problem;
    default:
        return icmp_kind::other;
    }
}

} // namespace

std::uint64_t token_tag(const token_key& key, std::uint32_t slot, std::uint32_t generation,
                        std::uint16_t sequence) noexcept {
    // Three keyed rounds of a full-avalanche bijection. For a fixed key the
    // first two rounds are bijective in (slot, generation) and, separately,
    // in sequence, so tags never collide when only one of them changes. The
    // last round keeps the output from being inverted back to k1-masked
    // state without k0. The odd constants stop the all-zero fixed point of
    // mix64 (a zero key must not give a zero tag).
    std::uint64_t h =
        mix64(key.k0 ^ (std::uint64_t{slot} << 32 | generation) ^ 0x243f6a8885a308d3ULL); // pi
    h = mix64(h ^ key.k1 ^ (std::uint64_t{sequence} * 0x9e3779b97f4a7c15ULL)); // golden ratio
    return mix64(h + (key.k0 ^ 0x13198a2e03707344ULL));
}

std::uint16_t internet_checksum(std::span<const std::byte> data) noexcept {
    // RFC 1071: the one's complement of the one's complement sum of the
    // big-endian 16-bit words, an odd last byte padded with a zero octet.
    // Carries are deferred into 64 bits and folded once at the end (RFC 1071
    // 2.(B)); no input a process can hold overflows that.
    std::uint64_t sum = 0;
    std::size_t i = 0;
    for (; i + 1 < data.size(); i += 2)
        sum += load_be16(data, i);
    if (i < data.size())
        sum += std::uint64_t{u8(data[i])} << 8;
    while (sum >> 16 != 0)
        sum = (sum & 0xffffU) + (sum >> 16);
    return static_cast<std::uint16_t>(~sum);
}

std::size_t build_echo_request(std::span<std::byte> out, ip_family family, std::uint16_t identifier,
                               std::uint16_t sequence, std::uint32_t payload_size,
                               const echo_token* token, bool compute_checksum) noexcept {
    const std::size_t size = icmp_header_size + std::size_t{payload_size};
    if (out.size() < size)
        return 0;
    const auto packet = out.first(size);
    packet[0] = static_cast<std::byte>(echo_request_type(family));
    packet[1] = std::byte{0}; // code
    store_be16(packet, 2, 0); // checksum, summed as zero (RFC 792)
    store_be16(packet, 4, identifier);
    store_be16(packet, 6, sequence);

    const auto payload = packet.subspan(icmp_header_size);
    std::size_t fill_from = 0;
    if (token != nullptr && payload.size() >= token_size) {
        store_be32(payload, 0, token->slot);
        store_be32(payload, 4, token->generation);
        store_be64(payload, 8, token->tag);
        fill_from = token_size;
    }
    for (std::size_t i = fill_from; i < payload.size(); ++i)
        payload[i] = static_cast<std::byte>(static_cast<std::uint8_t>(i));

    if (compute_checksum)
        store_be16(packet, 2, internet_checksum(packet));
    return size;
}

bool payload_matches(std::span<const std::byte> received, std::size_t full_size,
                     std::uint32_t sent_size, const echo_token* token) noexcept {
    if (full_size != sent_size || received.size() > full_size)
        return false;
    std::size_t fill_from = 0;
    if (token != nullptr && sent_size >= token_size) {
        // The token authenticates the reply, so it must be there in full:
        // a receive cut inside it proves nothing about who sent it.
        const auto got = read_token(received);
        if (!got || *got != *token)
            return false;
        fill_from = token_size;
    }
    return fill_matches(received, fill_from);
}

std::optional<echo_token> read_token(std::span<const std::byte> payload) noexcept {
    if (payload.size() < token_size)
        return std::nullopt;
    return echo_token{
        .slot = load_be32(payload, 0),
        .generation = load_be32(payload, 4),
        .tag = load_be64(payload, 8),
    };
}

// On any result, `out` is reset first; kind, type and code are filled as soon
// as the ICMP header has been read (so the engine can count what it dropped),
// everything else only on parse_error::none.
parse_error parse_icmp(std::span<const std::byte> data, ip_family family, bool verify_checksum,
                       icmp_message& out) noexcept {
    out = icmp_message{};
    if (data.size() < icmp_header_size)
        return parse_error::truncated;
    out.type = u8(data[0]);
    out.code = u8(data[1]);
    out.kind = classify(family, out.type, out.code);
    // ICMPv6 checksums cover a pseudo-header (RFC 4443 2.3) of addresses we
    // do not have here; every socket that hands us ICMPv6 has checked them.
    if (family == ip_family::v4 && verify_checksum && internet_checksum(data) != 0)
        return parse_error::bad_checksum;

    echo_fields echo;
    std::optional<ip_address> destination;
    switch (out.kind) {
    case icmp_kind::echo_reply:
    case icmp_kind::echo_request:
        if (out.code != 0)
            return parse_error::bad_code;
        echo.identifier = load_be16(data, 4);
        echo.sequence = load_be16(data, 6);
        echo.payload = data.subspan(icmp_header_size);
        break;
    case icmp_kind::dest_unreachable:
    case icmp_kind::time_exceeded:
    case icmp_kind::packet_too_big:
    case icmp_kind::parameter_problem: {
        const bytes quote = error_quote(data, family, out.type);
        const parse_error e = family == ip_family::v4 ? parse_quoted_ipv4(quote, echo, destination)
                                                      : parse_quoted_ipv6(quote, echo, destination);
        if (e != parse_error::none)
            return e;
        break;
    }
    case icmp_kind::other:
        return parse_error::none;
    }
    out.identifier = echo.identifier;
    out.sequence = echo.sequence;
    out.payload = echo.payload;
    out.quoted_destination = destination;
    return parse_error::none;
}

parse_error parse_quoted_echo(std::span<const std::byte> data, ip_family family,
                              icmp_message& out) noexcept {
    out = icmp_message{};
    echo_fields echo;
    if (const auto e = parse_echo_request(data, family, parse_error::bad_code, echo);
        e != parse_error::none) {
        if (data.size() >= 2) {
            out.type = u8(data[0]);
            out.code = u8(data[1]);
            out.kind = classify(family, out.type, out.code);
        }
        return e;
    }
    out.kind = icmp_kind::echo_request;
    out.type = echo_request_type(family);
    out.identifier = echo.identifier;
    out.sequence = echo.sequence;
    out.payload = echo.payload;
    return parse_error::none;
}

parse_error parse_ipv4_header(std::span<const std::byte> data, ipv4_header& out) noexcept {
    out = ipv4_header{};
    if (data.empty())
        return parse_error::truncated;
    if (u8(data[0]) >> 4 != 4)
        return parse_error::bad_ip_header;
    const std::size_t header_size = std::size_t{u8(data[0]) & 0x0fU} * 4;
    if (header_size < ipv4_min_header_size)
        return parse_error::bad_ip_header;
    if (data.size() < header_size)
        return parse_error::truncated;
    // Linux raw sockets deliver the whole datagram with ip_len in network
    // order (raw(7)); a total length beyond what arrived means a short
    // receive, one shorter than the header a corrupt header.
    const std::size_t total_length = load_be16(data, 2);
    if (total_length < header_size)
        return parse_error::bad_ip_header;
    if (total_length > data.size())
        return parse_error::truncated;
    out.source = ip_address::from_v4(load_be32(data, 12));
    out.destination = ip_address::from_v4(load_be32(data, 16));
    out.ttl = u8(data[8]);
    out.protocol = u8(data[9]);
    out.header_size = header_size;
    return parse_error::none;
}

} // namespace icmpengine::detail
