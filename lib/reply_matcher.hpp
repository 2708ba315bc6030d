// SPDX-License-Identifier: MIT
// detail::reply_matcher: which ping, if any, a received ICMP message answers.
//
// Pure logic: no ring, no socket, no clock. The engine hands it each
// datagram a socket delivered (parse_datagram) and the slot table; it
// answers with a verdict, and the engine acts on it (ends the ping, counts
// the stray or the invalid packet). Tests, the fuzzer (tests/fuzz/
// fuzz_matching.cpp) and the microbenchmark (bench/bench_matching.cpp) call
// these same functions.
//
// The rules (README, "Matching"): a reply resolves a ping only if its source
// address, its sequence number and the 16-byte token at the start of its
// payload all match a ping in flight, and the rest of the payload is what
// was sent. The token holds the slot index, the slot's generation and a
// 64-bit tag keyed with the engine's secret that binds slot, generation,
// sequence, target address and payload size. Without a token (payloads of
// fewer than 16 bytes) a reply is matched by source and sequence, and an
// ambiguity is refused, never guessed.
#pragma once

#include "packet.hpp"
#include "slot_table.hpp"

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>

namespace icmpengine::detail {

/// A length the kernel did not tell (a receive cut short by its buffer).
inline constexpr std::size_t unknown_length = std::numeric_limits<std::size_t>::max();

/// One datagram as a socket delivered it.
struct datagram {
    /// From the ICMP header; on raw IPv4 sockets from the IP header.
    std::span<const std::byte> data;
    /// Its length as sent, or unknown_length (truncated receive on a
    /// datagram socket, which reports only what it copied).
    std::size_t full_length = 0;
    ip_address source;
    int ttl = 0;  ///< from IP_TTL / IPV6_HOPLIMIT, 0 if none
    int tos = -1; ///< from IP_TOS / IPV6_TCLASS, -1 if none
};

/// What a datagram is, once parsed.
struct parsed_datagram {
    enum class kind : std::uint8_t {
        echo_reply, ///< an echo reply: match it
        icmp_error, ///< an error quoting an echo request: match the quote
        foreign,    ///< well-formed, not about our requests
        invalid,    ///< malformed, truncated or failing its checksum
    };
    kind what = kind::invalid;
    icmp_message message; ///< points into the datagram's data
    ip_address source;    ///< from the IP header on raw IPv4
    /// Echo replies: the payload length as sent, or unknown_length.
    std::size_t payload_length = unknown_length;
    int ttl = 0;
    int tos = -1;
    parse_error error = parse_error::none; ///< why `invalid`, when the parser said
};

/// Parses what a socket of `family` delivered: on raw IPv4 sockets the IP
/// header first (a header cut short by the receive buffer is parsed on its
/// own, and the ICMP checksum is verified only when the packet is whole);
/// on raw sockets, only messages with `raw_identifier` are ours.
parsed_datagram parse_datagram(const datagram& d, ip_family family, bool raw,
                               std::uint16_t raw_identifier) noexcept;

/// The ping status an ICMP error of this type and code means.
ping_status error_status(ip_family family, std::uint8_t type, std::uint8_t code) noexcept;

struct match_verdict {
    enum class kind : std::uint8_t {
        matched,   ///< answers the ping in flight in `slot`
        duplicate, ///< genuine, for a ping that had its reply already
        late,      ///< genuine, for a ping that had ended otherwise
        invalid,   ///< forged, corrupted, ambiguous, or not ours at all
        /// our request's token, echoed from another address than the
        /// target (only told apart from `invalid` with check_source)
        wrong_source,
    };
    kind what = kind::invalid;
    /// When matched: the ping's slot. When duplicate or late: the slot of
    /// the ping it answers while the slot still describes that ping (not
    /// used for another since), else no_slot.
    std::uint32_t slot = no_slot;
    const char* reason = nullptr; ///< when invalid: why, for the log
};

class reply_matcher {
  public:
    /// `random_fill`: requests carry the random fill (engine_config::
    /// random_payload), seeded with their tag. `check_source`: a reply whose
    /// token is genuine but comes from another address than the target is
    /// told apart (wrong_source) rather than just invalid.
    explicit reply_matcher(token_key key, bool random_fill = false,
                           bool check_source = false) noexcept
        : m_key(key), m_random_fill(random_fill), m_check_source(check_source) {}
    const token_key& key() const noexcept { return m_key; }
    bool random_fill() const noexcept { return m_random_fill; }

    /// The tag of the token a request carries: token_tag over (slot,
    /// generation, sequence) keyed with the engine's secret mixed with the
    /// target's address bytes (not its scope id), family and payload size.
    std::uint64_t tag(std::uint32_t slot, std::uint32_t generation, std::uint16_t sequence,
                      const ip_address& target, std::size_t payload_size) const noexcept;

    /// Matches an echo reply from `peer` (is_error false; payload_length as
    /// sent, or unknown_length) or an ICMP error quoting a request to `peer`
    /// (is_error true; the quote is checked as a prefix of what was sent).
    match_verdict match(const slot_table& slots, const icmp_message& m, const ip_address& peer,
                        std::size_t payload_length, bool is_error) const noexcept;

    /// Whether an error's quote of fewer than token_size payload bytes is
    /// the start of what slot `index` sent, byte for byte.
    bool quote_matches(const slot_table& slots, std::uint32_t index,
                       const icmp_message& m) const noexcept;

  private:
    match_verdict match_token(const slot_table& slots, const icmp_message& m,
                              const ip_address& peer, std::size_t payload_length,
                              bool is_error) const noexcept;
    match_verdict match_tokenless(const slot_table& slots, const icmp_message& m,
                                  const ip_address& peer, std::size_t payload_length,
                                  bool is_error) const noexcept;

    token_key m_key;
    bool m_random_fill = false;
    bool m_check_source = false;
};

} // namespace icmpengine::detail
