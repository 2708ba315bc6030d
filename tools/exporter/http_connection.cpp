// SPDX-License-Identifier: MIT
// The life of one connection, in order:
//  1. wait for a request: on a fresh connection the whole head must arrive
//     within request_timeout; between keep-alive requests the first byte
//     may take idle_timeout, the rest of the head request_timeout;
//  2. Beast parses the head (request_parser<empty_body>, header_limit =
//     max_header_bytes): a parse error is a 400, an oversized head a 431;
//  3. methods other than GET and HEAD get 405, a request with a body 413
//     (its body is never read, so the connection then closes);
//  4. the handler runs (it may co_await for seconds: other connections and
//     the engines go on meanwhile); an exception becomes a 500;
//  5. the response is written within write_timeout, with Content-Length;
//     HEAD gets the GET's headers and no body; a streamed body
//     (http_response::stream) is written chunk by chunk as it is made,
//     each write within write_timeout (write_stream);
//  6. keep alive unless the client or close() said otherwise.
// An error answer that leaves request bytes unread ends with a lingering
// close (shut down sending, drain briefly) so that the client's kernel does
// not turn our close into a reset that discards the answer.
#include "http_connection.hpp"
#include "text.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <cctype>
#include <exception>
#include <optional>

namespace icmpengine_exporter {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using boost::system::error_code;

namespace {

using request_head = http::request<http::empty_body>;

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

// RFC 9110 12.5.3: a comma-separated list of codings, each with optional
// parameters; "gzip;q=0" refuses gzip.
bool lists_gzip(std::string_view accept_encoding) {
    while (!accept_encoding.empty()) {
        const auto comma = accept_encoding.find(',');
        std::string_view item = accept_encoding.substr(0, comma);
        accept_encoding.remove_prefix(comma == std::string_view::npos ? accept_encoding.size()
                                                                      : comma + 1);
        const auto semi = item.find(';');
        const std::string coding = lower(trim(item.substr(0, semi)));
        if (coding != "gzip" && coding != "x-gzip")
            continue;
        if (semi == std::string_view::npos)
            return true;
        const std::string params = lower(item.substr(semi + 1));
        const auto q = params.find("q=");
        return q == std::string::npos || params.find_first_not_of("0.", q + 2) < params.size();
    }
    return false;
}

http_request to_handler_request(const request_head& head) {
    http_request r;
    r.method = std::string(head.method_string());
    r.target = std::string(head.target());
    const auto question = r.target.find('?');
    r.path = r.target.substr(0, question);
    r.query = question == std::string::npos ? "" : r.target.substr(question + 1);
    for (const auto& field : head) {
        const auto name = field.name_string();
        r.headers[lower({name.data(), name.size()})] = std::string(field.value());
    }
    const auto ae = r.headers.find("accept-encoding");
    r.accepts_gzip = ae != r.headers.end() && lists_gzip(ae->second);
    return r;
}

http_response server_error(unsigned status, std::string reason) {
    http_response r;
    r.status = status;
    r.content_type = "text/plain; charset=utf-8";
    r.body = std::move(reason) + "\n";
    return r;
}

enum class outcome { written, failed, timed_out };

// Writes `res` within write_timeout. For HEAD, the headers of the GET
// (Content-Length of the body) and no body.
net::awaitable<outcome> write_response(http_server_state& server, http_connection& c,
                                       http_response res, bool head_only, bool keep_alive) {
    http::response<http::string_body> out;
    out.result(res.status);
    out.set(http::field::content_type, res.content_type);
    for (const auto& [name, value] : res.headers)
        out.set(name, value);
    out.keep_alive(keep_alive);
    const std::size_t length = res.body.size();
    if (!head_only)
        out.body() = std::move(res.body);
    out.content_length(length);
    error_code ec;
    // While writing, closing resets the connection (SO_LINGER 0): when the
    // write times out, Beast closes the socket, and a reset frees the kernel's
    // send buffer at once and tells the client, where a plain close would
    // leave an orphan trying to deliver megabytes to a client that reads
    // nothing.
    auto& socket = c.stream.socket();
    socket.set_option(net::socket_base::linger(true, 0), ec);
    c.stream.expires_after(server.limits.write_timeout);
    if (head_only) {
        http::response_serializer<http::string_body> sr(out);
        sr.split(true);
        co_await http::async_write_header(c.stream, sr,
                                          net::redirect_error(net::use_awaitable, ec));
    } else {
        co_await http::async_write(c.stream, out, net::redirect_error(net::use_awaitable, ec));
    }
    c.stream.expires_never();
    if (ec == beast::error::timeout)
        co_return outcome::timed_out;
    if (!ec)
        socket.set_option(net::socket_base::linger(false, 0), ec);
    co_return ec ? outcome::failed : outcome::written;
}

// Writes `buffers` within write_timeout (the connection's linger is
// already set to reset on close, see write_response).
template <typename Buffers>
net::awaitable<error_code> timed_write(http_server_state& server, http_connection& c,
                                       const Buffers& buffers) {
    error_code ec;
    c.stream.expires_after(server.limits.write_timeout);
    co_await net::async_write(c.stream, buffers, net::redirect_error(net::use_awaitable, ec));
    c.stream.expires_never();
    co_return ec;
}

// Calls the body producer; an exception is logged and reported as `failure`.
net::awaitable<bool> produce(const http_response& res, std::string& chunk, std::string& failure) {
    chunk.clear();
    try {
        co_return co_await res.stream(chunk);
    } catch (const std::exception& e) {
        failure = e.what();
    } catch (...) {
        failure = "unknown exception";
    }
    fmt::print(stderr, "icmpengine-exporter: body producer failed: {}\n", failure);
    co_return false;
}

// A streamed response (http_response::stream): the first chunk is made
// before the head, so that a producer failing at once still gets a 500;
// then the head (chunked for HTTP/1.1, for HTTP/1.0 no framing and the
// connection closed after the body), then each chunk as it is made.
net::awaitable<outcome> write_stream(http_server_state& server, http_connection& c,
                                     http_response res, bool head_only, bool keep_alive,
                                     bool chunked) {
    std::string chunk;
    std::string failure;
    bool more = false;
    if (!head_only) {
        more = co_await produce(res, chunk, failure);
        if (!failure.empty())
            co_return co_await write_response(
                server, c, server_error(500, "internal server error: " + failure), false,
                keep_alive);
    }
    http::response<http::empty_body> out;
    out.result(res.status);
    out.set(http::field::content_type, res.content_type);
    for (const auto& [name, value] : res.headers)
        out.set(name, value);
    out.keep_alive(keep_alive && chunked);
    out.chunked(chunked);
    error_code ec;
    auto& socket = c.stream.socket();
    socket.set_option(net::socket_base::linger(true, 0), ec); // as write_response
    http::response_serializer<http::empty_body> sr(out);
    c.stream.expires_after(server.limits.write_timeout);
    co_await http::async_write_header(c.stream, sr, net::redirect_error(net::use_awaitable, ec));
    c.stream.expires_never();
    for (bool body = !head_only; !ec && body;) {
        // (No co_await in a ?: here: GCC 12 ran both arms.)
        if (!chunk.empty() && chunked)
            ec = co_await timed_write(server, c, http::make_chunk(net::buffer(chunk)));
        else if (!chunk.empty())
            ec = co_await timed_write(server, c, net::buffer(chunk));
        if (ec || !more)
            break;
        more = co_await produce(res, chunk, failure);
        if (!failure.empty())
            co_return outcome::failed; // the head is gone: reset the connection
    }
    if (!ec && !head_only && chunked)
        ec = co_await timed_write(server, c, http::make_chunk_last());
    if (ec == beast::error::timeout)
        co_return outcome::timed_out;
    if (!ec)
        socket.set_option(net::socket_base::linger(false, 0), ec);
    co_return ec ? outcome::failed : outcome::written;
}

// After an error answer with request bytes left unread: stop sending and
// read what the client still sends (bounded in time and bytes) so that our
// close does not reset the connection before the client has read the answer.
net::awaitable<void> lingering_close(http_server_state& server, http_connection& c) {
    error_code ec;
    c.stream.socket().shutdown(net::ip::tcp::socket::shutdown_send, ec);
    c.stream.expires_after(std::min<std::chrono::steady_clock::duration>(
        server.limits.request_timeout, std::chrono::seconds(2)));
    char sink[16 * 1024];
    for (std::size_t drained = 0; !ec && drained < (1u << 20) && !server.closing;) {
        const std::size_t n = co_await c.stream.async_read_some(
            net::buffer(sink), net::redirect_error(net::use_awaitable, ec));
        drained += n;
    }
}

// Waits until the next request's first byte is buffered (keep-alive idle
// time); false if the connection is to end (timeout, close, EOF).
net::awaitable<bool> wait_for_request(http_server_state& server, http_connection& c,
                                      beast::flat_buffer& buffer) {
    if (buffer.size() > 0)
        co_return true;
    error_code ec;
    c.stream.expires_after(server.limits.idle_timeout);
    const std::size_t n = co_await c.stream.async_read_some(
        buffer.prepare(4096), net::redirect_error(net::use_awaitable, ec));
    buffer.commit(n);
    if (ec == beast::error::timeout)
        ++server.stats.timeouts;
    co_return !ec && !server.closing;
}

// The server's own answer to a request head it refuses, or none.
std::optional<http_response> refusal(const http::request_parser<http::empty_body>& parser) {
    const request_head& head = parser.get();
    if (head.method() != http::verb::get && head.method() != http::verb::head) {
        http_response r = server_error(405, "method not allowed: only GET and HEAD");
        r.headers.emplace_back("Allow", "GET, HEAD");
        return r;
    }
    if (!parser.is_done())
        return server_error(413, "payload too large: requests take no body");
    return std::nullopt;
}

// Calls the handler; an exception is logged and becomes a 500.
net::awaitable<http_response> call_handler(http_server_state& server, http_request req) {
    std::string failure;
    try {
        co_return co_await server.handler(std::move(req));
    } catch (const std::exception& e) {
        failure = e.what();
    } catch (...) {
        failure = "unknown exception";
    }
    fmt::print(stderr, "icmpengine-exporter: handler failed: {}\n", failure);
    co_return server_error(500, "internal server error: " + failure);
}

// One request on `c`: false if the connection is to end after it.
net::awaitable<bool> serve_one(http_server_state& server, http_connection& c,
                               beast::flat_buffer& buffer) {
    http::request_parser<http::empty_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(server.limits.max_header_bytes, UINT32_MAX)));
    error_code ec;
    c.stream.expires_after(server.limits.request_timeout);
    co_await http::async_read_header(c.stream, buffer, parser,
                                     net::redirect_error(net::use_awaitable, ec));
    c.stream.expires_never();
    if (ec == beast::error::timeout)
        ++server.stats.timeouts;
    if (ec == beast::error::timeout || ec == http::error::end_of_stream ||
        ec == net::error::operation_aborted || ec == net::error::eof || server.closing)
        co_return false;
    std::optional<http_response> answer;
    if (ec == http::error::header_limit)
        answer = server_error(431, "request header fields too large");
    else if (ec)
        answer = server_error(400, "bad request: " + ec.message());
    else {
        ++server.stats.requests;
        answer = refusal(parser);
    }
    const bool refused = answer.has_value();
    if (refused)
        ++server.stats.bad_requests;
    c.state = http_connection::phase::handling;
    const bool head_only = !ec && parser.get().method() == http::verb::head;
    if (!refused)
        answer = co_await call_handler(server, to_handler_request(parser.get()));
    // The body of a refused request, or the rest of a bad one, is never
    // read: such a connection cannot carry another request.
    const bool keep_alive = !ec && parser.is_done() && parser.get().keep_alive() && !server.closing;
    const bool streamed = static_cast<bool>(answer->stream);
    const bool chunked = parser.get().version() >= 11;
    outcome o;
    if (streamed)
        o = co_await write_stream(server, c, std::move(*answer), head_only, keep_alive, chunked);
    else
        o = co_await write_response(server, c, std::move(*answer), head_only, keep_alive);
    if (o == outcome::timed_out)
        ++server.stats.timeouts;
    c.state = http_connection::phase::reading;
    if (o == outcome::written && refused && !keep_alive)
        co_await lingering_close(server, c);
    // A body without framing (HTTP/1.0 stream) ends where the connection does.
    const bool written = o == outcome::written && (!streamed || chunked);
    co_return written&& keep_alive;
}

} // namespace

net::awaitable<void> serve_connection(std::shared_ptr<http_server_state> server,
                                      std::shared_ptr<http_connection> c) {
    beast::flat_buffer buffer;
    for (bool first = true;; first = false) {
        if (server->closing)
            break;
        if (!first) {
            const bool more = co_await wait_for_request(*server, *c, buffer);
            if (!more)
                break;
        }
        const bool keep = co_await serve_one(*server, *c, buffer);
        if (!keep)
            break;
    }
    error_code ec;
    c->stream.socket().shutdown(net::ip::tcp::socket::shutdown_both, ec);
    c->stream.close();
    server->connections.erase(c->position);
    server->stats.connections_open = server->connections.size();
}

} // namespace icmpengine_exporter
