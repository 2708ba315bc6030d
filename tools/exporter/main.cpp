// SPDX-License-Identifier: MIT
// icmpengine-exporter: a Prometheus exporter that pings continuously as
// smokeping_prober does and on request as blackbox_exporter's ICMP probe
// does, on icmpengine. The parts:
//   flags.cpp       the command line (smokeping_prober's flags and ours)
//   config.cpp      smokeping_prober's YAML configuration; shards
//   resolver.cpp    host names resolved off the engines' thread
//   continuous.cpp  continuous mode: schedule, metrics (continuous_*.cpp)
//   probe*.cpp      /probe: query, allow-list, pings, blackbox's metrics
//   history.cpp, status_page.cpp   the status page at /
//   http_server.cpp Boost.Beast, one coroutine per connection
//   routes.cpp      which path answers what
//   app.cpp         threads, signals (SIGHUP reload, SIGTERM shutdown)
#include "app.hpp"
#include "config.hpp"
#include "flags.hpp"
#include "log.hpp"

#include <cstdio>
#include <exception>
#include <string>
#include <system_error>

#ifndef ICMPENGINE_VERSION
#define ICMPENGINE_VERSION "unknown"
#endif

namespace {

int fail(const std::string& message) {
    std::fprintf(stderr, "icmpengine-exporter: error: %s\n", message.c_str());
    return 1;
}

} // namespace

int main(int argc, char** argv) {
    using namespace icmpengine_exporter;
    exporter_flags flags;
    try {
        flags = parse_flags(argc, argv);
    } catch (const flag_error& e) {
        return fail(e.what());
    }
    if (flags.help) {
        std::fputs(usage_text().c_str(), stdout);
        return 0;
    }
    if (flags.version) {
        std::printf("icmpengine-exporter, version %s (icmpengine)\n", ICMPENGINE_VERSION);
        return 0;
    }
    configure_log(flags.log_level, flags.log_format);
    try {
        return run_exporter(flags);
    } catch (const config_error& e) {
        return fail(e.what());
    } catch (const std::system_error& e) {
        return fail(e.what());
    } catch (const std::exception& e) {
        return fail(e.what());
    }
}
