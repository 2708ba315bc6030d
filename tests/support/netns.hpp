// SPDX-License-Identifier: MIT
// Private network namespaces for system tests. Nothing here ever touches the
// namespace the test was started in: tests only reach loopback and the
// addresses of namespaces they created themselves.
#pragma once

#include <string>
#include <string_view>
#include <sys/types.h>

namespace icmpengine::testing {

/// Moves the calling process (which must still be single-threaded) into a
/// new network namespace, brings `lo` up and opens
/// net.ipv4.ping_group_range to every group. Returns "" on success, else
/// why not (e.g. "unshare(CLONE_NEWNET): Operation not permitted").
std::string enter_private_netns();

/// Writes / reads a sysctl of the current network namespace, by its dotted
/// name ("net.ipv4.icmp_echo_ignore_all"). write_sysctl throws
/// std::runtime_error with the name and errno text on failure.
void write_sysctl(std::string_view name, std::string_view value);
std::string read_sysctl(std::string_view name);

/// Sets a sysctl for the lifetime of this object, restoring the old value.
class scoped_sysctl {
  public:
    scoped_sysctl(std::string name, std::string_view value);
    ~scoped_sysctl();
    scoped_sysctl(const scoped_sysctl&) = delete;
    scoped_sysctl& operator=(const scoped_sysctl&) = delete;

  private:
    std::string m_name;
    std::string m_old;
};

/// Runs a shell command (through /bin/sh); throws std::runtime_error with
/// the command and its exit status if it fails.
void run(const std::string& command);

/// A second network namespace, held open by a child process, for tests that
/// need a router or a remote host. `exec(cmd)` runs a command inside it.
class peer_netns {
  public:
    peer_netns();
    ~peer_netns();
    peer_netns(const peer_netns&) = delete;
    peer_netns& operator=(const peer_netns&) = delete;

    pid_t pid() const noexcept { return m_pid; }
    /// Runs `command` inside the namespace (nsenter -t PID -n sh -c ...).
    void exec(const std::string& command) const;

  private:
    pid_t m_pid = -1;
    int m_release_fd = -1;
};

} // namespace icmpengine::testing
