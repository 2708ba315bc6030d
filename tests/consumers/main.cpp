// SPDX-License-Identifier: MIT
// What a project that depends on icmpengine builds: the consumer tests
// (tests/consumers/*.sh) compile this file through a wrap, the installed
// pkg-config file, CMake's pkg_check_modules and the uninstalled pkg-config
// file. Without arguments it only constructs an engine (which opens
// nothing); with --ping it pings 127.0.0.1 once, which the tests do only
// inside a network namespace of their own.
#include <icmpengine/icmpengine.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>

int main(int argc, char** argv) {
    using namespace std::chrono_literals;
    icmpengine::engine engine;
    if (argc < 2 || std::string_view(argv[1]) != "--ping") {
        std::puts("consumer: engine constructed");
        return 0;
    }
    const icmpengine::ping_result r =
        engine.run(engine.ping(icmpengine::ip_address::parse("127.0.0.1"), 10s));
    std::printf("consumer: 127.0.0.1: %s, rtt %lld ns\n", std::string(to_string(r.status)).c_str(),
                static_cast<long long>(r.rtt.count()));
    return r.status == icmpengine::ping_status::reply ? 0 : 1;
}
