// SPDX-License-Identifier: MIT
// detail::basic_deadline_heap: see deadline_heap.hpp for the contract.
//
// Both sifts move a hole instead of swapping: the moving entry is held in a
// register, each entry it passes is written once into the hole (with its
// m_pos update), and the moving entry is written once at its final place.
// A swap-based sift writes every entry on the path twice and touches m_pos
// twice as often; on the engine's hot paths (push per ping, erase per reply,
// pop per expiry) that is the difference that matters.
#include "deadline_heap.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace icmpengine::detail {

template <unsigned Arity>
void basic_deadline_heap<Arity>::push(std::uint32_t id, std::int64_t deadline) {
    // A duplicate id would leave two entries behind one m_pos slot and corrupt
    // every later erase; npos cannot be an id because it marks "absent". The
    // check costs one load of m_pos[id], which the push touches anyway.
    if (id == npos) {
        throw std::invalid_argument("deadline_heap::push: id " + std::to_string(id) +
                                    " is npos, which marks an absent id");
    }
    if (contains(id)) {
        throw std::invalid_argument("deadline_heap::push: id " + std::to_string(id) +
                                    " is already in the heap");
    }
    // Grow m_pos before m_heap: if either allocation throws, the heap is
    // unchanged (extra npos slots in m_pos are harmless).
    if (id >= m_pos.size()) {
        m_pos.resize(std::size_t{id} + 1, npos);
    }
    m_heap.push_back(entry{deadline, id});
    sift_up(m_heap.size() - 1);
}

template <unsigned Arity>
bool basic_deadline_heap<Arity>::erase(std::uint32_t id) noexcept {
    if (!contains(id)) {
        return false;
    }
    const std::size_t i = m_pos[id];
    m_pos[id] = npos;
    const entry last = m_heap.back();
    m_heap.pop_back();
    if (i == m_heap.size()) {
        return true; // `id` was the last entry: nothing to refill
    }
    // The last entry refills the hole at i. It may belong above i (it came
    // from another subtree) or below it, never both.
    m_heap[i] = last;
    if (i > 0 && last.deadline < m_heap[(i - 1) / Arity].deadline) {
        sift_up(i);
    } else {
        sift_down(i);
    }
    return true;
}

template <unsigned Arity>
typename basic_deadline_heap<Arity>::entry basic_deadline_heap<Arity>::pop() noexcept {
    const entry top = m_heap.front();
    m_pos[top.id] = npos;
    const entry last = m_heap.back();
    m_heap.pop_back();
    if (!m_heap.empty()) {
        m_heap.front() = last;
        sift_down(0);
    }
    return top;
}

template <unsigned Arity>
void basic_deadline_heap<Arity>::reserve(std::size_t ids) {
    // Positions are stored as uint32_t with npos reserved, so no id (and no
    // index) can reach npos.
    if (ids > std::size_t{npos}) {
        throw std::invalid_argument("deadline_heap::reserve: " + std::to_string(ids) +
                                    " ids exceed the 32-bit id space");
    }
    if (ids > m_pos.size()) {
        m_pos.resize(ids, npos);
    }
    m_heap.reserve(ids);
}

template <unsigned Arity>
void basic_deadline_heap<Arity>::clear() noexcept {
    // Reset only the slots in use: O(size()) rather than O(ids), and the
    // allocations are kept for the next fill.
    for (const entry& e : m_heap) {
        m_pos[e.id] = npos;
    }
    m_heap.clear();
}

template <unsigned Arity>
void basic_deadline_heap<Arity>::sift_up(std::size_t i) noexcept {
    entry* const heap = m_heap.data();
    const entry moving = heap[i];
    while (i > 0) {
        const std::size_t parent = (i - 1) / Arity;
        // Strict <: an equal parent stays put, so the sift stops as early as
        // the heap property allows (ties may come out in any order).
        if (!(moving.deadline < heap[parent].deadline)) {
            break;
        }
        place(i, heap[parent]);
        i = parent;
    }
    place(i, moving);
}

template <unsigned Arity>
void basic_deadline_heap<Arity>::sift_down(std::size_t i) noexcept {
    entry* const heap = m_heap.data();
    const std::size_t n = m_heap.size();
    const entry moving = heap[i];
    for (;;) {
        const std::size_t first = i * Arity + 1;
        if (first >= n) {
            break;
        }
        std::size_t best = first;
        std::int64_t best_deadline = heap[first].deadline;
        if (first + Arity <= n) {
            // All Arity children exist: a fixed trip count the compiler
            // unrolls into compare-and-select without a bounds check.
            for (unsigned k = 1; k < Arity; ++k) {
                const std::int64_t d = heap[first + k].deadline;
                if (d < best_deadline) {
                    best_deadline = d;
                    best = first + k;
                }
            }
        } else {
            for (std::size_t c = first + 1; c < n; ++c) {
                if (heap[c].deadline < best_deadline) {
                    best_deadline = heap[c].deadline;
                    best = c;
                }
            }
        }
        if (!(best_deadline < moving.deadline)) {
            break;
        }
        place(i, heap[best]);
        i = best;
    }
    place(i, moving);
}

template class basic_deadline_heap<2>;
template class basic_deadline_heap<4>;
template class basic_deadline_heap<8>;

} // namespace icmpengine::detail
