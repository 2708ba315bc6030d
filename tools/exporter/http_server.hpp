// SPDX-License-Identifier: MIT
// The exporter's HTTP/1.1 server: Boost.Beast on the io_context the
// engines run on, one coroutine per connection (no thread per request),
// with limits that keep hostile clients from stalling anything: header
// size, request time, idle time, connections at once, and responses a
// client does not read.
#pragma once

// Before Boost: Boost 1.74's asio/awaitable.hpp uses std::exchange without
// including <utility>.
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace icmpengine_exporter {

/// What a handler sees of a request (GET and HEAD only reach handlers;
/// other methods get 405 from the server).
struct http_request {
    std::string method;
    std::string target; ///< path and query as sent ("/probe?target=::1")
    std::string path;   ///< target up to '?'
    std::string query;  ///< after '?', not decoded ("" if none)
    /// Header fields, names lower-cased (a repeated field: the last).
    std::map<std::string, std::string> headers;
    bool accepts_gzip = false; ///< Accept-Encoding lists gzip
};

/// Makes a response's body a chunk at a time (http_response::stream).
using http_body_producer = std::function<boost::asio::awaitable<bool>(std::string& chunk)>;

struct http_response {
    unsigned status = 200;
    std::string content_type = "text/plain; version=0.0.4; charset=utf-8";
    std::string body;
    /// Extra header fields (Cache-Control, Allow, ...).
    std::vector<std::pair<std::string, std::string>> headers;
    /// A body made while it is sent, in bounded chunks (`body` is then
    /// ignored): called with `chunk` cleared but its capacity kept (one
    /// buffer per response, reused), it appends the next part of the body
    /// and returns false once the body is complete (that last chunk is
    /// still sent). HTTP/1.1 clients get `Transfer-Encoding: chunked`,
    /// HTTP/1.0 clients the raw body and `Connection: close`; each write is
    /// bounded by write_timeout; HEAD gets the head and the producer is
    /// never called. An exception from the first call becomes a 500; from a
    /// later one (the head is gone) it is logged and the connection reset.
    http_body_producer stream;
};

/// Runs on the server's executor; may co_await (a probe waits for its
/// pings). An exception becomes a 500 with its what() and is logged.
using http_handler = std::function<boost::asio::awaitable<http_response>(http_request)>;

struct http_limits {
    std::size_t max_header_bytes = 16 * 1024; ///< beyond: 431, connection closed
    /// At this many, a new connection evicts the oldest one that is waiting
    /// for a request (so a flood of idle connections cannot lock out a
    /// scrape); if every one is busy in a handler, the new one is closed.
    std::size_t max_connections = 512;
    std::chrono::seconds request_timeout{10}; ///< to receive one request's head
    std::chrono::seconds idle_timeout{60};    ///< keep-alive between requests
    std::chrono::seconds write_timeout{30};   ///< to send one response (a client reading nothing)
};

/// Counters for the exporter's own metrics (icmpengine_exporter_http_*).
struct http_stats {
    std::uint64_t connections_accepted = 0;
    std::uint64_t connections_refused = 0; ///< over max_connections, none idle to evict
    /// Idle ones (waiting for a request) closed to make room for a new one
    /// at max_connections: oldest first.
    std::uint64_t connections_evicted = 0;
    std::uint64_t connections_open = 0;
    std::uint64_t requests = 0;
    std::uint64_t bad_requests = 0; ///< 4xx from the server itself (parse errors, limits)
    std::uint64_t timeouts = 0;     ///< connections closed by a timeout
};

class http_server {
  public:
    http_server(boost::asio::any_io_executor executor, http_limits limits, http_handler handler);
    ~http_server();
    http_server(const http_server&) = delete;
    http_server& operator=(const http_server&) = delete;

    /// Opens a listener on "host:port", ":port", "[v6]:port" (Prometheus
    /// exporters' --web.listen-address syntax; ":port" = every address,
    /// IPv6 and IPv4). Throws std::system_error naming the address on
    /// failure ("listen on :9374: Address already in use").
    void listen(std::string_view address);
    /// The local endpoints listened on (port 0 resolved).
    std::vector<boost::asio::ip::tcp::endpoint> endpoints() const;

    /// Graceful shutdown: closes the listeners, lets requests being
    /// handled finish and be written (bounded by write_timeout), closes idle
    /// connections.
    void close();

    const http_stats& stats() const noexcept;

  private:
    struct impl;
    std::shared_ptr<impl> m_impl;
};

/// Splits "host:port" (see listen) into host and port; false if malformed.
bool split_listen_address(std::string_view address, std::string& host, std::string& port);

} // namespace icmpengine_exporter
