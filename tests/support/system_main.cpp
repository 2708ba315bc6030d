// SPDX-License-Identifier: MIT
// main() for system tests: move into a private network namespace first.
// Exit 77 tells meson the test was skipped; under CI=true a skip fails.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "netns.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>

int main(int argc, char** argv) {
    std::string why = icmpengine::testing::enter_private_netns();
    if (!why.empty()) {
        const char* ci = std::getenv("CI");
        bool in_ci = ci != nullptr && std::strcmp(ci, "true") == 0;
        std::fprintf(stderr,
                     "SKIP: cannot create a private network namespace (%s); system tests need "
                     "root or CAP_SYS_ADMIN.%s\n",
                     why.c_str(), in_ci ? " CI=true: a skipped system test is a failure." : "");
        return in_ci ? 1 : 77;
    }
    return Catch::Session().run(argc, argv);
}
