// SPDX-License-Identifier: MIT
// System tests of the exporter's HTTP server (tools/exporter/http_server):
// the server runs on an io_context in a second thread, clients are plain
// blocking sockets in the test's thread, all on 127.0.0.1 inside the
// test's private network namespace (support/system_main.cpp).
//
// No sleeps: every wait is on the server's answer or on its closing the
// connection. The only time bound is a watchdog far from normal: a client
// that hears nothing for 30 s (SO_RCVTIMEO) fails the test, and so does an
// io_context that has not returned 30 s after close().
#include <catch2/catch.hpp>

#include "http_server.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
namespace net = boost::asio;
namespace http = boost::beast::http;
using icmpengine_exporter::http_handler;
using icmpengine_exporter::http_limits;
using icmpengine_exporter::http_request;
using icmpengine_exporter::http_response;
using icmpengine_exporter::http_server;

namespace {

constexpr auto watchdog = 30s;
constexpr std::size_t big_body = 10 * 1024 * 1024;

// What the test's handler does, by path:
//   /        "path=... query=... gzip=0|1 x-test=..." (what the handler saw)
//   /big     a 10 MB body
//   /slow    waits, 200 ms at a time on a timer, until `release` is set
//   /throw   throws
//   /stream  a streamed body of `stream_chunks` chunks (stream_part())
//   /stream-throw        a stream whose third chunk throws
//   /stream-throw-first  a stream whose first chunk throws
//   /stream-huge         100 MB streamed in 256 KB chunks
struct routes {
    std::atomic<bool> release{false};
    std::promise<void> slow_entered;
    std::promise<void> big_entered;
    std::atomic<int> calls{0};
    std::atomic<int> produced{0}; ///< producer calls, all streams
    std::promise<void> huge_entered;
};

constexpr int stream_chunks = 200;
constexpr std::size_t huge_body = 100 * 1024 * 1024;

// Chunk `i` of /stream: distinct lines, some chunks empty (not the last).
std::string stream_part(int i) {
    std::string s;
    if (i % 7 == 3)
        return s;
    for (int line = 0; line < 1 + i % 50; ++line)
        s += "chunk " + std::to_string(i) + " line " + std::to_string(line) + "\n";
    return s;
}

std::string stream_body() {
    std::string s;
    for (int i = 0; i < stream_chunks; ++i)
        s += stream_part(i);
    return s;
}

// A producer over `parts` calls: part(i, chunk) fills chunk i.
template <typename Part>
std::function<net::awaitable<bool>(std::string&)> producer(routes& r, int parts, Part part) {
    auto next = std::make_shared<int>(0);
    return [&r, parts, part, next](std::string& chunk) -> net::awaitable<bool> {
        ++r.produced;
        if (!chunk.empty())
            throw std::logic_error("the chunk did not arrive cleared");
        part(*next, chunk);
        co_return ++*next < parts;
    };
}

void set_stream(routes& r, const std::string& path, http_response& res) {
    if (path == "/stream") {
        res.stream = producer(r, stream_chunks, [](int i, std::string& c) { c = stream_part(i); });
    } else if (path == "/stream-throw" || path == "/stream-throw-first") {
        const int fails_at = path == "/stream-throw" ? 2 : 0;
        res.stream = producer(r, 10, [fails_at](int i, std::string& c) {
            if (i == fails_at)
                throw std::runtime_error("the producer threw");
            c = stream_part(i);
        });
    } else {
        r.huge_entered.set_value();
        constexpr std::size_t part = 256 * 1024;
        res.stream = producer(r, static_cast<int>(huge_body / part),
                              [](int, std::string& c) { c.assign(part, 'x'); });
    }
}

net::awaitable<http_response> handle(routes& r, http_request req) {
    ++r.calls;
    http_response res;
    if (req.path == "/big") {
        r.big_entered.set_value();
        res.body.assign(big_body, 'x');
    } else if (req.path == "/slow") {
        r.slow_entered.set_value();
        net::steady_timer timer(co_await net::this_coro::executor);
        for (;;) {
            timer.expires_after(200ms);
            co_await timer.async_wait(net::use_awaitable);
            if (r.release)
                break;
        }
        res.body = "released\n";
    } else if (req.path.rfind("/stream", 0) == 0) {
        set_stream(r, req.path, res);
    } else if (req.path == "/throw") {
        throw std::runtime_error("the handler threw");
    } else {
        const auto x = req.headers.find("x-test");
        res.body = "path=" + req.path + " query=" + req.query +
                   " gzip=" + (req.accepts_gzip ? "1" : "0") +
                   " x-test=" + (x == req.headers.end() ? "" : x->second) + "\n";
        res.headers.emplace_back("Cache-Control", "no-store");
    }
    co_return res;
}

// A server on 127.0.0.1:0 whose io_context runs in a second thread.
struct server_fixture {
    routes r;
    net::io_context ctx{1};
    std::optional<http_server> server;
    unsigned short port = 0;
    std::thread io;
    std::promise<void> ran;
    std::future<void> done = ran.get_future();

    explicit server_fixture(http_limits limits = {}, std::string_view address = "127.0.0.1:0") {
        server.emplace(ctx.get_executor(), limits,
                       [this](http_request req) { return handle(r, std::move(req)); });
        server->listen(address);
        port = server->endpoints().at(0).port();
        io = std::thread([this] {
            try {
                ctx.run();
                ran.set_value();
            } catch (...) {
                ran.set_exception(std::current_exception());
            }
        });
    }
    // close(), then the io_context must run out of work: returns the stats.
    icmpengine_exporter::http_stats stop() {
        server->close();
        if (done.wait_for(watchdog) != std::future_status::ready) {
            std::fprintf(stderr, "watchdog: io_context::run() still busy 30 s after close()\n");
            std::abort(); // the io thread cannot be joined
        }
        io.join();
        done.get(); // rethrows what escaped run()
        return server->stats();
    }
    ~server_fixture() {
        if (io.joinable())
            (void)stop();
    }
};

// A blocking TCP client; SO_RCVTIMEO/SO_SNDTIMEO are the watchdog.
class client {
  public:
    explicit client(unsigned short port, int rcvbuf = 0) {
        m_fd = ::socket(AF_INET, SOCK_STREAM, 0);
        REQUIRE(m_fd >= 0);
        timeval tv{std::chrono::seconds(watchdog).count(), 0};
        ::setsockopt(m_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::setsockopt(m_fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (rcvbuf > 0) // before connect: no autotuning, so the client buffers little
            ::setsockopt(m_fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        m_connected = ::connect(m_fd, loopback(port), sizeof(sockaddr_in)) == 0;
        m_errno = errno;
    }
    ~client() { ::close(m_fd); }
    client(const client&) = delete;
    client& operator=(const client&) = delete;

    bool connected() const { return m_connected; }
    int connect_errno() const { return m_errno; }

    void send(std::string_view data) {
        while (!data.empty()) {
            const ssize_t n = ::send(m_fd, data.data(), data.size(), MSG_NOSIGNAL);
            if (n < 0 && errno == EAGAIN)
                FAIL("watchdog: the server read nothing for 30 s");
            REQUIRE(n > 0);
            data.remove_prefix(static_cast<std::size_t>(n));
        }
    }

    // One whole response, parsed by Beast (the HEAD answer has no body).
    http::response<http::string_body> response(bool head = false) {
        http::response_parser<http::string_body> p;
        p.eager(true);
        p.skip(head);
        p.body_limit(64 * 1024 * 1024);
        for (;;) {
            if (!m_pending.empty()) {
                boost::system::error_code ec;
                const std::size_t used = p.put(net::buffer(m_pending), ec);
                m_pending.erase(0, used);
                if (p.is_done())
                    return p.release();
                if (ec && ec != http::error::need_more)
                    FAIL("bad response from the server: " << ec.message());
                if (used > 0 && !ec)
                    continue;
            }
            if (receive() == 0) {
                // A body without Content-Length or chunking ends at the close.
                boost::system::error_code ec;
                p.put_eof(ec);
                if (!ec && p.is_done())
                    return p.release();
                FAIL("the server closed the connection before a whole response");
            }
        }
    }

    // Reads until the server closes (EOF or reset): the bytes read.
    std::size_t read_until_closed() {
        std::size_t total = m_pending.size();
        m_pending.clear();
        for (;;) {
            const std::size_t n = receive();
            if (n == 0)
                return total;
            total += n;
            m_pending.clear();
        }
    }

    // Waits (without reading) until the connection is reset or hung up.
    void wait_for_hangup() {
        pollfd p{m_fd, POLLRDHUP, 0};
        const int n = ::poll(&p, 1, static_cast<int>(std::chrono::milliseconds(watchdog).count()));
        REQUIRE(n >= 0);
        if (n == 0)
            FAIL("watchdog: the connection still up after 30 s");
    }

    // True if the server has neither closed nor sent anything (no wait).
    bool open_and_silent() {
        char c;
        const ssize_t n = ::recv(m_fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }

  private:
    static const sockaddr* loopback(unsigned short port) {
        static thread_local sockaddr_in sin;
        sin = {};
        sin.sin_family = AF_INET;
        sin.sin_port = htons(port);
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return reinterpret_cast<const sockaddr*>(&sin);
    }
    // Appends what arrives to m_pending; 0 when the server closed.
    std::size_t receive() {
        char buf[64 * 1024];
        const ssize_t n = ::recv(m_fd, buf, sizeof buf, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            FAIL("watchdog: nothing from the server for 30 s");
        if (n < 0 && errno == ECONNRESET)
            return 0;
        REQUIRE(n >= 0);
        m_pending.append(buf, static_cast<std::size_t>(n));
        return static_cast<std::size_t>(n);
    }

    int m_fd = -1;
    bool m_connected = false;
    int m_errno = 0;
    std::string m_pending;
};

constexpr std::string_view get_root =
    "GET /?a=1&b=2 HTTP/1.1\r\nHost: t\r\nX-Test: seen\r\nAccept-Encoding: br, gzip\r\n\r\n";

void require_ok(const http::response<http::string_body>& res) {
    REQUIRE(res.result_int() == 200);
    REQUIRE(res.body().rfind("path=/", 0) == 0);
}

void wait(std::future<void> f) {
    REQUIRE(f.wait_for(watchdog) == std::future_status::ready);
}

} // namespace

TEST_CASE("GET: status, headers, body, and a second request on the same connection", "[http]") {
    server_fixture f;
    client c(f.port);
    REQUIRE(c.connected());
    c.send(get_root);
    auto res = c.response();
    CHECK(res.result_int() == 200);
    CHECK(res.body() == "path=/ query=a=1&b=2 gzip=1 x-test=seen\n");
    CHECK(res[http::field::content_length] == std::to_string(res.body().size()));
    CHECK(res[http::field::content_type] == "text/plain; version=0.0.4; charset=utf-8");
    CHECK(res["Cache-Control"] == "no-store");
    CHECK(res.keep_alive());
    c.send("GET /x HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip;q=0\r\nConnection: close\r\n\r\n");
    res = c.response();
    CHECK(res.body() == "path=/x query= gzip=0 x-test=\n");
    CHECK_FALSE(res.keep_alive());
    CHECK(c.read_until_closed() == 0); // Connection: close honoured
    const auto s = f.stop();
    CHECK(s.connections_accepted == 1);
    CHECK(s.requests == 2);
    CHECK(s.bad_requests == 0);
    CHECK(s.connections_open == 0);
}

TEST_CASE("HEAD: the GET's headers and no body", "[http]") {
    server_fixture f;
    client c(f.port);
    c.send(get_root);
    const auto get = c.response();
    c.send("HEAD /?a=1&b=2 HTTP/1.1\r\nHost: t\r\nX-Test: seen\r\nAccept-Encoding: gzip\r\n\r\n");
    const auto head = c.response(true);
    CHECK(head.result_int() == 200);
    CHECK(head[http::field::content_length] == std::to_string(get.body().size()));
    CHECK(head.body().empty());
    // Had the server sent a body, it would be read here as the next response.
    c.send(get_root);
    require_ok(c.response());
}

TEST_CASE("POST gets 405 with Allow, and never reaches the handler", "[http]") {
    server_fixture f;
    client c(f.port);
    c.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    const auto res = c.response();
    CHECK(res.result_int() == 405);
    CHECK(res["Allow"] == "GET, HEAD");
    // No body was sent: the connection carries on.
    c.send(get_root);
    require_ok(c.response());
    // With a body (never read): 405, then closed.
    client d(f.port);
    d.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    CHECK(d.response().result_int() == 405);
    CHECK(d.read_until_closed() == 0);
    const auto s = f.stop();
    CHECK(f.r.calls == 1);
    CHECK(s.bad_requests == 2);
}

TEST_CASE("A GET with a body gets 413 and is closed", "[http]") {
    server_fixture f;
    client c(f.port);
    c.send("GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    CHECK(c.response().result_int() == 413);
    CHECK(c.read_until_closed() == 0);
    client d(f.port);
    d.send(
        "GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    CHECK(d.response().result_int() == 413);
    CHECK(d.read_until_closed() == 0);
    CHECK(f.stop().bad_requests == 2);
    CHECK(f.r.calls == 0);
}

TEST_CASE("Garbage gets 400 with a one-line reason, then the connection is closed", "[http]") {
    server_fixture f;
    client c(f.port);
    c.send("\x01\x02 this is not HTTP \xff\r\n\r\n");
    const auto res = c.response();
    CHECK(res.result_int() == 400);
    CHECK(res.body().find('\n') == res.body().size() - 1);
    CHECK(c.read_until_closed() == 0);
    client d(f.port);
    d.send(get_root);
    require_ok(d.response());
    const auto s = f.stop();
    CHECK(s.bad_requests == 1);
    CHECK(s.requests == 1);
}

TEST_CASE("A 64 KB header gets 431 and the connection is closed", "[http]") {
    server_fixture f;
    client c(f.port);
    c.send("GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(64 * 1024, 'a') + "\r\n\r\n");
    CHECK(c.response().result_int() == 431);
    CHECK(c.read_until_closed() == 0);
    CHECK(f.stop().bad_requests == 1);
    CHECK(f.r.calls == 0);
}

TEST_CASE("1,000 idle connections: each one over max_connections evicts the oldest idle one, "
          "so a new client is still answered",
          "[http]") {
    http_limits limits;
    limits.max_connections = 600;
    limits.request_timeout = 600s; // nothing here may end by a timeout
    limits.idle_timeout = 600s;
    server_fixture f(limits);
    client first(f.port);
    first.send(get_root);
    require_ok(first.response()); // then idle: the oldest connection
    std::vector<std::unique_ptr<client>> idle;
    for (int i = 0; i < 1000; ++i) {
        idle.push_back(std::make_unique<client>(f.port));
        REQUIRE(idle.back()->connected());
    }
    // Connections are accepted in order, and each one past the limit ends
    // the oldest one still waiting for a request: `first`, then idle[0],
    // idle[1], ... The newest client is answered, flood or not.
    client last(f.port);
    last.send(get_root);
    require_ok(last.response());
    const std::size_t evicted = 1002 - limits.max_connections; // first + idle[0..400]
    CHECK(first.read_until_closed() == 0);
    for (std::size_t i = 0; i < idle.size(); ++i) {
        INFO("idle connection " << i);
        if (i + 1 < evicted)
            CHECK(idle[i]->read_until_closed() == 0);
        else
            CHECK(idle[i]->open_and_silent());
    }
    const auto s = f.stop(); // closes the held idle connections
    CHECK(s.connections_accepted == 1002);
    CHECK(s.connections_evicted == evicted);
    CHECK(s.connections_refused == 0);
    CHECK(s.connections_open == 0);
    CHECK(s.requests == 2);
    CHECK(s.timeouts == 0);
    for (std::size_t i = evicted - 1; i < idle.size(); ++i)
        CHECK(idle[i]->read_until_closed() == 0);
}

TEST_CASE("A client that reads nothing of a 10 MB answer is closed after write_timeout, "
          "another is answered meanwhile",
          "[http]") {
    http_limits limits;
    limits.write_timeout = 1s;
    server_fixture f(limits);
    client reader_of_nothing(f.port, 4096);
    reader_of_nothing.send("GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
    wait(f.r.big_entered.get_future());
    client other(f.port);
    other.send(get_root);
    require_ok(other.response());
    // The server gives up by resetting the connection: wait for that, then
    // read what the kernels had buffered, far less than the whole answer.
    reader_of_nothing.wait_for_hangup();
    CHECK(reader_of_nothing.read_until_closed() < big_body);
    other.send(get_root);
    require_ok(other.response());
    const auto s = f.stop();
    CHECK(s.timeouts == 1);
    CHECK(s.requests == 3);
}

TEST_CASE("A request head not complete within request_timeout: closed", "[http]") {
    http_limits limits;
    limits.request_timeout = 1s;
    server_fixture f(limits);
    client slow(f.port);
    slow.send("GET / HTTP/1.1\r\nHost: t\r\n"); // and never the blank line
    CHECK(slow.read_until_closed() == 0);
    const auto s = f.stop();
    CHECK(s.timeouts == 1);
    CHECK(s.requests == 0);
    CHECK(f.r.calls == 0);
}

TEST_CASE("An idle keep-alive connection is closed after idle_timeout", "[http]") {
    http_limits limits;
    limits.idle_timeout = 1s;
    server_fixture f(limits);
    client c(f.port);
    c.send(get_root);
    require_ok(c.response());
    CHECK(c.read_until_closed() == 0);
    CHECK(f.stop().timeouts == 1);
}

TEST_CASE("A handler that co_awaits does not hold up another connection", "[http]") {
    server_fixture f;
    client waiting(f.port);
    waiting.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
    wait(f.r.slow_entered.get_future());
    client second(f.port);
    second.send(get_root);
    require_ok(second.response()); // answered while /slow waits
    f.r.release = true;            // /slow can end only after that answer
    const auto res = waiting.response();
    CHECK(res.result_int() == 200);
    CHECK(res.body() == "released\n");
}

TEST_CASE("A throwing handler gets 500 with its message; the server goes on", "[http]") {
    server_fixture f;
    client c(f.port);
    c.send("GET /throw HTTP/1.1\r\nHost: t\r\n\r\n");
    const auto res = c.response();
    CHECK(res.result_int() == 500);
    CHECK(res.body().find("the handler threw") != std::string::npos);
    c.send(get_root);
    require_ok(c.response());
    client d(f.port);
    d.send(get_root);
    require_ok(d.response());
}

TEST_CASE("close() stops accepting and ends idle connections, lets an in-flight handler "
          "finish and write, then run() returns",
          "[http]") {
    server_fixture f;
    client idle(f.port);
    idle.send(get_root);
    require_ok(idle.response());
    client in_flight(f.port);
    in_flight.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
    wait(f.r.slow_entered.get_future());

    f.server->close(); // from this thread: runs on the io thread, before the post below
    std::promise<void> closed;
    net::post(f.ctx, [&closed] { closed.set_value(); });
    wait(closed.get_future());
    client late(f.port);
    CHECK_FALSE(late.connected());
    CHECK(late.connect_errno() == ECONNREFUSED);
    CHECK(idle.read_until_closed() == 0);

    f.r.release = true;
    const auto res = in_flight.response();
    CHECK(res.result_int() == 200);
    CHECK(res.body() == "released\n");
    CHECK_FALSE(res.keep_alive());
    CHECK(in_flight.read_until_closed() == 0);
    const auto s = f.stop();
    CHECK(s.connections_open == 0);
    CHECK(s.requests == 2);
}

TEST_CASE("listen: address forms, several listeners, errors naming the address", "[http]") {
    net::io_context ctx{1};
    http_server a(ctx.get_executor(), {},
                  [](http_request) -> net::awaitable<http_response> { co_return http_response{}; });
    a.listen("127.0.0.1:0");
    const unsigned short port = a.endpoints().at(0).port();
    CHECK(port != 0);

    http_server b(ctx.get_executor(), {},
                  [](http_request) -> net::awaitable<http_response> { co_return http_response{}; });
    const std::string taken = "127.0.0.1:" + std::to_string(port);
    try {
        b.listen(taken);
        FAIL("listening on a port in use succeeded");
    } catch (const std::system_error& e) {
        CHECK(std::string(e.what()) == "listen on " + taken + ": Address already in use");
        CHECK(e.code() == std::errc::address_in_use);
    }
    CHECK_THROWS_WITH(b.listen("9374"), Catch::Contains("listen on 9374"));
    CHECK_THROWS_WITH(b.listen("no.such.host.invalid:0"),
                      Catch::Contains("listen on no.such.host.invalid:0"));
    CHECK(b.endpoints().empty());

    b.listen(":0"); // dual stack ([::] with v6_only off), or 0.0.0.0 without IPv6
    b.listen("localhost:0");
    const auto eps = b.endpoints();
    REQUIRE(eps.size() == 2);
    CHECK(eps[0].address().is_unspecified());
    CHECK(eps[1].address().is_loopback());
    if (eps[0].address().is_v6()) {
        b.listen("[::1]:0");
        CHECK(b.endpoints().at(2).address() == net::ip::make_address("::1"));
    }
}

TEST_CASE("':port' listens on every address: answers on 127.0.0.1", "[http]") {
    server_fixture f({}, ":0");
    CHECK(f.server->endpoints().at(0).address().is_unspecified());
    client c(f.port);
    REQUIRE(c.connected());
    c.send(get_root);
    require_ok(c.response());
}

TEST_CASE("split_listen_address", "[http]") {
    using icmpengine_exporter::split_listen_address;
    std::string host;
    std::string port;
    CHECK(split_listen_address(":9374", host, port));
    CHECK((host.empty() && port == "9374"));
    CHECK(split_listen_address("127.0.0.1:80", host, port));
    CHECK((host == "127.0.0.1" && port == "80"));
    CHECK(split_listen_address("[::1]:9374", host, port));
    CHECK((host == "::1" && port == "9374"));
    CHECK(split_listen_address("localhost:0", host, port));
    CHECK((host == "localhost" && port == "0"));
    for (const char* bad :
         {"9374", "::1:9374", "[::1]", "[::1]9374", "[]:1", "host:", "host:x", "host:65536", ""}) {
        INFO(bad);
        CHECK_FALSE(split_listen_address(bad, host, port));
    }
}

TEST_CASE("A streamed body: chunked, read whole by Beast's parser, and the connection "
          "carries on",
          "[http][stream]") {
    server_fixture f;
    client c(f.port);
    c.send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    auto res = c.response();
    CHECK(res.result_int() == 200);
    CHECK(res[http::field::transfer_encoding] == "chunked");
    CHECK(res[http::field::content_length].empty());
    CHECK(res[http::field::content_type] == "text/plain; version=0.0.4; charset=utf-8");
    CHECK(res.keep_alive());
    CHECK(res.body() == stream_body());
    CHECK(f.r.produced == stream_chunks);
    c.send(get_root);
    require_ok(c.response());
    // Twice on one connection, then with Connection: close.
    c.send("GET /stream HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    res = c.response();
    CHECK(res.body() == stream_body());
    CHECK_FALSE(res.keep_alive());
    CHECK(c.read_until_closed() == 0);
}

TEST_CASE("A streamed body to an HTTP/1.0 client: no chunking, ends with the connection",
          "[http][stream]") {
    server_fixture f;
    client c(f.port);
    c.send("GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    const auto res = c.response();
    CHECK(res.result_int() == 200);
    CHECK(res[http::field::transfer_encoding].empty());
    CHECK(res[http::field::content_length].empty());
    CHECK_FALSE(res.keep_alive());
    CHECK(res.body() == stream_body());
    CHECK(c.read_until_closed() == 0);
    CHECK(f.stop().timeouts == 0);
}

TEST_CASE("HEAD of a streamed body: the head only, the producer never called", "[http][stream]") {
    server_fixture f;
    client c(f.port);
    c.send("HEAD /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    const auto head = c.response(true);
    CHECK(head.result_int() == 200);
    CHECK(head[http::field::transfer_encoding] == "chunked");
    CHECK(head.body().empty());
    // Had the server sent a body, it would be read here as the next response.
    c.send(get_root);
    require_ok(c.response());
    CHECK(f.r.produced == 0);
}

TEST_CASE("A producer that throws: at once a 500, mid-way the connection is reset; the "
          "server goes on",
          "[http][stream]") {
    server_fixture f;
    client first(f.port);
    first.send("GET /stream-throw-first HTTP/1.1\r\nHost: t\r\n\r\n");
    const auto res = first.response();
    CHECK(res.result_int() == 500);
    CHECK(res.body().find("the producer threw") != std::string::npos);
    first.send(get_root);
    require_ok(first.response());

    client mid(f.port);
    mid.send("GET /stream-throw HTTP/1.1\r\nHost: t\r\n\r\n");
    // The head and two chunks at most, never the last chunk: the reset
    // tells the client the body is incomplete.
    CHECK(mid.read_until_closed() < 4096);
    CHECK(f.r.produced == 1 + 3);

    client other(f.port);
    other.send(get_root);
    require_ok(other.response());
}

TEST_CASE("A client that reads nothing of a huge stream is cut off after write_timeout, "
          "another is answered meanwhile",
          "[http][stream]") {
    http_limits limits;
    limits.write_timeout = 1s;
    server_fixture f(limits);
    client reader_of_nothing(f.port, 4096);
    reader_of_nothing.send("GET /stream-huge HTTP/1.1\r\nHost: t\r\n\r\n");
    wait(f.r.huge_entered.get_future());
    client other(f.port);
    other.send(get_root);
    require_ok(other.response());
    other.send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(other.response().body() == stream_body());
    reader_of_nothing.wait_for_hangup();
    CHECK(reader_of_nothing.read_until_closed() < huge_body / 10);
    const auto s = f.stop();
    CHECK(s.timeouts == 1);
    CHECK(s.requests == 3);
}
