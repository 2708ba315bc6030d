// SPDX-License-Identifier: MIT
// icmpengine/asio.hpp: the engine inside an Asio program (standalone Asio,
// 1.22 or later: Debian's libasio-dev). Header-only and optional: the
// library itself never includes Asio.
//
// Two ways to use an engine from Asio:
//
//  (a) The engine on the Asio thread. An asio_driver waits on the engine's
//      descriptor (engine::native_handle) with posix::stream_descriptor's
//      async_wait and calls engine::poll() whenever it is readable: no
//      extra thread. async_ping(engine&, ...) starts pings on it.
//
//          asio::io_context ctx;                 // run by one thread
//          icmpengine::engine eng;
//          icmpengine::asio_driver driver(ctx.get_executor(), eng);
//          asio::co_spawn(ctx, [&]() -> asio::awaitable<void> {
//              icmpengine::ping_result r = co_await icmpengine::async_ping(
//                  eng, icmpengine::ip_address::parse("::1"), 1s, asio::use_awaitable);
//              ...
//          }, asio::detached);
//          ctx.run(); // until the driver is destroyed or ctx.stop()
//
//  (b) The engine on its own thread (engine::run, or a driver on another
//      io_context), used from other threads through its remote handle:
//      async_ping(remote_engine, ...), e.g. from an asio::thread_pool.
//
// async_ping follows Asio's completion-token model (asio::async_initiate):
// asio::use_awaitable, asio::experimental::deferred, awaitable operators,
// parallel groups, use_future and plain callbacks all work. Its completion
// signature is void(ping_result): a timeout, an ICMP error or a send error
// is a result, not an error_code. The completion runs on the handler's
// associated executor (asio::get_associated_executor); a handler without
// one runs on the engine's thread, as the engine's own ping_handlers do.
//
// Per-operation cancellation: if the handler's cancellation slot is
// connected (awaitables always are; asio::bind_cancellation_slot, parallel
// groups and `||` connect one), a cancellation of any type ends the ping as
// `cancelled`, counted in engine_stats::cancelled, and the handler is
// called once with that result (unless the ping ended otherwise first).
// In mode (a) cancellation must be emitted on the engine's thread (where
// the slot's handler then calls engine::cancel): true of coroutines and
// parallel groups running on the driver's io_context. In mode (b) it may
// come from any thread: the cancellation is posted to the engine.
//
// With clang 14, standalone Asio 1.22 does not detect C++20 coroutine
// support by itself: compile with -DASIO_HAS_CO_AWAIT=1 to use awaitables
// (the project's meson build does).
#pragma once

#include <icmpengine/engine.hpp>
#include <icmpengine/errors.hpp>
#include <icmpengine/ip_address.hpp>
#include <icmpengine/ping_result.hpp>
#include <icmpengine/remote_engine.hpp>
#include <icmpengine/task.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/associated_allocator.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/dispatch.hpp>
#include <asio/error.hpp>
#include <asio/execution_context.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/recycling_allocator.hpp>
#include <asio/system_executor.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>

namespace icmpengine {

/// Keeps an engine driven from an Asio executor for as long as it lives
/// (mode (a) above): it waits for the engine's descriptor to become
/// readable (posix::stream_descriptor::async_wait) and then calls
/// engine::poll(), which runs whatever is ready - replies, timeouts, remote
/// work, coroutines spawned on the engine, async_ping completions - and
/// waits again. An idle engine's descriptor stays quiet, so the thread
/// sleeps. The pending wait is outstanding work: io_context::run() returns
/// only once the driver is destroyed (or the context is stopped).
///
/// Rules:
///  - The executor's context must be run by one thread, the engine's: the
///    thread that first used the engine (its io_uring ring accepts
///    submissions from that thread only, IORING_SETUP_SINGLE_ISSUER); the
///    engine is not thread-safe either. And Asio's reactor waits
///    edge-triggered: the driver re-arms its wait before the descriptor is
///    waited on again only because no other thread runs the reactor.
///  - Create and destroy the driver on that thread (or while the context is
///    not running), and destroy it before the engine and before the context.
///    It never closes the engine's descriptor.
///  - An exception that engine::poll() rethrows (from a spawned task, a
///    ping handler, remote work or an async_ping callback) propagates out of
///    the driver's handler and so out of io_context::run(), as Asio does for
///    any handler's exception. The driver has re-armed its wait first: call
///    run() again to go on.
class asio_driver {
  public:
    /// Starts driving `eng` from `executor` (an io_context's executor, or a
    /// strand of a context run by one thread). Throws std::system_error if
    /// the engine has no descriptor (io_uring unavailable).
    template <typename Executor>
    asio_driver(const Executor& executor, engine& eng)
        : m_state(std::make_shared<state>(executor, eng)) {
        arm(m_state);
    }
    /// Drives `eng` from `context.get_executor()`.
    template <typename ExecutionContext>
    requires std::is_convertible_v<ExecutionContext&, asio::execution_context&>
    asio_driver(ExecutionContext& context, engine& eng)
        : asio_driver(context.get_executor(), eng) {}

    /// Stops driving: cancels the pending wait and gives the descriptor back
    /// to the engine (release(), never close()). Pings in flight stay in
    /// flight; drive the engine some other way, or destroy it, to end them.
    ~asio_driver() {
        m_state->eng = nullptr;
        // Now, not when the last handler holding the state goes: the engine
        // may close the descriptor right after this.
        (void)m_state->descriptor.release();
    }
    asio_driver(const asio_driver&) = delete;
    asio_driver& operator=(const asio_driver&) = delete;

    engine& driven_engine() const noexcept { return *m_state->eng; }

  private:
    // Shared with the pending wait's handler, which may run after the
    // driver is gone (a completion already queued when it was destroyed).
    struct state {
        template <typename Executor>
        state(const Executor& executor, engine& e)
            : descriptor(executor, descriptor_of(e)), eng(&e) {}
        ~state() {
            if (descriptor.is_open())
                (void)descriptor.release(); // the engine's: it closes it
        }
        state(const state&) = delete;
        state& operator=(const state&) = delete;

        asio::posix::stream_descriptor descriptor;
        engine* eng; ///< null once the driver was destroyed
    };

    static int descriptor_of(engine& e) {
        const int fd = e.native_handle();
        if (fd < 0)
            throw std::system_error(make_error_code(errc::io_uring_unavailable),
                                    "icmpengine::asio_driver");
        return fd;
    }

    static void arm(const std::shared_ptr<state>& s) {
        s->descriptor.async_wait(asio::posix::stream_descriptor::wait_read,
                                 [s](const std::error_code& ec) { on_readable(s, ec); });
    }

    static void on_readable(const std::shared_ptr<state>& s, const std::error_code& ec) {
        if (s->eng == nullptr || ec == asio::error::operation_aborted)
            return; // the driver is gone
        if (ec)     // not expected of an eventfd; waiting again could spin
            throw std::system_error(ec, "icmpengine::asio_driver: waiting on the engine");
        try {
            s->eng->poll();
        } catch (...) {
            if (s->eng != nullptr)
                arm(s);
            throw;
        }
        // What poll() ran may have destroyed the driver (a coroutine's end).
        if (s->eng != nullptr)
            arm(s);
    }

    std::shared_ptr<state> m_state;
};

namespace detail::asio_ping {

/// The executor a handler's completion runs on: its associated one, or
/// else inline on the engine's thread (system_executor's dispatch).
template <typename Handler>
using executor_for = asio::associated_executor_t<Handler, asio::system_executor>;

template <typename Handler>
using work_for = asio::executor_work_guard<executor_for<Handler>>;

/// Calls `handler(result)` on its executor: clears its cancellation slot
/// there first (where the slot's owner emits, so nothing races), then
/// invokes it. Inline where Asio's dispatch allows (the engine's thread
/// running the handler's io_context). A result of an engine being stopped
/// (error errc::stopped) is posted instead, so that no user code runs
/// inside the engine's stop() or destructor; a handler without an executor
/// gets it inline all the same. `defer`: the initiating function itself
/// completes, which must never call the handler (posted, even to
/// system_executor's pool).
template <typename Handler>
void complete(Handler handler, work_for<Handler> work, const ping_result& result, bool defer) {
    auto call = [h = std::move(handler), result]() mutable {
        auto slot = asio::get_associated_cancellation_slot(h);
        if (slot.is_connected())
            slot.clear();
        std::move(h)(result);
    };
    const executor_for<Handler> ex = work.get_executor();
    if (defer)
        asio::post(ex, std::move(call));
    else if constexpr (std::is_same_v<executor_for<Handler>, asio::system_executor>)
        call();
    else if (result.error == make_error_code(errc::stopped))
        asio::post(ex, std::move(call));
    else
        asio::dispatch(ex, std::move(call));
    work.reset();
}

/// Cancellation state of one remote ping, touched only on the engine's
/// thread: its ticket, and whether it has ended (after which the ticket's
/// handler may name another ping).
struct remote_cancellation {
    ping_ticket ticket{};
    bool done = false;
};

/// One ping in flight for async_ping: the engine's ping_handler, owning the
/// Asio handler and a work guard on its executor. Allocated with the
/// handler's associated allocator (recycling by default) and freed before
/// the handler is called, as Asio's own operations do.
template <typename Handler>
class op final : public ping_handler {
  public:
    using allocator_type = typename std::allocator_traits<asio::associated_allocator_t<
        Handler, asio::recycling_allocator<void>>>::template rebind_alloc<op>;

    static op* create(Handler&& handler) {
        allocator_type alloc(
            asio::get_associated_allocator(handler, asio::recycling_allocator<void>()));
        op* p = std::allocator_traits<allocator_type>::allocate(alloc, 1);
        try {
            std::allocator_traits<allocator_type>::construct(alloc, p, std::move(handler));
        } catch (...) {
            std::allocator_traits<allocator_type>::deallocate(alloc, p, 1);
            throw;
        }
        return p;
    }

    explicit op(Handler&& handler)
        : m_handler(std::move(handler)),
          m_work(asio::get_associated_executor(m_handler, asio::system_executor())) {}

    /// Frees this op without calling its handler (start_ping threw).
    void destroy() noexcept {
        allocator_type alloc(m_handler_allocator());
        std::allocator_traits<allocator_type>::destroy(alloc, this);
        std::allocator_traits<allocator_type>::deallocate(alloc, this, 1);
    }

    /// Mode (a): the handler's slot is cleared at completion, on the
    /// engine's thread, which is where it is emitted.
    bool clear_slot_on_completion = false;
    /// Mode (b): shared with the slot's handler (which may outlive us).
    std::shared_ptr<remote_cancellation> remote;

    void on_ping_result(std::uint64_t /*cookie*/, const ping_result& result) override {
        if (clear_slot_on_completion) {
            auto slot = asio::get_associated_cancellation_slot(m_handler);
            if (slot.is_connected())
                slot.clear();
        }
        if (remote)
            remote->done = true;
        finish(result, false);
    }

    /// Completes with `result`, always through the handler's executor
    /// (for a ping that could not be started: never inline).
    void finish(const ping_result& result, bool defer) {
        Handler handler(std::move(m_handler));
        work_for<Handler> work(std::move(m_work));
        destroy();
        complete(std::move(handler), std::move(work), result, defer);
    }

  private:
    auto m_handler_allocator() const {
        return asio::get_associated_allocator(m_handler, asio::recycling_allocator<void>());
    }

    Handler m_handler;
    work_for<Handler> m_work;
};

/// The slot handler of a ping in mode (a): emitted on the engine's thread.
struct local_cancel {
    // (A constructor: clang 14 has no parenthesized aggregate initialization.)
    local_cancel(engine* e, const ping_ticket& t) noexcept : eng(e), ticket(t) {}
    engine* eng;
    ping_ticket ticket;
    void operator()(asio::cancellation_type type) const {
        // The cancelled result comes from the next poll(): engine::cancel
        // makes the descriptor readable.
        if (type != asio::cancellation_type::none)
            eng->cancel(ticket);
    }
};

/// The slot handler of a ping in mode (b): emitted on any thread, it posts
/// the cancellation to the engine. Harmless after the ping ended or the
/// engine is gone.
struct remote_cancel {
    remote_cancel(remote_engine r, std::shared_ptr<remote_cancellation> s) noexcept
        : remote(std::move(r)), state(std::move(s)) {}
    remote_engine remote;
    std::shared_ptr<remote_cancellation> state;
    void operator()(asio::cancellation_type type) const {
        if (type == asio::cancellation_type::none)
            return;
        (void)remote.post([s = state](engine& eng) {
            if (!s->done)
                eng.cancel(s->ticket);
        });
    }
};

struct initiate_local {
    template <typename Handler>
    void operator()(Handler&& handler, engine* eng, ip_address to, std::chrono::nanoseconds timeout,
                    ping_options options) const {
        using handler_type = std::decay_t<Handler>;
        handler_type h(std::forward<Handler>(handler));
        auto slot = asio::get_associated_cancellation_slot(h);
        op<handler_type>* p = op<handler_type>::create(std::move(h));
        p->clear_slot_on_completion = slot.is_connected();
        ping_ticket ticket;
        try {
            ticket = eng->start_ping(to, timeout, *p, 0, options);
        } catch (...) {
            p->destroy();
            throw;
        }
        if (slot.is_connected())
            slot.template emplace<local_cancel>(eng, ticket);
    }
};

/// The engine's own check (engine.hpp), made at the call for a remote ping:
/// the engine's thread would otherwise be the one to throw.
inline void check_arguments(const ip_address& to, std::chrono::nanoseconds timeout,
                            const ping_options& options) {
    check_ping_arguments(to, timeout, options);
}

struct initiate_remote {
    template <typename Handler>
    void operator()(Handler&& handler, const remote_engine& remote, ip_address to,
                    std::chrono::nanoseconds timeout, ping_options options) const {
        using handler_type = std::decay_t<Handler>;
        handler_type h(std::forward<Handler>(handler));
        auto slot = asio::get_associated_cancellation_slot(h);
        op<handler_type>* p = op<handler_type>::create(std::move(h));
        std::shared_ptr<remote_cancellation> cancellation;
        if (slot.is_connected())
            p->remote = cancellation = std::make_shared<remote_cancellation>();
        // Once posted, p belongs to the engine's thread (it may be freed
        // before post() returns): only `cancellation` is used below.
        const std::error_code posted = remote.post([p, to, timeout, options](engine& eng) {
            const ping_ticket ticket = eng.start_ping(to, timeout, *p, 0, options);
            // p stays valid here: the engine never delivers from inside start_ping.
            if (remote_cancellation* c = p->remote.get())
                c->ticket = ticket;
        });
        if (posted) {
            // The engine is gone or stopped: complete at once, through the
            // handler's executor (never inside this initiating call).
            ping_result r;
            r.status = ping_status::cancelled;
            r.from = to;
            r.error = posted;
            p->finish(r, true);
            return;
        }
        // The slot's handler posts its cancellation after the start above:
        // the engine runs remote work in the order it was posted.
        if (cancellation)
            slot.template emplace<remote_cancel>(remote, std::move(cancellation));
    }
};

} // namespace detail::asio_ping

/// One ping on an engine driven on this thread (mode (a): an asio_driver,
/// or a loop of the caller's that calls engine::poll()). Completes with
/// void(ping_result) on the handler's associated executor. Throws
/// std::invalid_argument at initiation for arguments engine::ping refuses.
///
///     ping_result r = co_await async_ping(eng, addr, 1s, asio::use_awaitable);
///     auto [i, a, b] = co_await (async_ping(eng, addr, 5s, use_awaitable) ||
///                                timer.async_wait(use_awaitable)); // a timeout of our own
template <typename CompletionToken>
auto async_ping(engine& eng, ip_address to, std::chrono::nanoseconds timeout,
                const ping_options& options, CompletionToken&& token) {
    return asio::async_initiate<CompletionToken, void(ping_result)>(
        detail::asio_ping::initiate_local{}, token, &eng, to, timeout, options);
}

template <typename CompletionToken>
auto async_ping(engine& eng, ip_address to, std::chrono::nanoseconds timeout,
                CompletionToken&& token) {
    return async_ping(eng, to, timeout, ping_options{}, std::forward<CompletionToken>(token));
}

/// One ping on an engine running on another thread (mode (b)), through its
/// thread-safe handle. Completes with void(ping_result) on the handler's
/// associated executor (e.g. an asio::thread_pool's). If the engine was
/// stopped or destroyed, completes at once (posted) with `cancelled` and
/// errc::stopped. Throws std::invalid_argument at initiation for arguments
/// engine::ping refuses.
template <typename CompletionToken>
auto async_ping(const remote_engine& remote, ip_address to, std::chrono::nanoseconds timeout,
                const ping_options& options, CompletionToken&& token) {
    detail::asio_ping::check_arguments(to, timeout, options);
    return asio::async_initiate<CompletionToken, void(ping_result)>(
        detail::asio_ping::initiate_remote{}, token, remote, to, timeout, options);
}

template <typename CompletionToken>
auto async_ping(const remote_engine& remote, ip_address to, std::chrono::nanoseconds timeout,
                CompletionToken&& token) {
    return async_ping(remote, to, timeout, ping_options{}, std::forward<CompletionToken>(token));
}

} // namespace icmpengine
