// SPDX-License-Identifier: MIT
// The input format of fuzz_matching.cpp, shared with make_corpus.cpp so that
// the seed corpus says what it means. Every field is one byte unless noted;
// reads past the end give 0 (fuzz_input), so any byte string is an input.
//
//   header   mode (mode_v6 | mode_raw), extra_slots, launches
//   launch   (1 + launches % max_launches times) slot, host, size, generation
//   events   until the input ends: a kind byte (% event_count), then
//     reply      ping, peer, options, recv_buffer, change...
//     error      ping, peer, error_type, code, quote (2 bytes), recv_buffer, change...
//     errqueue   ping, peer, quote (2 bytes), change...
//     raw_bytes  path (bit 0: error queue), peer, recv_buffer, length, bytes...
//     relaunch   ping, host, size
//   change   length (0: as built; 1..127: that many bytes cut off the end;
//            128..255: that many minus 127 bytes appended, from the input),
//            edits (% 4), then per edit: position (2 bytes, % length), xor.
#pragma once

#include <array>
#include <cstdint>

namespace icmpengine::fuzz::matching {

inline constexpr std::uint8_t mode_v6 = 1;  ///< an IPv6 engine (else IPv4)
inline constexpr std::uint8_t mode_raw = 2; ///< raw socket (else datagram "ping" socket)

inline constexpr unsigned max_launches = 8;

/// Slot indices: two ranges 2^16 apart, so that sequence numbers (the slot
/// index modulo 2^16) are shared, as in an engine with more than 65536
/// pings in flight.
constexpr std::uint32_t slot_index(std::uint8_t b) noexcept {
    return (b & 7U) + ((b & 8U) != 0 ? 65536U : 0U);
}

/// Payload sizes: both sides of token_size (16) first, then 0..247.
inline constexpr std::array<std::uint32_t, 8> size_table{0, 1, 8, 15, 16, 17, 56, 100};
constexpr std::uint32_t payload_size(std::uint8_t b) noexcept {
    return b < size_table.size() ? size_table[b]
                                 : b - static_cast<std::uint32_t>(size_table.size());
}

/// The first generation a slot is launched with is generation_base(b) + 1,
/// so that the 32-bit generation also wraps.
constexpr std::uint32_t generation_base(std::uint8_t b) noexcept {
    return b * 0x01010101U;
}

enum class event : std::uint8_t { reply, error, errqueue, raw_bytes, relaunch };
inline constexpr std::uint8_t event_count = 5;

/// The `ping` byte: the low 7 bits pick a launched slot (in launch order,
/// modulo their number); bit 7 picks the request of its previous use (a
/// stale reply) if there was one.
inline constexpr std::uint8_t ping_previous = 0x80;

/// The `peer` byte: 0 is the ping's own target (the genuine source of a
/// reply, the genuine destination of a quote); n > 0 is hosts[n - 1] of the
/// family, modulo their number (fuzz_matching.cpp).
inline constexpr std::uint8_t peer_genuine = 0;

} // namespace icmpengine::fuzz::matching
