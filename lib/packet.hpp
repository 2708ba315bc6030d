// SPDX-License-Identifier: MIT
// detail::packet: building ICMP echo requests and parsing what comes back.
//
// ICMPv4 echo: RFC 792. ICMPv6 echo and errors: RFC 4443.
// Pure functions over byte spans: no sockets, no allocation, no exceptions,
// so that every malformed input can be unit-tested and fuzzed.
#pragma once

#include <icmpengine/ip_address.hpp>
#include <icmpengine/limits.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace icmpengine::detail {

inline constexpr std::size_t icmp_header_size = 8;
inline constexpr std::size_t ipv4_min_header_size = 20;
inline constexpr std::size_t ipv6_header_size = 40;
/// Largest ICMP payload we send: the public limit (limits.hpp).
using icmpengine::max_payload_size;

// ICMP types we send and understand.
inline constexpr std::uint8_t icmp4_echo_reply = 0;
inline constexpr std::uint8_t icmp4_dest_unreachable = 3;
inline constexpr std::uint8_t icmp4_echo_request = 8;
inline constexpr std::uint8_t icmp4_time_exceeded = 11;
inline constexpr std::uint8_t icmp4_parameter_problem = 12;
inline constexpr std::uint8_t icmp4_frag_needed_code = 4; // with type 3
inline constexpr std::uint8_t icmp6_dest_unreachable = 1;
inline constexpr std::uint8_t icmp6_packet_too_big = 2;
inline constexpr std::uint8_t icmp6_time_exceeded = 3;
inline constexpr std::uint8_t icmp6_parameter_problem = 4;
inline constexpr std::uint8_t icmp6_echo_request = 128;
inline constexpr std::uint8_t icmp6_echo_reply = 129;

/// The matching token at the start of every payload of >= token_size bytes:
/// which slot sent the request, which use of that slot, and a keyed tag over
/// both and the sequence, so that a stale or forged reply cannot match.
struct echo_token {
    std::uint32_t slot = 0;
    std::uint32_t generation = 0;
    std::uint64_t tag = 0;
    friend bool operator==(const echo_token&, const echo_token&) = default;
};
inline constexpr std::size_t token_size = 16;

/// The per-engine secret behind token tags (from getrandom()).
struct token_key {
    std::uint64_t k0 = 0;
    std::uint64_t k1 = 0;
};

/// A keyed 64-bit tag over (slot, generation, sequence). Not a cryptographic
/// MAC: it stops blind (off-path) forgery and stale replies, which is what a
/// pinger can defend against; an on-path attacker sees the token anyway.
std::uint64_t token_tag(const token_key& key, std::uint32_t slot, std::uint32_t generation,
                        std::uint16_t sequence) noexcept;

/// The Internet checksum (RFC 1071) of `data`, ready to store big-endian.
std::uint16_t internet_checksum(std::span<const std::byte> data) noexcept;

/// Writes an echo request (type 8 for v4, 128 for v6) into `out`: header with
/// `identifier` and `sequence`, then `payload_size` bytes: the token (if
/// given and payload_size >= token_size), then the fill pattern (byte i of
/// the payload is `static_cast<uint8_t>(i)`). The checksum is computed only
/// if `compute_checksum` (raw IPv4 sockets); datagram sockets and ICMPv6 let
/// the kernel do it, so it is left zero. Returns the bytes written, or 0 if
/// `out` is smaller than icmp_header_size + payload_size.
/// With `random_fill` set, the bytes after the token are a keystream of
/// that seed (engine_config::random_payload; the engine seeds it with the
/// token's tag) instead of the fill pattern.
std::size_t build_echo_request(std::span<std::byte> out, ip_family family, std::uint16_t identifier,
                               std::uint16_t sequence, std::uint32_t payload_size,
                               const echo_token* token, bool compute_checksum,
                               const std::uint64_t* random_fill = nullptr) noexcept;

/// True if `received` (an echo payload as received, possibly truncated by a
/// short receive buffer) is a prefix of what build_echo_request would have
/// sent with this token and `sent_size`, and `full_size` == `sent_size`.
/// When a token was sent (`token` set and `sent_size` >= token_size),
/// `received` must hold all of it: a token cut short authenticates nothing.
/// `token` may be null for payloads without one.
/// `random_fill`: the seed build_echo_request was given, or null.
bool payload_matches(std::span<const std::byte> received, std::size_t full_size,
                     std::uint32_t sent_size, const echo_token* token,
                     const std::uint64_t* random_fill = nullptr) noexcept;

/// Reads the token from the start of an echo payload (nullopt if too short).
std::optional<echo_token> read_token(std::span<const std::byte> payload) noexcept;

/// What an ICMP message is, as far as the engine cares.
enum class icmp_kind : std::uint8_t {
    echo_reply,
    echo_request,
    dest_unreachable,
    time_exceeded,
    packet_too_big, ///< v6 type 2, or v4 type 3 code 4
    parameter_problem,
    other, ///< any other type (redirects, router adverts, ...)
};

enum class parse_error : std::uint8_t {
    none,
    truncated,      ///< shorter than the headers it claims
    bad_checksum,   ///< ICMPv4 checksum wrong (only checked when asked)
    bad_ip_header,  ///< IPv4 header: version != 4, IHL < 5, length mismatch, not ICMP
    quote_not_echo, ///< an ICMP error quoting something other than our echo request
    bad_code,       ///< echo reply / request with code != 0
};

/// One parsed ICMP message.
struct icmp_message {
    icmp_kind kind = icmp_kind::other;
    std::uint8_t type = 0;
    std::uint8_t code = 0;
    /// For echo messages, from the header. For errors (dest_unreachable,
    /// time_exceeded, packet_too_big, parameter_problem), those of the
    /// *quoted* echo request.
    std::uint16_t identifier = 0;
    std::uint16_t sequence = 0;
    /// Echo payload: after the 8-byte header. For errors: the quoted echo
    /// request's payload, as much as the router quoted (often 0 bytes).
    std::span<const std::byte> payload;
    /// For errors that quote a full IP header: the quoted destination (the
    /// target we pinged). Unset when the quote carries no IP header.
    std::optional<ip_address> quoted_destination;
};

/// Parses an ICMP message starting at its ICMP header, as a datagram ICMP
/// socket (v4 or v6) or a raw ICMPv6 socket delivers it. For error types the
/// quoted packet is expected to start with an IP header (v4: 20..60 bytes,
/// protocol 1; v6: 40 bytes, next header 58) followed by our echo request.
/// `verify_checksum` checks the ICMPv4 checksum (raw IPv4 sockets; the
/// kernel has verified it for every other socket kind).
parse_error parse_icmp(std::span<const std::byte> data, ip_family family, bool verify_checksum,
                       icmp_message& out) noexcept;

/// Parses an echo request as quoted back to a datagram socket through its
/// error queue (IP_RECVERR): starts at the ICMP header of our request.
parse_error parse_quoted_echo(std::span<const std::byte> data, ip_family family,
                              icmp_message& out) noexcept;

/// The IPv4 header of a packet read from a raw IPv4 socket.
struct ipv4_header {
    ip_address source;
    ip_address destination;
    std::uint8_t ttl = 0;
    std::uint8_t tos = 0;
    std::uint8_t protocol = 0;
    std::size_t header_size = 0; ///< IHL * 4
};

/// Parses the IPv4 header at the start of `data` (raw IPv4 sockets deliver
/// it). Checks version, IHL and that the total length fits in `data`.
parse_error parse_ipv4_header(std::span<const std::byte> data, ipv4_header& out) noexcept;

} // namespace icmpengine::detail
