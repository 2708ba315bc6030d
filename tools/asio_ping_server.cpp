// SPDX-License-Identifier: MIT
// asio-ping-server: the engine inside an Asio program (README, "Embedding in
// another event loop"). A TCP service of Asio coroutines: each connection
// sends an address per line ("ADDRESS" or "ADDRESS TIMEOUT_MS") and gets
// back one line per ping, in order:
//
//     127.0.0.1 reply 0.052 ms ttl 64
//     198.51.100.1 send_error: Network is unreachable
//     bad-input error: not an address
//
// One thread: the engine is driven by asio_driver on the io_context (mode
// (a) of icmpengine/asio.hpp). Prints "listening on ADDR:PORT" when ready
// (--listen 127.0.0.1:0 picks a free port); SIGINT or SIGTERM stops it.
#include <icmpengine/asio.hpp>

#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <fmt/format.h>
#include <string>
#include <string_view>

using namespace std::chrono_literals;
using asio::ip::tcp;
using icmpengine::ping_result;
using icmpengine::ping_status;
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

namespace {

/// The answer to one request line, without its newline.
asio::awaitable<std::string> answer(icmpengine::engine& eng, std::string_view line) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' '))
        line.remove_suffix(1);
    const std::string_view text = line.substr(0, line.find(' '));
    const std::optional<icmpengine::ip_address> to = icmpengine::ip_address::try_parse(text);
    if (!to)
        co_return fmt::format("{} error: not an address", text.empty() ? "-" : text);
    long timeout_ms = 1000;
    if (text.size() < line.size()) {
        const std::string_view ms = line.substr(text.size() + 1);
        const auto [end, ec] = std::from_chars(ms.data(), ms.data() + ms.size(), timeout_ms);
        if (ec != std::errc{} || end != ms.data() + ms.size() || timeout_ms < 1 ||
            timeout_ms > 60'000)
            co_return fmt::format("{} error: timeout must be 1..60000 ms", text);
    }
    const ping_result r = co_await icmpengine::async_ping(
        eng, *to, std::chrono::milliseconds(timeout_ms), asio::use_awaitable);
    const std::string status(to_string(r.status));
    const double ms = std::chrono::duration<double, std::milli>(r.rtt).count();
    switch (r.status) {
    case ping_status::reply:
        co_return fmt::format("{} reply {:.3f} ms ttl {}", text, ms, r.ttl);
    case ping_status::timeout:
    case ping_status::cancelled:
        co_return fmt::format("{} {}", text, status);
    case ping_status::send_error:
        co_return fmt::format("{} send_error: {}", text, r.error.message());
    default: // an ICMP error, from a router on the way
        co_return fmt::format("{} {} from {} {:.3f} ms", text, status, r.from.to_string(), ms);
    }
}

asio::awaitable<void> serve(tcp::socket socket, icmpengine::engine& eng) {
    std::string buffer;
    for (;;) {
        auto [read_error, n] = co_await asio::async_read_until(
            socket, asio::dynamic_buffer(buffer, 4096), '\n', use_tuple);
        std::string reply;
        if (read_error == asio::error::not_found) // no newline in 4096 bytes
            reply = "error: line too long\n";
        else if (read_error)
            co_return; // closed
        else
            reply = co_await answer(eng, std::string_view(buffer).substr(0, n - 1)) + "\n";
        buffer.erase(0, n);
        auto [write_error, written] =
            co_await asio::async_write(socket, asio::buffer(reply), use_tuple);
        if (write_error || read_error)
            co_return;
    }
}

asio::awaitable<void> listen(tcp::acceptor& acceptor, icmpengine::engine& eng) {
    for (;;) {
        auto [error, socket] = co_await acceptor.async_accept(use_tuple);
        if (error == asio::error::operation_aborted)
            co_return;
        if (!error)
            asio::co_spawn(acceptor.get_executor(), serve(std::move(socket), eng), asio::detached);
    }
}

tcp::endpoint parse_listen(std::string_view text) {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos)
        throw std::invalid_argument(fmt::format("--listen {}: expected ADDR:PORT", text));
    std::string_view host = text.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    unsigned short port = 0;
    const std::string_view digits = text.substr(colon + 1);
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (ec != std::errc{} || end != digits.data() + digits.size() || digits.empty())
        throw std::invalid_argument(fmt::format("--listen {}: bad port", text));
    return {asio::ip::make_address(std::string(host)), port};
}

} // namespace

int main(int argc, char** argv) try {
    std::string listen_at = "127.0.0.1:7777";
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--listen" && i + 1 < argc) {
            listen_at = argv[++i];
        } else {
            std::puts("usage: asio-ping-server [--listen ADDR:PORT]   (default 127.0.0.1:7777)\n"
                      "Each line a client sends, \"ADDRESS [TIMEOUT_MS]\", is answered by one\n"
                      "line with the ping's result.");
            return arg == "--help" ? 0 : 2;
        }
    }
    asio::io_context ctx(1);
    icmpengine::engine eng;
    tcp::acceptor acceptor(ctx, parse_listen(listen_at));
    icmpengine::asio_driver driver(ctx.get_executor(), eng); // destroyed before the engine
    asio::signal_set signals(ctx, SIGINT, SIGTERM);
    signals.async_wait([&](const std::error_code&, int) {
        acceptor.close();
        ctx.stop(); // connections end with the process
    });
    asio::co_spawn(ctx, listen(acceptor, eng), asio::detached);
    const tcp::endpoint at = acceptor.local_endpoint();
    std::printf("listening on %s:%u\n", at.address().to_string().c_str(), at.port());
    std::fflush(stdout);
    ctx.run();
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "asio-ping-server: %s\n", e.what());
    return 1;
}
