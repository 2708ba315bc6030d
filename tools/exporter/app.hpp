// SPDX-License-Identifier: MIT
// icmpengine-exporter's life: the io_context that runs HTTP, the probe
// engines and the first continuous engine set on the main thread; one more
// thread per extra --engines; SIGHUP reloads, SIGTERM/SIGINT shut down
// gracefully; host names are resolved again every --dns.interval.
#pragma once

#include "config.hpp"
#include "flags.hpp"

#include <memory>

namespace icmpengine_exporter {

/// Runs the exporter until SIGTERM or SIGINT; returns the exit code.
/// Throws config_error (a bad configuration at start-up) and
/// std::system_error (a listener that cannot open, a socket the kernel
/// refuses for every family) before serving anything.
int run_exporter(const exporter_flags& flags);

/// The configuration the flags describe: the config file's groups (if
/// any), then the positional hosts as one group with the flags' interval
/// and size.
exporter_config configuration_of(const exporter_flags& flags);

} // namespace icmpengine_exporter
