// SPDX-License-Identifier: MIT
// The exporter's HTTP server: listeners and their accept loops, the
// connection limit, graceful close. The life of one connection (read a
// head, call the handler, write, keep alive or close) is in
// http_connection.cpp.
//
// Counters (http_stats): connections_accepted counts every connection
// accept() returned, including those then refused for being over
// max_connections (connections_refused, a subset, as nginx's "accepts").
#include "http_connection.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/core.h>

#include <sys/resource.h>

#include <algorithm>
#include <cerrno>

namespace icmpengine_exporter {

namespace net = boost::asio;
using boost::system::error_code;
using net::ip::tcp;

namespace {

/// At max_connections: ends the oldest connection still waiting for a
/// request (its coroutine removes it); false if every one is busy.
bool evict_idle(http_server_state& server) {
    for (const auto& c : server.connections)
        if (c->state == http_connection::phase::reading && !c->evicted) {
            c->evicted = true;
            c->stream.cancel();
            ++server.stats.connections_evicted;
            return true;
        }
    return false;
}

// Each connection is a descriptor: a server that may hold max_connections
// of them (and briefly more, the ones it refuses) must not be cut short by
// the soft RLIMIT_NOFILE, often 1,024, when the hard limit allows more.
void raise_descriptor_limit() {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= lim.rlim_max)
        return;
    lim.rlim_cur = lim.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &lim); // best effort: the old limit still works
}

[[noreturn]] void throw_listen_error(error_code ec, std::string_view address) {
    throw std::system_error(std::error_code(ec), "listen on " + std::string(address));
}

// Opens, binds and listens; false with `ec` set on failure.
bool open_acceptor(tcp::acceptor& acceptor, const tcp::endpoint& at, bool dual_stack,
                   error_code& ec) {
    if (acceptor.is_open())
        acceptor.close();
    acceptor.open(at.protocol(), ec);
    if (ec)
        return false;
    acceptor.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec && dual_stack)
        acceptor.set_option(net::ip::v6_only(false), ec);
    if (!ec)
        acceptor.bind(at, ec);
    if (!ec)
        acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec)
        acceptor.close();
    return !ec;
}

// The endpoints to try for `host`, IPv4 first (as Go's net.Listen does for
// "localhost:port", which resolves to 127.0.0.1 and ::1).
std::vector<tcp::endpoint> resolve(net::any_io_executor executor, const std::string& host,
                                   const std::string& port, error_code& ec) {
    std::vector<tcp::endpoint> out;
    tcp::resolver resolver(executor);
    const auto results = resolver.resolve(host, port, tcp::resolver::passive, ec);
    if (ec)
        return out;
    for (const auto& r : results)
        if (std::find(out.begin(), out.end(), r.endpoint()) == out.end())
            out.push_back(r.endpoint());
    std::stable_partition(out.begin(), out.end(),
                          [](const tcp::endpoint& e) { return e.address().is_v4(); });
    return out;
}

net::awaitable<void> accept_loop(std::shared_ptr<http_server_state> server,
                                 std::shared_ptr<http_listener> listener) {
    for (;;) {
        error_code ec;
        tcp::socket socket = co_await listener->acceptor.async_accept(
            server->executor, net::redirect_error(net::use_awaitable, ec));
        if (server->closing || ec == net::error::operation_aborted)
            co_return;
        if (ec == net::error::no_descriptors || ec == net::error::no_buffer_space ||
            ec.value() == ENFILE || ec.value() == ENOMEM) {
            // Out of descriptors: the pending connection stays queued; retry
            // after a pause rather than spin on the same error.
            fmt::print(stderr, "icmpengine-exporter: accept: {}\n", ec.message());
            listener->retry.expires_after(std::chrono::milliseconds(100));
            co_await listener->retry.async_wait(net::redirect_error(net::use_awaitable, ec));
            continue;
        }
        if (ec)
            continue; // the client went away before accept (ECONNABORTED, ...)
        ++server->stats.connections_accepted;
        if (server->connections.size() >= server->limits.max_connections && !evict_idle(*server)) {
            ++server->stats.connections_refused;
            socket.close(ec);
            continue;
        }
        auto c = std::make_shared<http_connection>(std::move(socket));
        c->position = server->connections.insert(server->connections.end(), c);
        server->stats.connections_open = server->connections.size();
        net::co_spawn(server->executor, serve_connection(server, std::move(c)), net::detached);
    }
}

} // namespace

void http_server_state::do_close() {
    if (closing)
        return;
    closing = true;
    error_code ec;
    for (const auto& l : listeners) {
        l->acceptor.close(ec);
        l->retry.cancel();
    }
    // Connections waiting for a request are ended now; those in a handler
    // or writing finish their response (with Connection: close) first.
    for (const auto& c : connections)
        if (c->state == http_connection::phase::reading)
            c->stream.cancel();
}

http_server::http_server(net::any_io_executor executor, http_limits limits, http_handler handler)
    : m_impl(std::make_shared<impl>(std::move(executor), limits, std::move(handler))) {
    raise_descriptor_limit();
}

http_server::~http_server() {
    close();
}

// Before the io_context runs, or on its thread (the listeners are the
// executor's state).
void http_server::listen(std::string_view address) {
    std::string host;
    std::string port;
    if (!split_listen_address(address, host, port))
        throw_listen_error(net::error::invalid_argument, address);
    auto listener = std::make_shared<http_listener>(m_impl->executor);
    error_code ec;
    if (host.empty()) {
        // ":port": every address, IPv6 and IPv4 on one socket ([::] with
        // IPV6_V6ONLY off); where IPv6 is unavailable, 0.0.0.0.
        const auto p = static_cast<unsigned short>(std::stoul(port));
        if (!open_acceptor(listener->acceptor, tcp::endpoint(tcp::v6(), p), true, ec) &&
            !open_acceptor(listener->acceptor, tcp::endpoint(tcp::v4(), p), false, ec))
            throw_listen_error(ec, address);
    } else {
        const std::vector<tcp::endpoint> candidates = resolve(m_impl->executor, host, port, ec);
        if (!ec && candidates.empty())
            ec = net::error::host_not_found;
        bool opened = false;
        for (const tcp::endpoint& at : candidates)
            if ((opened = open_acceptor(listener->acceptor, at, false, ec)))
                break;
        if (!opened)
            throw_listen_error(ec, address);
    }
    listener->local = listener->acceptor.local_endpoint();
    m_impl->listeners.push_back(listener);
    net::co_spawn(m_impl->executor, accept_loop(m_impl, listener), net::detached);
}

std::vector<tcp::endpoint> http_server::endpoints() const {
    std::vector<tcp::endpoint> out;
    for (const auto& l : m_impl->listeners)
        out.push_back(l->local);
    return out;
}

void http_server::close() {
    // On the executor's thread (inline when called there): the state is
    // touched only from that thread.
    net::dispatch(m_impl->executor, [impl = m_impl] { impl->do_close(); });
}

// Updated on the executor's thread: read them there (or once it has stopped).
const http_stats& http_server::stats() const noexcept {
    return m_impl->stats;
}

bool split_listen_address(std::string_view address, std::string& host, std::string& port) {
    std::string_view h;
    std::string_view p;
    if (!address.empty() && address.front() == '[') {
        const auto end = address.find(']');
        if (end == std::string_view::npos || end + 1 >= address.size() || address[end + 1] != ':')
            return false;
        h = address.substr(1, end - 1);
        p = address.substr(end + 2);
        if (h.empty())
            return false;
    } else {
        const auto colon = address.rfind(':');
        if (colon == std::string_view::npos)
            return false;
        h = address.substr(0, colon);
        p = address.substr(colon + 1);
        if (h.find(':') != std::string_view::npos)
            return false; // an IPv6 address must be in brackets
    }
    if (p.empty() || p.size() > 5 ||
        !std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        std::stoul(std::string(p)) > 65535)
        return false;
    host = h;
    port = p;
    return true;
}

} // namespace icmpengine_exporter
