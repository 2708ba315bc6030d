// SPDX-License-Identifier: MIT
// detail::send_buffer_pool: the buffers echo requests are sent from.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

namespace icmpengine::detail {

/// Fixed-size buffers for requests between their SQE and their CQE. The
/// kernel reads a send's buffer (and, if it had to retry, its address) until
/// the CQE; owning them here rather than in the awaiter means an abandoned
/// coroutine frame can never leave the kernel reading freed memory, and a
/// million pings in flight do not each keep a packet around.
class send_buffer_pool {
  public:
    static constexpr std::size_t chunk_size = 128;
    std::byte* get(std::size_t size);
    void put(std::byte* p, std::size_t size) noexcept;

  private:
    std::vector<std::unique_ptr<std::byte[]>> m_blocks;
    std::vector<std::byte*> m_free;
};

} // namespace icmpengine::detail
