// SPDX-License-Identifier: MIT
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
#include <bit>
#include <cstring>
#include <new>
#include <type_traits>

namespace icmpengine::detail {
namespace {

using bytes = std::span<const std::byte>;

constexpr std::uint8_t u8(std::byte b) noexcept {
    return std::to_integer<std::uint8_t>(b);
}

// Big-endian loads and stores (byte by byte, but for store_be64): no
// alignment assumption, no aliasing, no dependence on host byte order.
// Callers check the bounds.
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
// Byte-swapped by hand and stored with one memcpy rather than byte by byte:
// the compiler merges byte stores, but splits them around bytes it knows to
// be constant, and the checksum loads a request back 8 bytes at a time right
// away (a load that spans several stores is not forwarded from them).
void store_be64(std::span<std::byte> d, std::size_t at, std::uint64_t v) noexcept {
    if constexpr (std::endian::native == std::endian::little) {
        v = (v & 0x00000000ffffffffULL) << 32 | (v & 0xffffffff00000000ULL) >> 32;
        v = (v & 0x0000ffff0000ffffULL) << 16 | (v & 0xffff0000ffff0000ULL) >> 16;
        v = (v & 0x00ff00ff00ff00ffULL) << 8 | (v & 0xff00ff00ff00ff00ULL) >> 8;
    }
    std::memcpy(d.subspan(at, sizeof v).data(), &v, sizeof v);
}

// An unsigned integer in host byte order, for the checksum only (its sum
// does not depend on byte order, RFC 1071 2.(B)). memcpy: no alignment or
// aliasing assumption.
template <typename T>
T load_host(bytes d, std::size_t at) noexcept {
    T v = 0;
    std::memcpy(&v, d.subspan(at, sizeof v).data(), sizeof v);
    return v;
}

// One's complement addition in 64 bits: the carry out of bit 63 goes back in
// at bit 0 (2^64 = 1 modulo 2^16 - 1). It cannot carry again: the wrapped
// sum is at most 2^64 - 2. A nonzero sum never becomes zero.
constexpr std::uint64_t add_end_around(std::uint64_t a, std::uint64_t b) noexcept {
    a += b;
    return a + (a < b ? 1U : 0U);
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

// The fill pattern (payload byte i is uint8_t(i)) twice over: it repeats
// every 256 bytes, so the pattern at any payload offset i, for up to 256
// bytes, is the table from i % 256 on. Payloads are written and compared in
// fixed-size pieces, 256 bytes while that many remain, then 16 (one vector
// move or compare each), then one last 16-byte piece that overlaps bytes
// already done: a variable-length memcpy or memcmp of a few dozen bytes
// costs more (a call, or `rep movs` when inlined) than the whole header.
constexpr std::size_t fill_period = 256;
constexpr std::size_t fill_piece = 16;
constexpr std::array<std::byte, 2 * fill_period> fill_pattern = [] {
    std::array<std::byte, 2 * fill_period> p{};
    for (std::size_t i = 0; i < p.size(); ++i)
        p[i] = static_cast<std::byte>(static_cast<std::uint8_t>(i));
    return p;
}();

constexpr const std::byte* fill_at(std::size_t i) noexcept {
    return &fill_pattern[i % fill_period];
}

// Writes the fill pattern into payload[first..].
void write_fill(std::span<std::byte> payload, std::size_t first) noexcept {
    const std::size_t size = payload.size();
    std::size_t i = first;
    if (i >= size)
        return;
    if (size - i < fill_piece) {
        for (; i < size; ++i)
            payload[i] = *fill_at(i);
        return;
    }
    for (; size - i >= fill_period; i += fill_period)
        std::memcpy(payload.subspan(i, fill_period).data(), fill_at(i), fill_period);
    for (; size - i >= fill_piece; i += fill_piece)
        std::memcpy(payload.subspan(i, fill_piece).data(), fill_at(i), fill_piece);
    if (i < size) {
        i = size - fill_piece;
        std::memcpy(payload.subspan(i, fill_piece).data(), fill_at(i), fill_piece);
    }
}

// The fill pattern: payload byte i is uint8_t(i), for i >= first. In the
// pieces of write_fill.
bool fill_matches(bytes payload, std::size_t first) noexcept {
    const std::size_t size = payload.size();
    std::size_t i = first;
    if (i >= size)
        return true;
    if (size - i < fill_piece) {
        for (; i < size; ++i)
            if (payload[i] != *fill_at(i))
                return false;
        return true;
    }
    for (; size - i >= fill_period; i += fill_period)
        if (std::memcmp(payload.subspan(i, fill_period).data(), fill_at(i), fill_period) != 0)
            return false;
    for (; size - i >= fill_piece; i += fill_piece)
        if (std::memcmp(payload.subspan(i, fill_piece).data(), fill_at(i), fill_piece) != 0)
            return false;
    if (i < size) {
        i = size - fill_piece;
        return std::memcmp(payload.subspan(i, fill_piece).data(), fill_at(i), fill_piece) == 0;
    }
    return true;
}

// The random fill (fping -R): payload byte i, for i >= first, is byte i % 8
// (big-endian) of mix64(seed + (i / 8) * golden ratio), a keystream of the
// request's seed (its token tag), so the matcher can rebuild it.
std::byte random_byte(std::uint64_t seed, std::size_t i) noexcept {
    const std::uint64_t word = mix64(seed + (i / 8) * 0x9e3779b97f4a7c15ULL);
    return static_cast<std::byte>(word >> (56 - 8 * (i % 8)));
}

void write_random_fill(std::span<std::byte> payload, std::size_t first,
                       std::uint64_t seed) noexcept {
    for (std::size_t i = first; i < payload.size(); ++i)
        payload[i] = random_byte(seed, i);
}

bool random_fill_matches(bytes payload, std::size_t first, std::uint64_t seed) noexcept {
    for (std::size_t i = first; i < payload.size(); ++i)
        if (payload[i] != random_byte(seed, i))
            return false;
    return true;
}

// `out = icmp_message{}`, field by field. Assigning a value-initialised
// temporary builds it on the stack with narrow stores and copies it with wide
// loads, a store-forwarding stall that cost more than the rest of parsing a
// reply; the same holds for filling a local optional<ip_address> and copying
// it into `out`, which is why the parsers write into `out` directly.
void reset(icmp_message& m) noexcept {
    m.kind = icmp_kind::other;
    m.type = 0;
    m.code = 0;
    m.identifier = 0;
    m.sequence = 0;
    m.payload = {};
    m.quoted_destination.reset();
}

// `a = make()` for a `make` returning an ip_address, with the result built
// in place (guaranteed copy elision). Assigned, it is built in a stack
// temporary and copied with wide loads over its narrow stores, the stall
// described at reset(), which made parsing a raw socket's IPv4 header six
// times slower. Replacing the object this way is allowed ([basic.life]/8):
// same type, trivially destructible, not const, not a potentially-
// overlapping subobject.
template <typename Make>
void assign_address(ip_address& a, Make make) noexcept {
    static_assert(std::is_trivially_destructible_v<ip_address>);
    ::new (static_cast<void*>(&a)) ip_address(make());
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
    assign_address(destination.emplace(),
                   [&] { return ip_address::from_v4(load_be32(quote, 16)); });
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
    assign_address(destination.emplace(), [&] { return ip_address::from_v6_bytes(address); });
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
    // Summed in host byte order, 64 bits at a time into two independent
    // one's complement accumulators (2.(B) and (C): byte order independence,
    // parallel summation), then folded to 16 bits, which is the big-endian
    // sum byte-swapped on a little-endian host. Like the 16-bit sum, it is
    // zero only if every byte is, so the result agrees on 0xffff versus 0.
    static_assert(std::endian::native == std::endian::little ||
                  std::endian::native == std::endian::big);
    constexpr bool little = std::endian::native == std::endian::little;
    std::uint64_t sum = 0;
    std::uint64_t sum2 = 0;
    std::size_t i = 0;
    for (; i + 16 <= data.size(); i += 16) {
        sum = add_end_around(sum, load_host<std::uint64_t>(data, i));
        sum2 = add_end_around(sum2, load_host<std::uint64_t>(data, i + 8));
    }
    sum = add_end_around(sum, sum2);
    // The tail starts at a multiple of 16; each piece is a whole number of
    // 16-bit words at an even offset, except a last odd byte, which is the
    // high byte of its big-endian word.
    if (data.size() - i >= 8) {
        sum = add_end_around(sum, load_host<std::uint64_t>(data, i));
        i += 8;
    }
    if (data.size() - i >= 4) {
        sum = add_end_around(sum, load_host<std::uint32_t>(data, i));
        i += 4;
    }
    if (data.size() - i >= 2) {
        sum = add_end_around(sum, load_host<std::uint16_t>(data, i));
        i += 2;
    }
    if (i < data.size())
        sum = add_end_around(sum, std::uint64_t{u8(data[i])} << (little ? 0 : 8));
    sum = (sum & 0xffffffffU) + (sum >> 32); // 2^32 = 1 modulo 2^16 - 1
    while (sum >> 16 != 0)
        sum = (sum & 0xffffU) + (sum >> 16);
    auto folded = static_cast<std::uint16_t>(sum);
    if constexpr (little)
        folded = static_cast<std::uint16_t>(folded << 8 | folded >> 8);
    return static_cast<std::uint16_t>(~folded);
}

std::size_t build_echo_request(std::span<std::byte> out, ip_family family, std::uint16_t identifier,
                               std::uint16_t sequence, std::uint32_t payload_size,
                               const echo_token* token, bool compute_checksum,
                               const std::uint64_t* random_fill) noexcept {
    const std::size_t size = icmp_header_size + std::size_t{payload_size};
    if (out.size() < size)
        return 0;
    const auto packet = out.first(size);
    // Type, code 0, checksum summed as zero (RFC 792), identifier, sequence.
    // The header and the token are stored 8 bytes at a time so that the
    // checksum's 8-byte loads are forwarded from those stores.
    store_be64(packet, 0,
               std::uint64_t{echo_request_type(family)} << 56 | std::uint64_t{identifier} << 16 |
                   sequence);

    const auto payload = packet.subspan(icmp_header_size);
    std::size_t fill_from = 0;
    if (token != nullptr && payload.size() >= token_size) {
        store_be64(payload, 0, std::uint64_t{token->slot} << 32 | token->generation);
        store_be64(payload, 8, token->tag);
        fill_from = token_size;
    }
    if (random_fill != nullptr)
        write_random_fill(payload, fill_from, *random_fill);
    else
        write_fill(payload, fill_from);

    if (compute_checksum)
        store_be16(packet, 2, internet_checksum(packet));
    return size;
}

bool payload_matches(std::span<const std::byte> received, std::size_t full_size,
                     std::uint32_t sent_size, const echo_token* token,
                     const std::uint64_t* random_fill) noexcept {
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
    if (random_fill != nullptr)
        return random_fill_matches(received, fill_from, *random_fill);
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
    reset(out);
    if (data.size() < icmp_header_size)
        return parse_error::truncated;
    out.type = u8(data[0]);
    out.code = u8(data[1]);
    out.kind = classify(family, out.type, out.code);
    // ICMPv6 checksums cover a pseudo-header (RFC 4443 2.3) of addresses we
    // do not have here; every socket that hands us ICMPv6 has checked them.
    if (family == ip_family::v4 && verify_checksum && internet_checksum(data) != 0)
        return parse_error::bad_checksum;

    switch (out.kind) {
    case icmp_kind::echo_reply:
    case icmp_kind::echo_request:
        if (out.code != 0)
            return parse_error::bad_code;
        out.identifier = load_be16(data, 4);
        out.sequence = load_be16(data, 6);
        out.payload = data.subspan(icmp_header_size);
        return parse_error::none;
    case icmp_kind::dest_unreachable:
    case icmp_kind::time_exceeded:
    case icmp_kind::packet_too_big:
    case icmp_kind::parameter_problem: {
        // The quote parsers set the destination only once the whole quote
        // has parsed, so on an error it stays unset as promised.
        echo_fields echo;
        const bytes quote = error_quote(data, family, out.type);
        const parse_error e = family == ip_family::v4
                                  ? parse_quoted_ipv4(quote, echo, out.quoted_destination)
                                  : parse_quoted_ipv6(quote, echo, out.quoted_destination);
        if (e != parse_error::none)
            return e;
        out.identifier = echo.identifier;
        out.sequence = echo.sequence;
        out.payload = echo.payload;
        return parse_error::none;
    }
    case icmp_kind::other:
        break;
    }
    return parse_error::none;
}

parse_error parse_quoted_echo(std::span<const std::byte> data, ip_family family,
                              icmp_message& out) noexcept {
    reset(out);
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
    // `out = ipv4_header{}` field by field, for the reason given at reset().
    out.source = ip_address{};
    out.destination = ip_address{};
    out.ttl = 0;
    out.tos = 0;
    out.protocol = 0;
    out.header_size = 0;
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
    assign_address(out.source, [&] { return ip_address::from_v4(load_be32(data, 12)); });
    assign_address(out.destination, [&] { return ip_address::from_v4(load_be32(data, 16)); });
    out.ttl = u8(data[8]);
    out.tos = u8(data[1]);
    out.protocol = u8(data[9]);
    out.header_size = header_size;
    return parse_error::none;
}

} // namespace icmpengine::detail
