// SPDX-License-Identifier: MIT
#include "frame_pool.hpp"
#include "huge_pages.hpp"

#include <icmpengine/detail/allocation.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#define ICMPENGINE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ICMPENGINE_ASAN 1
#endif
#endif
#ifdef ICMPENGINE_ASAN
#include <sanitizer/asan_interface.h>
// Blocks on the free list and chunk space not yet handed out are poisoned,
// so that AddressSanitizer still reports a use of a freed frame.
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace icmpengine::detail {

namespace {

constexpr std::size_t round_up(std::size_t n, std::size_t to) noexcept {
    return (n + to - 1) / to * to;
}

void unmap_chunk(std::byte* base, std::size_t size) noexcept {
    UNPOISON(base, size);
    unmap_populated(base, size);
}

} // namespace

frame_pool::~frame_pool() {
    for (const chunk& c : m_chunks)
        unmap_chunk(c.base, c.size);
}

bool frame_pool::pooled(std::size_t size) const noexcept {
    return round_up(size, alignof(std::max_align_t)) == m_block && m_block <= first_chunk;
}

void frame_pool::release(frame_pool* pool) noexcept {
    if (pool == nullptr)
        return;
    if (pool->m_out == 0)
        delete pool;
    else
        pool->m_released = true;
}

std::size_t frame_pool::chunk_bytes() const noexcept {
    std::size_t n = 0;
    for (const chunk& c : m_chunks)
        n += c.size;
    return n;
}

void frame_pool::add_chunk() {
    const std::size_t size = m_chunks.empty() ? first_chunk : huge_chunk;
    m_chunks.reserve(m_chunks.size() + 1);
    // Populated: frames are carved from a chunk in order, so all of it is
    // written before the next chunk is mapped (but the last one's rest).
    std::byte* base = map_populated(size);
    m_chunks.push_back({base, size});
    POISON(base, size);
    m_next = base;
    m_end = base + size;
}

void* frame_pool::allocate(std::size_t size) {
    if (m_block == 0)
        m_block = round_up(std::max(size, sizeof(free_block)), alignof(std::max_align_t));
    if (!pooled(size)) {
        void* p = ::operator new(size);
        ++m_out;
        return p;
    }
    void* p;
    if (m_free != nullptr) {
        UNPOISON(m_free, m_block);
        p = m_free;
        m_free = m_free->next;
    } else {
        if (static_cast<std::size_t>(m_end - m_next) < m_block)
            add_chunk();
        p = m_next;
        m_next += m_block;
        UNPOISON(p, m_block);
    }
    ++m_out;
    return p;
}

void frame_pool::deallocate(void* block, std::size_t size) noexcept {
    if (!pooled(size)) {
        ::operator delete(block);
    } else {
        auto* b = ::new (block) free_block{m_free};
        m_free = b;
        POISON(b, m_block);
    }
    if (--m_out == 0) {
        if (m_released)
            delete this;
        else
            trim();
    }
}

void frame_pool::trim() noexcept {
    if (m_chunks.empty())
        return;
    for (std::size_t i = 1; i < m_chunks.size(); ++i)
        unmap_chunk(m_chunks[i].base, m_chunks[i].size);
    m_chunks.resize(1);
    m_free = nullptr;
    m_next = m_chunks[0].base;
    m_end = m_next + m_chunks[0].size;
    POISON(m_next, m_chunks[0].size);
}

namespace {

/// Precedes every task frame: the pool its memory came from, or null for
/// the heap. 16 bytes, so that the frame keeps operator new's alignment.
struct alignas(__STDCPP_DEFAULT_NEW_ALIGNMENT__) frame_header {
    frame_pool* pool = nullptr;
};

} // namespace

void* allocate_frame(std::size_t size) {
    void* block = ::operator new(size + sizeof(frame_header));
    return ::new (block) frame_header{} + 1;
}

void* allocate_frame(frame_pool& pool, std::size_t size) {
    void* block = pool.allocate(size + sizeof(frame_header));
    return ::new (block) frame_header{&pool} + 1;
}

void free_frame(void* frame, std::size_t size) noexcept {
    frame_header* header = static_cast<frame_header*>(frame) - 1;
    if (header->pool != nullptr)
        header->pool->deallocate(header, size + sizeof(frame_header));
    else
        ::operator delete(header);
}

} // namespace icmpengine::detail
