// SPDX-License-Identifier: MIT
// The example server (tools/asio_ping_server.cpp) end to end: the built
// binary (ASIO_PING_SERVER_BIN) runs as a child of this test, in the
// private network namespace support/system_main.cpp created, and a TCP
// client here talks to it over loopback. Reads give up after 20 s.
#include <catch2/catch.hpp>

#include "asio_test.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <netinet/in.h>
#include <poll.h>
#include <regex>
#include <string>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

/// The server, started with --listen 127.0.0.1:0; its port is read from
/// its first line. Stopped with SIGTERM by the destructor.
class server {
  public:
    server() {
        const char* bin = std::getenv("ASIO_PING_SERVER_BIN");
        if (bin == nullptr || *bin == '\0')
            FAIL("ASIO_PING_SERVER_BIN is not set: run this test through meson");
        int out[2];
        REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
        m_pid = ::fork();
        REQUIRE(m_pid >= 0);
        if (m_pid == 0) {
            ::dup2(out[1], STDOUT_FILENO);
            ::execl(bin, bin, "--listen", "127.0.0.1:0", static_cast<char*>(nullptr));
            std::_Exit(127);
        }
        ::close(out[1]);
        m_out = out[0];
        const std::string first = read_line(m_out);
        const auto colon = first.rfind(':');
        REQUIRE(first.rfind("listening on 127.0.0.1:", 0) == 0);
        m_port = static_cast<std::uint16_t>(std::stoi(first.substr(colon + 1)));
    }
    ~server() {
        if (m_pid > 0) {
            ::kill(m_pid, SIGKILL);
            ::waitpid(m_pid, nullptr, 0);
        }
        ::close(m_out);
    }
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    /// SIGTERM, then its exit status.
    int stop() {
        ::kill(m_pid, SIGTERM);
        int status = 0;
        ::waitpid(m_pid, &status, 0);
        m_pid = -1;
        return status;
    }

    /// A connected TCP client socket, with a 20 s receive timeout.
    int connect() const {
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd >= 0);
        timeval tv{20, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(m_port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0);
        return fd;
    }

    /// One line (without its newline) from `fd`; "<eof>", "<reset>" or
    /// "<timeout>".
    static std::string read_line(int fd) {
        std::string line;
        for (;;) {
            char c = 0;
            const ssize_t n = ::read(fd, &c, 1);
            if (n == 0)
                return line.empty() ? "<eof>" : line;
            if (n < 0)
                return errno == EAGAIN || errno == EWOULDBLOCK ? "<timeout>"
                       : errno == ECONNRESET                   ? "<reset>"
                                                               : "<error>";
            if (c == '\n')
                return line;
            line += c;
        }
    }

  private:
    pid_t m_pid = -1;
    int m_out = -1;
    std::uint16_t m_port = 0;
};

void send_text(int fd, const std::string& text) {
    REQUIRE(::send(fd, text.data(), text.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(text.size()));
}

std::string ask(int fd, const std::string& line) {
    send_text(fd, line + "\n");
    return server::read_line(fd);
}

} // namespace

TEST_CASE("the example server answers one line per address", "[asio][server]") {
    icmpengine::testing::silent_target(); // routes 198.18.99.0/24 into lo: silent
    server srv;
    const int fd = srv.connect();
    const std::regex reply_v4(R"(127\.0\.0\.1 reply \d+\.\d{3} ms ttl 64)");
    const std::regex reply_v6(R"(::1 reply \d+\.\d{3} ms ttl 64)");
    CHECK(std::regex_match(ask(fd, "127.0.0.1"), reply_v4));
    CHECK(std::regex_match(ask(fd, "::1 2000\r"), reply_v6)); // nc -C sends CRLF
    CHECK(ask(fd, "bad-input") == "bad-input error: not an address");
    CHECK(ask(fd, "") == "- error: not an address");
    CHECK(ask(fd, "127.0.0.1 abc") == "127.0.0.1 error: timeout must be 1..60000 ms");
    CHECK(ask(fd, "127.0.0.1 0") == "127.0.0.1 error: timeout must be 1..60000 ms");
    // No route in the namespace: the engine's send fails.
    CHECK(ask(fd, "198.51.100.1") == "198.51.100.1 send_error: Network is unreachable");
    CHECK(ask(fd, "198.18.99.1 50") == "198.18.99.1 timeout");
    // Pipelined: three lines at once, three answers in order.
    send_text(fd, "127.0.0.1\nnope\n::1\n");
    CHECK(std::regex_match(server::read_line(fd), reply_v4));
    CHECK(server::read_line(fd) == "nope error: not an address");
    CHECK(std::regex_match(server::read_line(fd), reply_v6));
    ::close(fd);

    // A line longer than the server's 4096-byte buffer: told, then closed.
    const int big = srv.connect();
    send_text(big, std::string(5000, 'x') + "\n");
    CHECK(server::read_line(big) == "error: line too long");
    const std::string end = server::read_line(big); // closed with bytes unread: maybe a reset
    CHECK((end == "<eof>" || end == "<reset>"));
    ::close(big);

    // Connections are served concurrently: one waits on a silent target
    // for up to 60 s while another is answered; the first then hangs up
    // with its ping pending.
    const int slow = srv.connect();
    send_text(slow, "198.18.99.1 60000\n");
    const int quick = srv.connect();
    CHECK(std::regex_match(ask(quick, "127.0.0.1"), reply_v4));
    pollfd p{slow, POLLIN, 0};
    CHECK(::poll(&p, 1, 0) == 0); // its answer is not in yet
    ::close(slow);
    CHECK(std::regex_match(ask(quick, "127.0.0.1"), reply_v4));
    ::close(quick);

    const int status = srv.stop();
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
}
