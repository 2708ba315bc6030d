// SPDX-License-Identifier: MIT
// Drivers for testing coroutine types without an engine.
#pragma once

#include <catch2/catch.hpp>

#include <icmpengine/task.hpp>

#include <coroutine>
#include <utility>
#include <vector>

namespace icmpengine::testing {

/// Starts `t` and returns its result (or rethrows its exception). For tasks
/// that complete without suspending on anything outside themselves.
template <typename T>
T run_sync(task<T>& t) {
    REQUIRE(t.valid());
    REQUIRE_FALSE(t.is_ready());
    detail::task_access::handle(t).resume();
    REQUIRE(t.is_ready());
    return detail::task_access::take_result(t);
}

template <typename T>
T run_sync(task<T>&& t) {
    return run_sync(t);
}

/// A one-shot event set by hand: coroutines awaiting it suspend until set()
/// resumes them, in the order they arrived.
class manual_event {
  public:
    bool is_set() const noexcept { return m_set; }
    void set() {
        m_set = true;
        for (std::coroutine_handle<> h : std::exchange(m_waiters, {}))
            h.resume();
    }
    auto operator co_await() noexcept {
        struct awaiter {
            manual_event& m_event;
            bool await_ready() const noexcept { return m_event.m_set; }
            void await_suspend(std::coroutine_handle<> h) { m_event.m_waiters.push_back(h); }
            void await_resume() const noexcept {}
        };
        return awaiter{*this};
    }

  private:
    bool m_set = false;
    std::vector<std::coroutine_handle<>> m_waiters;
};

} // namespace icmpengine::testing
