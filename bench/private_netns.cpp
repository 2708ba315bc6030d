// SPDX-License-Identifier: MIT
// See private_netns.hpp.
#include "private_netns.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace icmpengine::bench {

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

} // namespace icmpengine::bench
