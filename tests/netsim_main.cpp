// SPDX-License-Identifier: MIT
// netsim: runs a command in a private network namespace behind the network
// simulator (support/netsim.hpp), then prints what the simulator did.
//
//     netsim --profile 'delay=uniform:1ms:5ms,loss=0.2' --seed 7 -- ping -c 20 198.18.0.1
//
// Exits with the command's status (128 + signal if it was killed). Test
// tooling: needs root (or CAP_SYS_ADMIN + CAP_NET_ADMIN), not installed.
#include "netns.hpp"
#include "netsim.hpp"
#include "seed.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace {

using namespace icmpengine::testing;

constexpr const char* usage =
    "usage: netsim --profile PROFILE [--seed N] [--busy-poll] [--records] -- COMMAND [ARGS...]\n"
    "\n"
    "Runs COMMAND in a new network namespace in which 198.18.0.0/16 and 2001:db8:5::/48\n"
    "are routed to a simulated network that answers ICMP echo requests as PROFILE says,\n"
    "then prints what it did to stderr. The profile syntax is documented in\n"
    "tests/support/netsim.hpp, e.g.\n"
    "  'delay=uniform:1ms:5ms,loss=0.2,dup=0.01,corrupt=checksum:0.01;198.18.0.7:loss=1'\n"
    "\n"
    "  --seed N     seed of the simulator's decisions (default: ICMPENGINE_SEED or random)\n"
    "  --busy-poll  spin on the TUN device: lowest latency, burns a core\n"
    "  --records    print every request record\n";

pid_t g_child = -1;

void forward_signal(int sig) {
    if (g_child > 0)
        ::kill(g_child, sig);
}

int fail(const std::string& why) {
    std::fprintf(stderr, "netsim: %s\n", why.c_str());
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    std::string profile_text;
    bool have_profile = false;
    std::optional<std::uint64_t> seed;
    bool busy_poll = false;
    bool records = false;
    int i = 1;
    for (; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--") {
            ++i;
            break;
        }
        if (arg == "--profile" && i + 1 < argc) {
            profile_text = argv[++i];
            have_profile = true;
        } else if (arg == "--seed" && i + 1 < argc) {
            try {
                seed = std::stoull(argv[++i], nullptr, 0);
            } catch (const std::exception&) {
                return fail(std::string("bad --seed '") + argv[i] + "'");
            }
        } else if (arg == "--busy-poll") {
            busy_poll = true;
        } else if (arg == "--records") {
            records = true;
        } else if (arg == "--help" || arg == "-h") {
            std::fputs(usage, stdout);
            return 0;
        } else {
            std::fputs(usage, stderr);
            return fail("unexpected argument '" + std::string(arg) + "'");
        }
    }
    if (!have_profile || i >= argc) {
        std::fputs(usage, stderr);
        return fail(have_profile ? "no COMMAND after --" : "--profile is required");
    }

    simulator_config config;
    try {
        config.profile = profile::parse(profile_text);
    } catch (const std::invalid_argument& e) {
        return fail(e.what());
    }
    // Before any thread exists: unshare(CLONE_NEWNET) needs a single thread.
    if (std::string why = enter_private_netns(); !why.empty())
        return fail("cannot create a private network namespace: " + why);
    if (seed) {
        std::printf("[netsim] seed: %llu\n", static_cast<unsigned long long>(*seed));
        std::fflush(stdout);
    }
    config.seed = seed ? *seed : test_seed("netsim");
    config.busy_poll = busy_poll;

    try {
        network_simulator sim(config);
        std::fprintf(stderr, "netsim: %s routes %s and %s (local %s, %s); profile '%s'\n",
                     config.device.c_str(), config.v4_prefix.to_string().c_str(),
                     config.v6_prefix.to_string().c_str(), config.v4_local.to_string().c_str(),
                     config.v6_local.to_string().c_str(), config.profile.to_string().c_str());

        g_child = ::fork();
        if (g_child < 0)
            return fail(std::string("fork: ") + std::strerror(errno));
        if (g_child == 0) {
            ::execvp(argv[i], argv + i);
            std::fprintf(stderr, "netsim: exec %s: %s\n", argv[i], std::strerror(errno));
            ::_exit(127);
        }
        struct sigaction sa {};
        sa.sa_handler = forward_signal;
        ::sigaction(SIGINT, &sa, nullptr);
        ::sigaction(SIGTERM, &sa, nullptr);
        int status = 0;
        while (::waitpid(g_child, &status, 0) < 0 && errno == EINTR) {
        }
        // Let writes that are due about now go out; later ones (late
        // replies, long holds) are reported as pending.
        sim.wait_until_flushed(std::chrono::milliseconds(100));

        if (records)
            for (const request_record& r : sim.requests())
                std::fprintf(stderr, "netsim: %s\n", r.to_string().c_str());
        std::string summary = sim.summary().to_string();
        std::string prefixed;
        std::size_t start = 0;
        while (start < summary.size()) {
            const std::size_t end = summary.find('\n', start);
            prefixed += "netsim: " + summary.substr(start, end - start) + "\n";
            start = end == std::string::npos ? summary.size() : end + 1;
        }
        std::fputs(prefixed.c_str(), stderr);
        if (WIFEXITED(status))
            return WEXITSTATUS(status);
        if (WIFSIGNALED(status))
            return 128 + WTERMSIG(status);
        return 1;
    } catch (const std::exception& e) {
        return fail(e.what());
    }
}
