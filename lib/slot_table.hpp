// SPDX-License-Identifier: MIT
// detail::slot_table: the engine's pings in flight, one slot each.
//
// A slot's index is the ping's identity on the wire: the echo sequence
// number is the index modulo 2^16, and the matching token carries the index
// and the slot's generation (bumped on every reuse). The table grows to 2^16
// slots (or engine_config::reuse_slots_after) before it reuses one, and
// then reuses the longest-free slot first, so that sequence numbers advance
// as ping users expect and a late reply rarely finds its slot reused.
#pragma once

#include "huge_pages.hpp"
#include "packet.hpp"

#include <icmpengine/engine.hpp>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <span>
#include <vector>

namespace icmpengine::detail {

inline constexpr std::uint32_t no_slot = 0xffffffffu;

enum class slot_state : std::uint8_t {
    free,
    in_flight, ///< accepted, not yet ended
    ended,     ///< ended, waiting for its send CQE before the slot is reused
};

/// What became of one use (generation) of a slot: tells a late reply from a
/// duplicate one.
enum class slot_outcome : std::uint8_t { none, reply, other };

/// One cache line (issue 13: with every ping in flight at once, the table
/// is a slot per ping, and a slot that straddles two lines costs two cache
/// misses per reply). The deadline is the heap's (deadline_heap), the
/// sockaddr's length follows from the family, and whether the payload
/// carries a token from its size.
struct alignas(64) slot {
    ping_handler* handler = nullptr; ///< null when abandoned or ended
    std::uint64_t cookie = 0;        ///< handed back to `handler`
    std::int64_t tx_mono = 0;        ///< send time, CLOCK_MONOTONIC ns
    std::byte* send_buffer = nullptr;
    ip_address target;
    std::uint32_t generation = 0;
    std::uint16_t payload_size = 0; ///< at most max_payload_size (65,507)
    slot_state state : 2 = slot_state::free;
    slot_outcome outcome : 2 = slot_outcome::none;      ///< of `generation`
    slot_outcome prev_outcome : 2 = slot_outcome::none; ///< of `generation - 1`
    bool send_pending : 1 = false;
    bool fake_dropped : 1 = false; ///< by engine_config::fake_drop_probability
    bool awaiter : 1 = false;      ///< the handler is a ping_op (ping_request::awaiter)
    std::uint8_t send_attempts : 7 = 0;

    /// The payload starts with a matching token (packet.hpp).
    bool has_token() const noexcept { return payload_size >= token_size; }
};
static_assert(sizeof(slot) == 64, "a slot is one cache line");
static_assert(max_payload_size <= 0xffff, "slot::payload_size is 16 bits");

/// Addresses match if family and bytes do; a scope id only counts when both
/// sides have one (the kernel reports it on link-local replies).
bool same_host(const ip_address& a, const ip_address& b) noexcept;

class slot_table {
  public:
    /// At most `capacity` slots (engine_config::max_in_flight); free slots
    /// are reused once there are `reuse_after` (engine_config::
    /// reuse_slots_after, at most 2^16).
    explicit slot_table(std::uint32_t capacity, std::uint32_t reuse_after = 65536) noexcept
        : m_capacity(capacity), m_reuse_after(std::min(reuse_after, 65536u)) {}

    /// A free slot for a ping to `target`, marked in use, or no_slot when
    /// every slot is in use or (token-less pings only) every free sequence
    /// number is held by another ping to the same host.
    std::uint32_t alloc(const ip_address& target, bool has_token);
    /// Starts a new use of slot `index` (from alloc() or claim()): a new
    /// generation, in flight to `target`.
    slot& begin_use(std::uint32_t index, const ip_address& target,
                    std::uint32_t payload_size) noexcept;
    /// Makes slot `index` free again (its ping ended and its send completed).
    void release(std::uint32_t index);
    /// Marks slot `index` in use, growing the table to hold it: for tests
    /// and the fuzzer, which choose indices; the engine uses alloc().
    void claim(std::uint32_t index);

    /// Replies without a token are matched by (source, sequence), and the
    /// sequence is the index modulo 2^16: two pings in flight to the same
    /// host must not share it.
    bool tokenless_conflict(std::uint32_t index, const ip_address& target) const noexcept;

    slot& operator[](std::uint32_t index) noexcept { return m_slots[index]; }
    const slot& operator[](std::uint32_t index) const noexcept { return m_slots[index]; }
    std::size_t size() const noexcept { return m_slots.size(); }
    /// Slots the table has room for before it grows again.
    std::size_t capacity() const noexcept { return m_slots.capacity(); }
    /// From this size of the next growth on, the table grows straight to
    /// its reuse size.
    static constexpr std::size_t jump_bytes = 256 * 1024;
    std::uint32_t in_use() const noexcept { return m_in_use; }
    bool full() const noexcept { return m_in_use >= m_capacity; }
    std::span<slot> all() noexcept { return m_slots; }

  private:
    std::vector<slot, huge_page_allocator<slot>> m_slots;
    std::deque<std::uint32_t> m_free; ///< FIFO: reuse the longest-free slot
    std::uint32_t m_in_use = 0;
    std::uint32_t m_capacity;
    std::uint32_t m_reuse_after;
};

} // namespace icmpengine::detail
