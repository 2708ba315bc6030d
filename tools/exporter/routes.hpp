// SPDX-License-Identifier: MIT
// What each path answers: `/` the status page, the telemetry path the
// metrics, `/probe` a probe, `/-/healthy` and `/-/ready` liveness; 404
// otherwise.
#pragma once

#include "exposition.hpp"
#include "flags.hpp"
#include "http_server.hpp"
#include "probe.hpp"
#include "status_page.hpp"

#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <functional>
#include <string>

namespace icmpengine_exporter {

struct route_context {
    const exporter_flags* flags = nullptr;
    /// A producer of the metrics page, streamed (metrics_stream.hpp).
    std::function<http_body_producer()> metrics;
    std::function<void(const std::function<void(const target_view&)>&)> visit_targets;
    /// Null once shutting down (a probe then gets 503).
    std::function<probe_runner*()> runner;
    const allow_list* allow = nullptr;
    const probe_limits* limits = nullptr;
};

http_handler make_routes(route_context context);

/// The exporter's own families: build info, HTTP counters, the last
/// reload's outcome, engines (threads).
void render_own_metrics(exposition& page, const http_stats& http, bool reload_ok,
                        std::size_t engines);

} // namespace icmpengine_exporter
