// SPDX-License-Identifier: MIT
// icmpengine/boost_asio.hpp: the engine inside a Boost.Asio program (Boost
// 1.74 or later: Debian's libboost-dev), for servers built on Boost.Beast
// and the rest of Boost. Header-only and optional: the library itself never
// includes Boost. The same model as icmpengine/asio.hpp (standalone Asio),
// mode (a): the engine on the io_context's one thread.
//
//     boost::asio::io_context ctx;              // run by one thread
//     icmpengine::engine eng;
//     icmpengine::boost_asio::driver driver(ctx.get_executor(), eng);
//     boost::asio::co_spawn(ctx, [&]() -> boost::asio::awaitable<void> {
//         icmpengine::ping_result r = co_await icmpengine::boost_asio::async_ping(
//             eng, icmpengine::ip_address::parse("::1"), 1s, boost::asio::use_awaitable);
//         auto stats = co_await icmpengine::boost_asio::async_run(
//             eng, my_fanout_task(eng), boost::asio::use_awaitable);
//     }, boost::asio::detached);
//     ctx.run(); // until the driver is destroyed or ctx.stop()
//
// What differs from asio.hpp: Boost 1.74's Asio (1.18) has no
// per-operation cancellation slots, so an operation here cannot be
// cancelled through its token; end pings with engine::cancel or
// engine::stop() (they complete as `cancelled`). And async_run(): any
// icmpengine::task (a fan-out, a series, several pings) awaited from an
// Asio coroutine. Completions are always posted to the handler's
// associated executor (never run inside the engine's poll()).
//
// With clang 14, Boost 1.74 does not detect C++20 coroutine support by
// itself: compile with -DBOOST_ASIO_HAS_CO_AWAIT=1 (the meson build does).
#pragma once

#include <icmpengine/engine.hpp>
#include <icmpengine/errors.hpp>
#include <icmpengine/ip_address.hpp>
#include <icmpengine/ping_result.hpp>
#include <icmpengine/task.hpp>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

namespace icmpengine::boost_asio {

/// Keeps an engine driven from a Boost.Asio executor for as long as it
/// lives: waits for the engine's descriptor to become readable and calls
/// engine::poll(). The rules of icmpengine::asio_driver apply unchanged:
/// one thread runs the executor's context (the engine's thread); create and
/// destroy the driver there, before the engine and the context; an
/// exception from poll() propagates out of io_context::run() with the wait
/// re-armed.
class driver {
  public:
    template <typename Executor>
    driver(const Executor& executor, engine& eng)
        : m_state(std::make_shared<state>(executor, eng)) {
        arm(m_state);
    }
    ~driver() {
        m_state->eng = nullptr;
        (void)m_state->descriptor.release(); // the engine's: it closes it
    }
    driver(const driver&) = delete;
    driver& operator=(const driver&) = delete;

    engine& driven_engine() const noexcept { return *m_state->eng; }

  private:
    struct state {
        template <typename Executor>
        state(const Executor& executor, engine& e)
            : descriptor(executor, descriptor_of(e)), eng(&e) {}
        ~state() {
            if (descriptor.is_open())
                (void)descriptor.release();
        }
        state(const state&) = delete;
        state& operator=(const state&) = delete;

        ::boost::asio::posix::stream_descriptor descriptor;
        engine* eng; ///< null once the driver was destroyed
    };

    static int descriptor_of(engine& e) {
        const int fd = e.native_handle();
        if (fd < 0)
            throw std::system_error(make_error_code(errc::io_uring_unavailable),
                                    "icmpengine::boost_asio::driver");
        return fd;
    }

    static void arm(const std::shared_ptr<state>& s) {
        s->descriptor.async_wait(
            ::boost::asio::posix::stream_descriptor::wait_read,
            [s](const ::boost::system::error_code& ec) { on_readable(s, ec); });
    }

    static void on_readable(const std::shared_ptr<state>& s,
                            const ::boost::system::error_code& ec) {
        if (s->eng == nullptr || ec == ::boost::asio::error::operation_aborted)
            return;
        if (ec)
            throw ::boost::system::system_error(ec, "icmpengine::boost_asio::driver: waiting");
        try {
            s->eng->poll();
        } catch (...) {
            if (s->eng != nullptr)
                arm(s);
            throw;
        }
        if (s->eng != nullptr)
            arm(s);
    }

    std::shared_ptr<state> m_state;
};

namespace detail {

template <typename Handler>
using executor_for = ::boost::asio::associated_executor_t<Handler, ::boost::asio::system_executor>;

/// Posts `handler(args...)` to its executor and releases the work guard.
template <typename Handler, typename... Args>
void post_completion(Handler handler,
                     ::boost::asio::executor_work_guard<executor_for<Handler>> work, Args... args) {
    const executor_for<Handler> ex = work.get_executor();
    ::boost::asio::post(ex, [h = std::move(handler), ... a = std::move(args)]() mutable {
        std::move(h)(std::move(a)...);
    });
    work.reset();
}

/// One async_ping in flight: owns the handler until the engine reports.
template <typename Handler>
class ping_op final : public ping_handler {
  public:
    explicit ping_op(Handler&& handler)
        : m_handler(std::move(handler)), m_work(::boost::asio::get_associated_executor(
                                             m_handler, ::boost::asio::system_executor())) {}

    void on_ping_result(std::uint64_t, const ping_result& result) override {
        std::unique_ptr<ping_op> self(this); // freed before the handler runs
        Handler handler = std::move(m_handler);
        auto work = std::move(m_work);
        self.reset();
        post_completion(std::move(handler), std::move(work), result);
    }

  private:
    Handler m_handler;
    ::boost::asio::executor_work_guard<executor_for<Handler>> m_work;
};

struct initiate_ping {
    template <typename Handler>
    void operator()(Handler&& handler, engine* eng, ip_address to, std::chrono::nanoseconds timeout,
                    ping_options options) const {
        auto op = std::make_unique<ping_op<std::decay_t<Handler>>>(std::forward<Handler>(handler));
        eng->start_ping(to, timeout, *op, 0, options);
        (void)op.release(); // the engine reports exactly once; on_ping_result frees it
    }
};

template <typename T>
struct run_signature {
    using type = void(std::exception_ptr, T);
};
template <>
struct run_signature<void> {
    using type = void(std::exception_ptr);
};

/// The engine-side coroutine of async_run: awaits the task, then posts the
/// outcome to the handler's executor.
template <typename T, typename Handler>
task<void> run_then_complete(task<T> t, Handler handler,
                             ::boost::asio::executor_work_guard<executor_for<Handler>> work) {
    std::exception_ptr error;
    if constexpr (std::is_void_v<T>) {
        try {
            co_await std::move(t);
        } catch (...) {
            error = std::current_exception();
        }
        post_completion(std::move(handler), std::move(work), error);
    } else {
        std::optional<T> value;
        try {
            value.emplace(co_await std::move(t));
        } catch (...) {
            error = std::current_exception();
        }
        post_completion(std::move(handler), std::move(work), error,
                        value ? std::move(*value) : T{});
    }
}

struct initiate_run {
    template <typename Handler, typename T>
    void operator()(Handler&& handler, engine* eng, task<T> t) const {
        using handler_type = std::decay_t<Handler>;
        ::boost::asio::executor_work_guard<executor_for<handler_type>> work(
            ::boost::asio::get_associated_executor(handler, ::boost::asio::system_executor()));
        eng->spawn(run_then_complete<T, handler_type>(std::move(t), std::forward<Handler>(handler),
                                                      std::move(work)));
    }
};

} // namespace detail

/// One echo request from a Boost.Asio program: completes with
/// void(ping_result) (a timeout, an ICMP error or a send error is a result,
/// not an error). Call it on the engine's thread (the driver's context).
/// Throws std::invalid_argument at the call for arguments engine::ping
/// refuses.
template <typename CompletionToken>
auto async_ping(engine& eng, const ip_address& to, std::chrono::nanoseconds timeout,
                CompletionToken&& token, ping_options options = {}) {
    check_ping_arguments(to, timeout, options);
    return ::boost::asio::async_initiate<CompletionToken, void(ping_result)>(
        detail::initiate_ping{}, token, &eng, to, timeout, options);
}

/// Runs an icmpengine::task on `eng` (spawned: it starts in the engine's
/// next poll()) and completes with void(std::exception_ptr, T) -
/// void(std::exception_ptr) for task<void> - as boost::asio::co_spawn
/// does: with use_awaitable, the task's exception is rethrown in the
/// awaiting coroutine. T must be default-constructible (passed
/// value-initialised alongside an exception). Call it on the engine's
/// thread.
template <typename T, typename CompletionToken>
auto async_run(engine& eng, task<T> t, CompletionToken&& token) {
    return ::boost::asio::async_initiate<CompletionToken, typename detail::run_signature<T>::type>(
        detail::initiate_run{}, token, &eng, std::move(t));
}

} // namespace icmpengine::boost_asio
