// detail::deadline_heap: the engine's timer wheel replacement.
//
// A d-ary min-heap of (deadline, id) pairs with a position index per id, so
// that removing a ping whose reply arrived is O(log n) instead of a search.
// Ids are dense small integers (the engine's slot indices).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace icmpengine::detail {

template <unsigned Arity>
class basic_deadline_heap {
    static_assert(Arity >= 2, "a heap needs at least two children per node");

public:
    /// Deadlines are nanoseconds on CLOCK_MONOTONIC.
    struct entry {
        std::int64_t deadline;
        std::uint32_t id;
    };
    static constexpr std::uint32_t npos = std::numeric_limits<std::uint32_t>::max();

    /// Adds `id` with `deadline`. Precondition: !contains(id).
    void push(std::uint32_t id, std::int64_t deadline);
    /// Removes `id`; false if it was not in the heap.
    bool erase(std::uint32_t id) noexcept;
    bool contains(std::uint32_t id) const noexcept {
        return id < m_pos.size() && m_pos[id] != npos;
    }
    /// The earliest deadline. Precondition: !empty().
    const entry& top() const noexcept { return m_heap.front(); }
    /// Removes and returns the earliest deadline. Precondition: !empty().
    entry pop() noexcept;

    bool empty() const noexcept { return m_heap.empty(); }
    std::size_t size() const noexcept { return m_heap.size(); }
    /// Reserves room for ids below `ids` and as many entries.
    void reserve(std::size_t ids);
    void clear() noexcept;

private:
    void sift_up(std::size_t i) noexcept;
    void sift_down(std::size_t i) noexcept;
    void place(std::size_t i, const entry& e) noexcept {
        m_heap[i] = e;
        m_pos[e.id] = static_cast<std::uint32_t>(i);
    }

    std::vector<entry> m_heap;
    std::vector<std::uint32_t> m_pos; // m_pos[id]: index in m_heap, or npos
};

extern template class basic_deadline_heap<2>;
extern template class basic_deadline_heap<4>;
extern template class basic_deadline_heap<8>;

/// The arity the engine uses (measured in bench/bench_deadline_heap.cpp).
using deadline_heap = basic_deadline_heap<4>;

} // namespace icmpengine::detail
