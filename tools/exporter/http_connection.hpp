// SPDX-License-Identifier: MIT
// Private to http_server.cpp and http_connection.cpp: the server's shared
// state and the life of one connection.
//
// Everything here lives on the server's executor (one thread): no locks.
// Each coroutine (one accept loop per listener, one per connection) holds a
// shared_ptr to the state, so the state outlives the http_server object
// until the last coroutine has ended.
#pragma once

#include "http_server.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <list>
#include <memory>

namespace icmpengine_exporter {

/// One accepted connection; `phase` says what close() may do to it.
struct http_connection {
    enum class phase {
        reading,  ///< waiting for (or reading) a request head: close() cancels it
        handling, ///< in the handler or writing: close() lets it finish
    };
    explicit http_connection(boost::asio::ip::tcp::socket socket) : stream(std::move(socket)) {}
    boost::beast::tcp_stream stream;
    phase state = phase::reading;
    bool evicted = false; ///< cancelled to make room for a newer connection
    std::list<std::shared_ptr<http_connection>>::iterator position; ///< in http_server::impl
};

struct http_listener {
    explicit http_listener(boost::asio::any_io_executor executor)
        : acceptor(executor), retry(executor) {}
    boost::asio::ip::tcp::acceptor acceptor;
    boost::asio::steady_timer retry; ///< after EMFILE/ENFILE, before accepting again
    boost::asio::ip::tcp::endpoint local;
};

/// The server's state (http_server::impl is this; a namespace-level name
/// so that the connection's functions can take it).
struct http_server_state {
    http_server_state(boost::asio::any_io_executor e, http_limits l, http_handler h)
        : executor(std::move(e)), limits(l), handler(std::move(h)) {}
    boost::asio::any_io_executor executor;
    http_limits limits;
    http_handler handler;
    http_stats stats;
    bool closing = false;
    std::vector<std::shared_ptr<http_listener>> listeners;
    std::list<std::shared_ptr<http_connection>> connections;

    void do_close();
};

struct http_server::impl : http_server_state {
    using http_server_state::http_server_state;
};

/// Serves requests on `c` until the client or a limit ends it, then closes
/// the socket and removes `c` from `server->connections`.
boost::asio::awaitable<void> serve_connection(std::shared_ptr<http_server_state> server,
                                              std::shared_ptr<http_connection> c);

} // namespace icmpengine_exporter
