// SPDX-License-Identifier: MIT
// `promtool check metrics` (Debian's prometheus) on a page of the Prometheus
// text format, for the exporter's tests.
#pragma once

#include "temp_file.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace icmpengine::testing {

/// What promtool says of `text`: "" if it is clean (exit 0, nothing
/// printed). Without /usr/bin/promtool the check is skipped with a warning,
/// and under CI=true it fails.
inline std::string promtool_problems(const std::string& text) {
    if (::access("/usr/bin/promtool", X_OK) != 0) {
        const char* ci = std::getenv("CI");
        if (ci != nullptr && std::strcmp(ci, "true") == 0)
            FAIL("/usr/bin/promtool is missing (Debian package prometheus); CI=true");
        WARN("SKIP promtool check: /usr/bin/promtool is missing (Debian package prometheus)");
        return {};
    }
    const temp_file page(text);
    const std::string command = "/usr/bin/promtool check metrics < " + page.path + " 2>&1";
    FILE* out = ::popen(command.c_str(), "r");
    REQUIRE(out != nullptr);
    std::string said;
    char buf[4096];
    while (const std::size_t n = std::fread(buf, 1, sizeof buf, out))
        said.append(buf, n);
    const int status = ::pclose(out);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && said.empty())
        return {};
    return said.empty() ? "promtool failed without output" : said;
}

/// CHECKs that promtool finds nothing to say of `text`.
inline void check_with_promtool(const std::string& text) {
    const std::string said = promtool_problems(text);
    INFO("promtool said: " << said);
    CHECK(said.empty());
}

} // namespace icmpengine::testing
