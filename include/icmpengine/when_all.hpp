// SPDX-License-Identifier: MIT
// icmpengine::when_all: await many tasks at once.
#pragma once

#include <icmpengine/task.hpp>

#include <coroutine>
#include <cstddef>
#include <exception>
#include <utility>
#include <vector>

namespace icmpengine {
namespace detail {

/// Starts every task as a member of one group, then suspends until the last
/// one finishes (or does not suspend at all if they all finished
/// synchronously). No frame per task but the task's own: each result stays
/// in its task's promise until when_all takes it.
template <typename T>
struct when_all_start {
    std::vector<task<T>>& m_tasks;
    task_group m_group;

    bool await_ready() const noexcept { return m_tasks.empty(); }
    bool await_suspend(std::coroutine_handle<> awaiting) noexcept {
        m_group.m_waiter = awaiting;
        // One extra count held while starting, so that a task finishing
        // synchronously never resumes the awaiter from inside this loop.
        m_group.m_remaining = m_tasks.size() + 1;
        for (task<T>& t : m_tasks)
            task_access::start_in_group(t, m_group);
        return --m_group.m_remaining != 0;
    }
    void await_resume() const noexcept {}
};

/// Rethrows the exception of the lowest-indexed task that failed, after
/// freeing every task's frame.
template <typename T>
void rethrow_first_failure(std::vector<task<T>>& tasks) {
    for (task<T>& t : tasks)
        if (task_access::failed(t)) {
            try {
                task_access::take_result(t);
            } catch (...) {
                std::exception_ptr e = std::current_exception();
                tasks.clear();
                std::rethrow_exception(e);
            }
        }
}

} // namespace detail

/// Runs all tasks concurrently and returns their results in input order.
/// Every task runs to completion even if some throw; then the exception of
/// the lowest-indexed failing task is rethrown. Each task's result waits in
/// the task's own frame (no coroutine or slot per task besides it) until
/// all have finished.
///
///     std::vector<icmpengine::task<icmpengine::ping_result>> pings;
///     for (auto& a : targets) pings.push_back(engine.ping(a, 1s));
///     auto results = co_await icmpengine::when_all(std::move(pings));
template <typename T>
task<std::vector<T>> when_all(std::vector<task<T>> tasks) {
    co_await detail::when_all_start<T>{tasks, {}};
    detail::rethrow_first_failure(tasks);
    std::vector<T> results;
    results.reserve(tasks.size());
    for (task<T>& t : tasks)
        results.push_back(detail::task_access::take_result(t));
    tasks.clear();
    co_return results;
}

/// As above, for tasks without a result.
inline task<void> when_all(std::vector<task<void>> tasks) {
    co_await detail::when_all_start<void>{tasks, {}};
    detail::rethrow_first_failure(tasks);
    tasks.clear();
}

} // namespace icmpengine
