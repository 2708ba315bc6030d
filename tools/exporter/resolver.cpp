// SPDX-License-Identifier: MIT
// resolver.hpp: getaddrinfo on a thread of its own, results posted back.
//
// A request's life: resolve() (executor thread) numbers it, replaces the
// pending one and wakes the worker; the worker takes it, runs expand()
// through a resolve function that gives up as soon as a newer request (or
// the destructor) appears, and posts the result through an executor that
// tracks work; on the executor thread the result is delivered only if no
// newer request was made meanwhile and the resolver still exists.
#include "resolver.hpp"

#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>

namespace icmpengine_exporter {

namespace {

std::optional<ie::ip_address> from_sockaddr(const sockaddr* sa) {
    if (sa->sa_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
        std::array<std::uint8_t, 4> bytes{};
        std::memcpy(bytes.data(), &in->sin_addr, bytes.size());
        return ie::ip_address::from_v4_bytes(bytes);
    }
    if (sa->sa_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
        std::array<std::uint8_t, 16> bytes{};
        std::memcpy(bytes.data(), &in6->sin6_addr, bytes.size());
        return ie::ip_address::from_v6_bytes(bytes, in6->sin6_scope_id);
    }
    return std::nullopt;
}

std::vector<ie::ip_address> getaddrinfo_addresses(const std::string& host, network_kind network) {
    addrinfo hints{};
    hints.ai_family = network == network_kind::ip4   ? AF_INET
                      : network == network_kind::ip6 ? AF_INET6
                                                     : AF_UNSPEC;
    // One entry per address rather than one per socket type.
    hints.ai_socktype = SOCK_DGRAM;
    // No AI_ADDRCONFIG: it hides every address of a family that has no
    // non-loopback address configured, so "localhost" would not resolve
    // in a namespace with only lo.
    hints.ai_flags = 0;
    addrinfo* list = nullptr;
    if (::getaddrinfo(host.c_str(), nullptr, &hints, &list) != 0)
        return {};
    std::vector<ie::ip_address> out;
    for (const addrinfo* p = list; p != nullptr; p = p->ai_next) {
        const std::optional<ie::ip_address> a = from_sockaddr(p->ai_addr);
        if (a && std::find(out.begin(), out.end(), *a) == out.end())
            out.push_back(*a);
    }
    ::freeaddrinfo(list);
    return out;
}

// Thrown through expand() to give up on a request that is no longer wanted.
struct abandoned {};

} // namespace

resolve_function system_resolve() {
    return getaddrinfo_addresses;
}

struct resolver::state {
    struct request {
        std::uint64_t number = 0;
        exporter_config config;
        shard_spec shard;
        done_handler done;
        // Keeps the executor's context running until the result is posted.
        boost::asio::any_io_executor work;
    };

    state(boost::asio::any_io_executor ex, resolve_function fn)
        : executor(std::move(ex)), resolve(std::move(fn)) {}

    boost::asio::any_io_executor executor;
    resolve_function resolve;
    std::mutex mutex;
    std::condition_variable wake;
    std::optional<request> pending; // guarded by mutex
    std::atomic<std::uint64_t> newest{0};
    std::atomic<bool> stopping{false};

    void run(const std::shared_ptr<state>& self);
    void serve(request& r, const std::shared_ptr<state>& self);
};

void resolver::state::serve(request& r, const std::shared_ptr<state>& self) {
    const std::uint64_t number = r.number;
    const resolve_function unless_superseded = [&](const std::string& host, network_kind n) {
        if (stopping.load() || newest.load() != number)
            throw abandoned{};
        return resolve(host, n);
    };
    std::exception_ptr failure;
    try {
        expanded_targets result = expand(r.config, r.shard, unless_superseded);
        boost::asio::post(
            r.work, [self, number, done = std::move(r.done), result = std::move(result)]() mutable {
                // On the executor thread, where resolve() is called: no newer
                // request can slip in between this check and the call.
                if (!self->stopping.load() && self->newest.load() == number)
                    done(std::move(result));
            });
    } catch (const abandoned&) {
    } catch (...) {
        failure = std::current_exception();
    }
    // Posted once this thread has left the catch block, so that the
    // exception object is only the executor thread's from then on.
    if (failure)
        boost::asio::post(r.work, [e = std::move(failure)] { std::rethrow_exception(e); });
}

void resolver::state::run(const std::shared_ptr<state>& self) {
    for (;;) {
        std::optional<request> r;
        {
            std::unique_lock lock(mutex);
            wake.wait(lock, [&] { return stopping.load() || pending.has_value(); });
            if (stopping.load())
                return;
            r.swap(pending);
        }
        serve(*r, self);
    }
}

resolver::resolver(boost::asio::any_io_executor executor, resolve_function resolve)
    : m_state(std::make_shared<state>(std::move(executor), std::move(resolve))) {
    m_thread = std::thread([s = m_state] { s->run(s); });
}

resolver::~resolver() {
    {
        std::lock_guard lock(m_state->mutex);
        m_state->stopping.store(true);
        m_state->pending.reset();
    }
    m_state->wake.notify_one();
    m_thread.join();
}

void resolver::resolve(exporter_config config, shard_spec shard, done_handler done) {
    {
        std::lock_guard lock(m_state->mutex);
        const std::uint64_t number = m_state->newest.load() + 1;
        m_state->newest.store(number);
        m_state->pending =
            state::request{number, std::move(config), shard, std::move(done),
                           boost::asio::prefer(m_state->executor,
                                               boost::asio::execution::outstanding_work.tracked)};
    }
    m_state->wake.notify_one();
}

} // namespace icmpengine_exporter
