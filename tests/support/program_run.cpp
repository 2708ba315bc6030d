// SPDX-License-Identifier: MIT
#include "program_run.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sstream>
#include <stdexcept>
#include <sys/wait.h>
#include <unistd.h>

namespace icmpengine::testing {

namespace {

[[noreturn]] void child_fail(const char* what) {
    const std::string text =
        std::string("run_program child: ") + what + ": " + std::strerror(errno) + "\n";
    (void)!::write(2, text.data(), text.size());
    ::_exit(126);
}

void check(bool ok, const char* what) {
    if (!ok)
        throw std::runtime_error(std::string("run_program: ") + what + ": " + std::strerror(errno));
}

} // namespace

program_output run_program(const std::vector<std::string>& argv_text, const std::string& input) {
    std::vector<std::string> copy = argv_text;
    std::vector<char*> argv;
    for (std::string& a : copy)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    int in[2], out[2], err[2];
    check(::pipe2(in, O_CLOEXEC) == 0 && ::pipe2(out, O_CLOEXEC) == 0 &&
              ::pipe2(err, O_CLOEXEC) == 0,
          "pipe2");
    const pid_t pid = ::fork();
    check(pid >= 0, "fork");
    if (pid == 0) {
        if (::dup2(in[0], 0) < 0 || ::dup2(out[1], 1) < 0 || ::dup2(err[1], 2) < 0)
            child_fail("dup2");
        ::execvp(argv[0], argv.data());
        child_fail("execvp");
    }
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    if (!input.empty())
        (void)!::write(in[1], input.data(), input.size());
    ::close(in[1]);
    program_output result;
    bool open[2] = {true, true};
    char buffer[65536];
    while (open[0] || open[1]) {
        pollfd fds[2] = {{open[0] ? out[0] : -1, POLLIN, 0}, {open[1] ? err[0] : -1, POLLIN, 0}};
        const int n = ::poll(fds, 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        check(n >= 0, "poll");
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || fds[i].revents == 0)
                continue;
            const ssize_t got = ::read(fds[i].fd, buffer, sizeof buffer);
            if (got > 0)
                (i == 0 ? result.out : result.err).append(buffer, static_cast<std::size_t>(got));
            else if (got == 0 || errno != EINTR)
                open[i] = false;
        }
    }
    int status = 0;
    check(::waitpid(pid, &status, 0) == pid, "waitpid");
    ::close(out[0]);
    ::close(err[0]);
    result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        lines.push_back(line);
    return lines;
}

} // namespace icmpengine::testing
