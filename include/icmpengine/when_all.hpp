// SPDX-License-Identifier: MIT
// icmpengine::when_all: await many tasks at once.
#pragma once

#include <icmpengine/detail/detached.hpp>
#include <icmpengine/task.hpp>

#include <coroutine>
#include <cstddef>
#include <exception>
#include <optional>
#include <utility>
#include <vector>

namespace icmpengine {
namespace detail {

/// The owner of a when_all's children (see detached_owner): counts them
/// down, and the last one to finish resumes the when_all by symmetric
/// transfer. The children's frames belong to the when_all's frame until it
/// ends, so destroying a when_all that still waits frees them too.
struct when_all_state {
    std::size_t m_remaining = 0;
    std::coroutine_handle<> m_waiter;
    std::exception_ptr m_first_exception;
    std::size_t m_first_exception_index = 0;

    void record(std::size_t index, std::exception_ptr e) noexcept {
        if (!m_first_exception || index < m_first_exception_index) {
            m_first_exception = std::move(e);
            m_first_exception_index = index;
        }
    }
    std::coroutine_handle<> child_finished(std::coroutine_handle<>) noexcept {
        if (--m_remaining == 0)
            return m_waiter;
        return std::noop_coroutine();
    }
    // The children catch what their task throws, to record it with its
    // index; anything else (there is nothing else) would rank last.
    void child_failed(std::exception_ptr e) noexcept {
        record(static_cast<std::size_t>(-1), std::move(e));
    }
};

using when_all_child = detached<when_all_state>;

template <typename T>
when_all_child make_when_all_child(task<T>& t, std::optional<T>& out, when_all_state& state,
                                   std::size_t index) {
    try {
        out.emplace(co_await std::move(t));
    } catch (...) {
        state.record(index, std::current_exception());
    }
}

inline when_all_child make_when_all_child(task<void>& t, when_all_state& state, std::size_t index) {
    try {
        co_await std::move(t);
    } catch (...) {
        state.record(index, std::current_exception());
    }
}

/// Starts every child, then suspends until the last one finishes (or does
/// not suspend at all if they all finished synchronously).
struct when_all_start {
    std::vector<when_all_child>& m_children;
    when_all_state& m_state;

    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> awaiting) noexcept {
        m_state.m_waiter = awaiting;
        // One extra count held while starting, so that a child finishing
        // synchronously never resumes the awaiter from inside this loop.
        m_state.m_remaining = m_children.size() + 1;
        for (auto& child : m_children)
            child.start(m_state);
        return --m_state.m_remaining != 0;
    }
    void await_resume() const noexcept {}
};

} // namespace detail

/// Runs all tasks concurrently and returns their results in input order.
/// Every task runs to completion even if some throw; then the exception of
/// the lowest-indexed failing task is rethrown.
///
///     std::vector<icmpengine::task<icmpengine::ping_result>> pings;
///     for (auto& a : targets) pings.push_back(engine.ping(a, 1s));
///     auto results = co_await icmpengine::when_all(std::move(pings));
template <typename T>
task<std::vector<T>> when_all(std::vector<task<T>> tasks) {
    std::vector<std::optional<T>> slots(tasks.size());
    detail::when_all_state state;
    {
        std::vector<detail::when_all_child> children;
        children.reserve(tasks.size());
        for (std::size_t i = 0; i < tasks.size(); ++i)
            children.push_back(detail::make_when_all_child(tasks[i], slots[i], state, i));
        co_await detail::when_all_start{children, state};
    }
    tasks.clear();
    if (state.m_first_exception)
        std::rethrow_exception(state.m_first_exception);
    std::vector<T> results;
    results.reserve(slots.size());
    for (auto& s : slots)
        results.push_back(std::move(*s));
    co_return results;
}

/// As above, for tasks without a result.
inline task<void> when_all(std::vector<task<void>> tasks) {
    detail::when_all_state state;
    {
        std::vector<detail::when_all_child> children;
        children.reserve(tasks.size());
        for (std::size_t i = 0; i < tasks.size(); ++i)
            children.push_back(detail::make_when_all_child(tasks[i], state, i));
        co_await detail::when_all_start{children, state};
    }
    tasks.clear();
    if (state.m_first_exception)
        std::rethrow_exception(state.m_first_exception);
}

} // namespace icmpengine
