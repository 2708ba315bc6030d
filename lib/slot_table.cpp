// SPDX-License-Identifier: MIT
#include "slot_table.hpp"

#include <algorithm>

namespace icmpengine::detail {

bool same_host(const ip_address& a, const ip_address& b) noexcept {
    if (a.family() != b.family() || a.bytes() != b.bytes())
        return false;
    return a.scope_id() == 0 || b.scope_id() == 0 || a.scope_id() == b.scope_id();
}

bool slot_table::tokenless_conflict(std::uint32_t index, const ip_address& target) const noexcept {
    for (std::size_t i = index & 0xffffu; i < m_slots.size(); i += 65536)
        if (i != index && m_slots[i].state != slot_state::free &&
            same_host(m_slots[i].target, target))
            return true;
    return false;
}

std::uint32_t slot_table::alloc(const ip_address& target, bool has_token) {
    const bool grow = m_slots.size() < std::min<std::size_t>(m_reuse_after, m_capacity);
    for (std::size_t tries = grow ? 0 : m_free.size(); tries > 0; --tries) {
        const std::uint32_t index = m_free.front();
        m_free.pop_front();
        if (has_token || !tokenless_conflict(index, target)) {
            ++m_in_use;
            return index;
        }
        m_free.push_back(index);
    }
    if (m_slots.size() >= m_capacity)
        return no_slot;
    const auto index = static_cast<std::uint32_t>(m_slots.size());
    if (!has_token && tokenless_conflict(index, target))
        return no_slot;
    if (m_slots.size() == m_slots.capacity() && grow &&
        2 * (m_slots.size() + 1) * sizeof(slot) >= jump_bytes)
        // The next doubling reaches 256 KiB (4,096 slots): go straight to
        // the size the table grows to before it reuses slots, rather than
        // map, populate and copy every power of two on the way (with the
        // defaults, one 4 MiB step to 65,536 slots in huge pages; issue 13).
        m_slots.reserve(std::min<std::size_t>(m_reuse_after, m_capacity));
    m_slots.emplace_back();
    ++m_in_use;
    return index;
}

slot& slot_table::begin_use(std::uint32_t index, const ip_address& target,
                            std::uint32_t payload_size) noexcept {
    slot& s = m_slots[index];
    s.target = target;
    ++s.generation;
    s.prev_outcome = s.outcome;
    s.outcome = slot_outcome::none;
    s.payload_size = static_cast<std::uint16_t>(payload_size); // checked by check_ping_arguments
    s.fake_dropped = false;
    s.state = slot_state::in_flight;
    s.send_pending = false;
    return s;
}

void slot_table::release(std::uint32_t index) {
    m_slots[index].state = slot_state::free;
    m_free.push_back(index);
    --m_in_use;
}

void slot_table::claim(std::uint32_t index) {
    if (index >= m_slots.size())
        m_slots.resize(std::size_t{index} + 1);
    if (m_slots[index].state == slot_state::free)
        ++m_in_use;
    std::erase(m_free, index);
}

} // namespace icmpengine::detail
