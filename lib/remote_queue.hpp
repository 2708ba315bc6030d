// SPDX-License-Identifier: MIT
// detail::remote_queue: work for an engine from other threads (see
// remote_engine.hpp), shared by the engine and every remote_engine handle.
#pragma once

#include <functional>
#include <mutex>
#include <vector>

namespace icmpengine {
class engine;
}

namespace icmpengine::detail {

class remote_queue {
  public:
    using work = std::function<void(engine&)>;

    /// Opens the eventfd the engine's ring polls for wake-ups. Throws
    /// std::system_error.
    remote_queue();
    ~remote_queue();
    remote_queue(const remote_queue&) = delete;
    remote_queue& operator=(const remote_queue&) = delete;

    /// Any thread: queues `w`, waking the engine if the queue was empty.
    /// False (and `w` dropped) once closed.
    bool push(work w);
    /// The engine's thread: takes everything queued (and clears the
    /// wake-up, so the next push signals again).
    std::vector<work> take();
    /// The engine's thread: no more pushes; returns what was still queued.
    std::vector<work> close();
    bool open() const;
    /// The eventfd that becomes readable when work was pushed.
    int wake_fd() const noexcept { return m_wake_fd; }
    /// Also signal `fd` (the engine's native_handle(), duplicated here so
    /// that a handle outliving the engine never writes a closed or reused
    /// descriptor) when work is pushed: a host loop then wakes at once,
    /// without the round trip through the ring.
    void signal_also(int fd);

  private:
    mutable std::mutex m_mutex;
    std::vector<work> m_queue;
    bool m_open = true;
    int m_wake_fd = -1;
    int m_notify_fd = -1; ///< a dup of the engine's native_handle(), or -1
};

} // namespace icmpengine::detail
