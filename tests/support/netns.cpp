// SPDX-License-Identifier: MIT
#include "netns.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sstream>
#include <stdexcept>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace icmpengine::testing {
namespace {

std::string sysctl_path(std::string_view name) {
    std::string path = "/proc/sys/";
    for (char c : name)
        path += c == '.' ? '/' : c;
    return path;
}

std::string errno_text(const char* what) {
    return std::string(what) + ": " + std::strerror(errno);
}

std::string bring_up_loopback() {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno_text("socket(AF_INET)");
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    std::string why;
    if (::ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
        why = errno_text("SIOCGIFFLAGS lo");
    } else {
        ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
        if (::ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
            why = errno_text("SIOCSIFFLAGS lo");
    }
    ::close(fd);
    return why;
}

} // namespace

std::string enter_private_netns() {
    if (::unshare(CLONE_NEWNET) != 0)
        return errno_text("unshare(CLONE_NEWNET)");
    if (auto why = bring_up_loopback(); !why.empty())
        return why;
    try {
        write_sysctl("net.ipv4.ping_group_range", "0 2147483647");
    } catch (const std::exception& e) {
        return e.what();
    }
    return {};
}

void write_sysctl(std::string_view name, std::string_view value) {
    const std::string path = sysctl_path(name);
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        throw std::runtime_error(errno_text(("open " + path).c_str()));
    ssize_t n = ::write(fd, value.data(), value.size());
    int saved = errno;
    ::close(fd);
    if (n != static_cast<ssize_t>(value.size())) {
        errno = saved;
        throw std::runtime_error(
            errno_text(("write " + std::string(value) + " to " + path).c_str()));
    }
}

std::string read_sysctl(std::string_view name) {
    std::ifstream in(sysctl_path(name));
    std::stringstream ss;
    ss << in.rdbuf();
    std::string s = ss.str();
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    return s;
}

scoped_sysctl::scoped_sysctl(std::string name, std::string_view value)
    : m_name(std::move(name)), m_old(read_sysctl(m_name)) {
    write_sysctl(m_name, value);
}

scoped_sysctl::~scoped_sysctl() {
    try {
        write_sysctl(m_name, m_old);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "restoring %s: %s\n", m_name.c_str(), e.what());
    }
}

void run(const std::string& command) {
    int status = std::system(command.c_str());
    if (status != 0)
        throw std::runtime_error("command failed (status " + std::to_string(status) +
                                 "): " + command);
}

peer_netns::peer_netns() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
        throw std::runtime_error(errno_text("pipe2"));
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) != 0)
        throw std::runtime_error(errno_text("pipe2"));
    m_pid = ::fork();
    if (m_pid < 0)
        throw std::runtime_error(errno_text("fork"));
    if (m_pid == 0) {
        // Child: own namespace, lo up, then wait until the parent closes the
        // pipe (or dies: PR_SET_PDEATHSIG).
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        ::close(fds[1]);
        ::close(ready[0]);
        char ok = 1;
        if (::unshare(CLONE_NEWNET) != 0 || !bring_up_loopback().empty())
            ok = 0;
        (void)!::write(ready[1], &ok, 1);
        char c;
        while (::read(fds[0], &c, 1) > 0) {
        }
        ::_exit(0);
    }
    ::close(fds[0]);
    ::close(ready[1]);
    m_release_fd = fds[1];
    char ok = 0;
    ssize_t n = ::read(ready[0], &ok, 1);
    ::close(ready[0]);
    if (n != 1 || ok != 1)
        throw std::runtime_error("peer network namespace could not be created");
}

peer_netns::~peer_netns() {
    if (m_release_fd >= 0)
        ::close(m_release_fd);
    if (m_pid > 0) {
        int status = 0;
        ::waitpid(m_pid, &status, 0);
    }
}

void peer_netns::exec(const std::string& command) const {
    std::string quoted;
    for (char c : command) {
        if (c == '\'')
            quoted += "'\\''";
        else
            quoted += c;
    }
    run("nsenter -t " + std::to_string(m_pid) + " -n sh -c '" + quoted + "'");
}

} // namespace icmpengine::testing
