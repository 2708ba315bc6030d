// Private network namespaces for the benchmarks: every packet a benchmark
// sends stays inside namespaces it created itself. Nothing here touches the
// namespace the benchmark was started in.
#pragma once

#include <string>
#include <sys/types.h>

namespace icmpengine::bench {

/// Moves the calling process (which must still be single-threaded) into a
/// new network namespace, brings `lo` up and opens
/// net.ipv4.ping_group_range to every group. Returns "" on success, else
/// why not (e.g. "unshare(CLONE_NEWNET): Operation not permitted").
std::string enter_private_netns();

/// The benchmarks' exit when enter_private_netns() failed: prints why to
/// stderr and exits 77 (meson's "skipped"), or 1 under CI=true, where a
/// benchmark that cannot run must fail. Never falls back to the host
/// namespace.
[[noreturn]] void exit_without_netns(const char* program, const std::string& why);

/// Writes a sysctl of the current network namespace by its dotted name;
/// throws std::runtime_error with the name and errno text on failure.
void write_sysctl(const std::string& name, const std::string& value);

/// Runs a shell command; throws std::runtime_error naming it if it fails.
void run_command(const std::string& command);

/// A second network namespace, held open by a child process until this
/// object is destroyed. `exec(cmd)` runs a shell command inside it.
class peer_netns {
  public:
    peer_netns();
    ~peer_netns();
    peer_netns(const peer_netns&) = delete;
    peer_netns& operator=(const peer_netns&) = delete;

    pid_t pid() const noexcept { return m_pid; }
    void exec(const std::string& command) const;

  private:
    pid_t m_pid = -1;
    int m_release_fd = -1;
};

} // namespace icmpengine::bench
