// SPDX-License-Identifier: MIT
#include "routes.hpp"

#include <chrono>
#include <memory>
#include <vector>

#ifndef ICMPENGINE_VERSION
#define ICMPENGINE_VERSION "unknown"
#endif

namespace icmpengine_exporter {

namespace {

http_response text_response(unsigned status, std::string body) {
    http_response r;
    r.status = status;
    r.content_type = "text/plain; charset=utf-8";
    r.body = std::move(body);
    return r;
}

http_response status_page(const route_context& c) {
    std::vector<target_view> views;
    c.visit_targets([&](const target_view& v) { views.push_back(v); });
    status_page_options options;
    options.version = ICMPENGINE_VERSION;
    options.metrics_path = c.flags->telemetry_path;
    http_response r;
    r.content_type = "text/html; charset=utf-8";
    r.body = render_status_page(views, std::chrono::system_clock::now(), options);
    r.headers.emplace_back("Cache-Control", "no-store");
    return r;
}

boost::asio::awaitable<http_response> probe(const route_context& c, const http_request& request) {
    probe_runner* runner = c.runner();
    if (runner == nullptr)
        co_return text_response(503, "shutting down\n");
    const auto header = request.headers.find("x-prometheus-scrape-timeout-seconds");
    std::string scrape_timeout = header == request.headers.end() ? std::string{} : header->second;
    const http_probe_answer answer =
        co_await handle_probe(*runner, *c.allow, *c.limits, request.query, scrape_timeout);
    http_response r;
    r.status = answer.status;
    r.content_type = answer.content_type;
    r.body = answer.body;
    co_return r;
}

boost::asio::awaitable<http_response> route(std::shared_ptr<const route_context> c,
                                            http_request request) {
    if (request.path == c->flags->telemetry_path) {
        http_response r;
        r.stream = c->metrics();
        co_return r;
    }
    if (request.path == "/probe")
        co_return co_await probe(*c, request);
    if (request.path == "/")
        co_return status_page(*c);
    if (request.path == "/-/healthy" || request.path == "/-/ready")
        co_return text_response(200, "OK\n");
    co_return text_response(404, "404 page not found\n");
}

} // namespace

http_handler make_routes(route_context context) {
    auto shared = std::make_shared<const route_context>(std::move(context));
    return [shared](http_request request) { return route(shared, std::move(request)); };
}

void render_own_metrics(exposition& page, const http_stats& http, bool reload_ok,
                        std::size_t engines) {
    append_sample(
        page.samples(page.family("icmpengine_exporter_build_info", exposition::kind::gauge,
                                 "A metric with a constant '1' value labeled by version.")),
        "icmpengine_exporter_build_info", "{version=\"" ICMPENGINE_VERSION "\"}", 1.0);
    append_sample(page.samples(page.family(
                      "icmpengine_exporter_config_last_reload_successful", exposition::kind::gauge,
                      "Whether the last configuration reload (SIGHUP) succeeded.")),
                  "icmpengine_exporter_config_last_reload_successful", "", reload_ok ? 1.0 : 0.0);
    append_sample(
        page.samples(page.family("icmpengine_exporter_engine_threads", exposition::kind::gauge,
                                 "Threads running ping engines (--engines).")),
        "icmpengine_exporter_engine_threads", "", static_cast<double>(engines));
    const struct {
        const char* name;
        const char* help;
        exposition::kind kind;
        std::uint64_t value;
    } counters[] = {
        {"icmpengine_exporter_http_connections_total", "HTTP connections accepted.",
         exposition::kind::counter, http.connections_accepted},
        {"icmpengine_exporter_http_connections_refused_total",
         "HTTP connections closed at once: --web.max-connections were open, none idle.",
         exposition::kind::counter, http.connections_refused},
        {"icmpengine_exporter_http_connections_evicted_total",
         "Idle HTTP connections closed to make room at --web.max-connections.",
         exposition::kind::counter, http.connections_evicted},
        {"icmpengine_exporter_http_connections_open", "HTTP connections open now.",
         exposition::kind::gauge, http.connections_open},
        {"icmpengine_exporter_http_requests_total", "HTTP requests received.",
         exposition::kind::counter, http.requests},
        {"icmpengine_exporter_http_bad_requests_total",
         "HTTP requests refused by the server itself (malformed, too large).",
         exposition::kind::counter, http.bad_requests},
        {"icmpengine_exporter_http_timeouts_total", "HTTP connections closed by a timeout.",
         exposition::kind::counter, http.timeouts},
    };
    for (const auto& c : counters)
        append_sample(page.samples(page.family(c.name, c.kind, c.help)), c.name, "", c.value);
}

} // namespace icmpengine_exporter
