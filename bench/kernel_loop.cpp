// SPDX-License-Identifier: MIT
// bench_kernel_loop: the reference the engine is measured against, "the
// kernel's limit": a minimal batched sendmmsg(2) / recvmmsg(2) loop over
// ICMP datagram sockets, one socket per thread, nothing else (no timeouts,
// no matching beyond counting echo replies, no allocation per ping). What it
// costs is what any pinger pays the kernel for the same round trips.
//
//     bench_kernel_loop --first 127.1.0.1 --count 60000 [--threads N]
//                       [--window 256] [--batch 64] [--no-df] [--engine-options]
//
// --engine-options gives the socket what the engine's datagram sockets ask
// of the kernel for every reply (lib/icmp_socket.cpp): SO_TIMESTAMPNS,
// IP_RECVTTL, IP_RECVTOS and IP_RECVERR, with a control buffer per
// message. It measures the floor those options set, not the engine.
//
// Prints one line for the harness: RESULT ping_ms=... sent=... replies=...
// (and timestamps=..., with --engine-options)
// Like bench_workload it sends nothing by itself: the harness runs it in
// the private namespace it created.
#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <stdexcept>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

namespace {

struct settings {
    std::uint32_t first = 0x7f010001; // host order
    std::size_t count = 60000;
    unsigned threads = 1;
    std::size_t window = 256;
    std::size_t batch = 64;
    bool df = true;
    bool engine_options = false;
};

constexpr std::size_t control_size = 128;

constexpr std::size_t packet_size = 8 + 56;

struct outcome {
    std::size_t sent = 0;
    std::size_t replies = 0;
    std::size_t timestamps = 0; ///< replies that carried SCM_TIMESTAMPNS
};

int open_socket(const settings& s) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_ICMP);
    if (fd < 0)
        throw std::runtime_error(std::string("socket(SOCK_DGRAM, IPPROTO_ICMP): ") +
                                 std::strerror(errno));
    // The default receive buffer holds ~255 replies (832 bytes truesize each).
    int rcvbuf = 8 << 20;
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (s.engine_options) {
        const int on = 1;
        for (const auto& [level, name] : {std::pair<int, int>{SOL_SOCKET, SO_TIMESTAMPNS},
                                          std::pair<int, int>{IPPROTO_IP, IP_RECVERR},
                                          std::pair<int, int>{IPPROTO_IP, IP_RECVTTL},
                                          std::pair<int, int>{IPPROTO_IP, IP_RECVTOS}})
            if (::setsockopt(fd, level, name, &on, sizeof on) != 0)
                throw std::runtime_error(std::string("setsockopt: ") + std::strerror(errno));
    }
    if (s.df) {
        int pmtu = IP_PMTUDISC_DO;
        ::setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu);
    }
    return fd;
}

/// Pings targets [begin, end) with at most `window` in flight.
outcome ping_range(const settings& s, int fd, std::size_t begin, std::size_t end) {
    const std::size_t n = end - begin;
    const std::size_t batch = std::max<std::size_t>(1, s.batch);
    std::vector<sockaddr_in> addresses(n);
    for (std::size_t i = 0; i < n; ++i) {
        addresses[i].sin_family = AF_INET;
        addresses[i].sin_addr.s_addr = htonl(s.first + static_cast<std::uint32_t>(begin + i));
    }
    std::vector<std::uint8_t> out(batch * packet_size, 0);
    std::vector<iovec> out_iov(batch);
    std::vector<mmsghdr> out_msgs(batch);
    std::vector<std::uint8_t> in(batch * 256);
    std::vector<iovec> in_iov(batch);
    std::vector<mmsghdr> in_msgs(batch);
    std::vector<std::uint8_t> control(s.engine_options ? batch * control_size : 0);
    for (std::size_t b = 0; b < batch; ++b) {
        out[b * packet_size] = ICMP_ECHO;
        out_iov[b] = {&out[b * packet_size], packet_size};
        in_iov[b] = {&in[b * 256], 256};
        in_msgs[b].msg_hdr.msg_iov = &in_iov[b];
        in_msgs[b].msg_hdr.msg_iovlen = 1;
    }
    outcome o;
    std::uint16_t sequence = 0;
    while (o.replies < n) {
        const std::size_t in_flight = o.sent - o.replies;
        const std::size_t room =
            std::min({batch, s.window - std::min(s.window, in_flight), n - o.sent});
        if (room > 0) {
            for (std::size_t b = 0; b < room; ++b) {
                std::uint8_t* p = &out[b * packet_size];
                p[6] = static_cast<std::uint8_t>(sequence >> 8);
                p[7] = static_cast<std::uint8_t>(sequence);
                ++sequence;
                out_msgs[b].msg_hdr = {};
                out_msgs[b].msg_hdr.msg_name = &addresses[o.sent + b];
                out_msgs[b].msg_hdr.msg_namelen = sizeof(sockaddr_in);
                out_msgs[b].msg_hdr.msg_iov = &out_iov[b];
                out_msgs[b].msg_hdr.msg_iovlen = 1;
            }
            const int sent = ::sendmmsg(fd, out_msgs.data(), static_cast<unsigned>(room), 0);
            if (sent < 0 && errno != EINTR && errno != EAGAIN && errno != ENOBUFS)
                throw std::runtime_error(std::string("sendmmsg: ") + std::strerror(errno));
            o.sent += static_cast<std::size_t>(std::max(sent, 0));
        }
        // Block only when the window is full (or everything was sent).
        const bool must_wait = o.sent == n || o.sent - o.replies >= s.window;
        if (must_wait) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 2000) == 0)
                break; // replies lost: report what arrived
        }
        for (std::size_t b = 0; b < batch; ++b) {
            in_msgs[b].msg_hdr.msg_namelen = 0;
            if (s.engine_options) {
                in_msgs[b].msg_hdr.msg_control = &control[b * control_size];
                in_msgs[b].msg_hdr.msg_controllen = control_size;
            }
        }
        const int got =
            ::recvmmsg(fd, in_msgs.data(), static_cast<unsigned>(batch), MSG_DONTWAIT, nullptr);
        if (got < 0 && errno != EAGAIN && errno != EINTR)
            throw std::runtime_error(std::string("recvmmsg: ") + std::strerror(errno));
        for (int k = 0; k < got; ++k)
            if (in_msgs[static_cast<std::size_t>(k)].msg_len >= 8 &&
                in[static_cast<std::size_t>(k) * 256] == ICMP_ECHOREPLY)
                ++o.replies;
        if (s.engine_options)
            for (int k = 0; k < got; ++k) {
                msghdr& h = in_msgs[static_cast<std::size_t>(k)].msg_hdr;
                for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c))
                    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS)
                        ++o.timestamps;
            }
    }
    return o;
}

settings parse(int argc, char** argv) {
    settings s;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc)
                throw std::invalid_argument(std::string(arg) + " needs a value");
            return argv[++i];
        };
        if (arg == "--first") {
            in_addr a{};
            const std::string text = value();
            if (::inet_pton(AF_INET, text.c_str(), &a) != 1)
                throw std::invalid_argument("--first " + text + ": not an IPv4 address");
            s.first = ntohl(a.s_addr);
        } else if (arg == "--count") {
            s.count = std::stoul(value());
        } else if (arg == "--threads") {
            s.threads = static_cast<unsigned>(std::max(1ul, std::stoul(value())));
        } else if (arg == "--window") {
            s.window = std::max(1ul, std::stoul(value()));
        } else if (arg == "--batch") {
            s.batch = std::stoul(value());
        } else if (arg == "--no-df") {
            s.df = false;
        } else if (arg == "--engine-options") {
            s.engine_options = true;
        } else {
            throw std::invalid_argument("unknown argument " + std::string(arg));
        }
    }
    return s;
}

} // namespace

int main(int argc, char** argv) {
    try {
        const settings s = parse(argc, argv);
        std::vector<int> fds;
        for (unsigned t = 0; t < s.threads; ++t)
            fds.push_back(open_socket(s));
        std::vector<outcome> outcomes(s.threads);
        std::vector<std::string> errors(s.threads);
        const auto t0 = std::chrono::steady_clock::now();
        std::vector<std::thread> threads;
        for (unsigned t = 0; t < s.threads; ++t) {
            const std::size_t begin = s.count * t / s.threads;
            const std::size_t end = s.count * (t + 1) / s.threads;
            threads.emplace_back([&, t, begin, end] {
                try {
                    outcomes[t] = ping_range(s, fds[t], begin, end);
                } catch (const std::exception& e) {
                    errors[t] = e.what();
                }
            });
        }
        for (std::thread& th : threads)
            th.join();
        const double ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count();
        for (const std::string& e : errors)
            if (!e.empty())
                throw std::runtime_error(e);
        outcome total;
        for (const outcome& o : outcomes) {
            total.sent += o.sent;
            total.replies += o.replies;
            total.timestamps += o.timestamps;
        }
        long rss_kb = 0; // VmHWM: this process's peak resident set
        if (std::FILE* f = std::fopen("/proc/self/status", "r")) {
            char line[256];
            while (std::fgets(line, sizeof line, f) != nullptr)
                if (std::strncmp(line, "VmHWM:", 6) == 0)
                    rss_kb = std::strtol(line + 6, nullptr, 10);
            std::fclose(f);
        }
        std::printf("RESULT ping_ms=%.3f sent=%zu replies=%zu timeouts=%zu errors=0 rss_kb=%ld", ms,
                    total.sent, total.replies, total.sent - total.replies, rss_kb);
        // With --engine-options: replies that carried a receive timestamp
        // (all of them, if the options took effect).
        if (s.engine_options)
            std::printf(" timestamps=%zu", total.timestamps);
        std::printf("\n");
        for (int fd : fds)
            ::close(fd);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_kernel_loop: %s\n", e.what());
        return 2;
    }
}
