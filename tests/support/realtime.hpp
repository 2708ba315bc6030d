// SPDX-License-Identifier: MIT
// SCHED_FIFO for a measuring thread.
#pragma once

#include <pthread.h>
#include <sched.h>

namespace icmpengine::testing {

/// Runs the calling thread under SCHED_FIFO (priority 1) while it lives, if
/// permitted (sched(7)), so that a measurement is not mostly the wake-up
/// latency of a busy machine: a real-time thread is not preempted between
/// taking a time stamp and entering the kernel.
class scoped_realtime {
  public:
    explicit scoped_realtime(bool wanted = true) {
        sched_param param{};
        param.sched_priority = 1;
        m_active = wanted && ::pthread_setschedparam(::pthread_self(), SCHED_FIFO, &param) == 0;
    }
    ~scoped_realtime() {
        if (m_active) {
            sched_param param{};
            ::pthread_setschedparam(::pthread_self(), SCHED_OTHER, &param);
        }
    }
    scoped_realtime(const scoped_realtime&) = delete;
    scoped_realtime& operator=(const scoped_realtime&) = delete;
    bool active() const noexcept { return m_active; }

  private:
    bool m_active = false;
};

} // namespace icmpengine::testing
