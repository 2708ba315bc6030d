// See private_netns.hpp. The same steps as tests/support/netns.cpp, kept
// apart so that the benchmarks build without the test suites.
#include "private_netns.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdexcept>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace icmpengine::bench {
namespace {

std::string errno_text(const std::string& what) {
    return what + ": " + std::strerror(errno);
}

std::string bring_up_loopback() {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
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
    if (std::string why = bring_up_loopback(); !why.empty())
        return why;
    try {
        write_sysctl("net.ipv4.ping_group_range", "0 2147483647");
    } catch (const std::exception& e) {
        return e.what();
    }
    return {};
}

void exit_without_netns(const char* program, const std::string& why) {
    const char* ci = std::getenv("CI");
    const bool in_ci = ci != nullptr && std::strcmp(ci, "true") == 0;
    std::fprintf(stderr,
                 "%s: SKIP: cannot create a private network namespace (%s); the benchmarks "
                 "send packets only inside namespaces of their own and need root or "
                 "CAP_SYS_ADMIN + CAP_NET_ADMIN.%s\n",
                 program, why.c_str(), in_ci ? " CI=true: a skipped benchmark is a failure." : "");
    std::exit(in_ci ? 1 : 77);
}

void write_sysctl(const std::string& name, const std::string& value) {
    std::string path = "/proc/sys/";
    for (char c : name)
        path += c == '.' ? '/' : c;
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        throw std::runtime_error(errno_text("open " + path));
    const ssize_t n = ::write(fd, value.data(), value.size());
    const int saved = errno;
    ::close(fd);
    if (n != static_cast<ssize_t>(value.size())) {
        errno = saved;
        throw std::runtime_error(errno_text("write " + value + " to " + path));
    }
}

void run_command(const std::string& command) {
    const int status = std::system(command.c_str());
    if (status != 0)
        throw std::runtime_error("command failed (status " + std::to_string(status) +
                                 "): " + command);
}

peer_netns::peer_netns() {
    int release[2];
    int ready[2];
    if (::pipe2(release, O_CLOEXEC) != 0 || ::pipe2(ready, O_CLOEXEC) != 0)
        throw std::runtime_error(errno_text("pipe2"));
    m_pid = ::fork();
    if (m_pid < 0)
        throw std::runtime_error(errno_text("fork"));
    if (m_pid == 0) {
        // The holder: its own namespace with lo up, alive until the parent
        // closes the pipe or dies.
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        ::close(release[1]);
        ::close(ready[0]);
        const char ok = ::unshare(CLONE_NEWNET) == 0 && bring_up_loopback().empty() ? 1 : 0;
        (void)!::write(ready[1], &ok, 1);
        char c;
        while (::read(release[0], &c, 1) > 0) {
        }
        ::_exit(0);
    }
    ::close(release[0]);
    ::close(ready[1]);
    m_release_fd = release[1];
    char ok = 0;
    const ssize_t n = ::read(ready[0], &ok, 1);
    ::close(ready[0]);
    if (n != 1 || ok != 1)
        throw std::runtime_error("the peer network namespace could not be created");
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
    for (char c : command)
        quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    run_command("nsenter -t " + std::to_string(m_pid) + " -n sh -c '" + quoted + "'");
}

} // namespace icmpengine::bench
