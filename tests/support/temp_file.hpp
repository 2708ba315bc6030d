// SPDX-License-Identifier: MIT
// temp_file: a file with the given content for one test, removed at its end.
#pragma once

#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>
#include <sys/types.h>
#include <unistd.h>

namespace icmpengine::testing {

/// A file that is removed at the end of the test.
struct temp_file {
    std::string path;
    explicit temp_file(const std::string& content) {
        char name[] = "/tmp/icmpengine-test-XXXXXX";
        const int fd = ::mkstemp(name);
        REQUIRE(fd >= 0);
        REQUIRE(::write(fd, content.data(), content.size()) ==
                static_cast<ssize_t>(content.size()));
        ::close(fd);
        path = name;
    }
    ~temp_file() { ::unlink(path.c_str()); }
    temp_file(const temp_file&) = delete;
    temp_file& operator=(const temp_file&) = delete;
};

} // namespace icmpengine::testing
