// SPDX-License-Identifier: MIT
#include "send_buffer_pool.hpp"

namespace icmpengine::detail {

std::byte* send_buffer_pool::get(std::size_t size) {
    if (size > chunk_size)
        return new std::byte[size];
    if (m_free.empty()) {
        constexpr std::size_t per_block = 256;
        m_blocks.push_back(std::unique_ptr<std::byte[]>(new std::byte[chunk_size * per_block]));
        std::byte* base = m_blocks.back().get();
        for (std::size_t i = per_block; i-- > 0;)
            m_free.push_back(base + i * chunk_size);
    }
    std::byte* p = m_free.back();
    m_free.pop_back();
    return p;
}

void send_buffer_pool::put(std::byte* p, std::size_t size) noexcept {
    if (p == nullptr)
        return;
    if (size > chunk_size) {
        delete[] p;
        return;
    }
    m_free.push_back(p);
}

} // namespace icmpengine::detail
