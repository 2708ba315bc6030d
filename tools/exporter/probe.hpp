// SPDX-License-Identifier: MIT
// Probe mode (blackbox_exporter's ICMP prober): GET /probe?target=X pings X
// `count` times and answers with blackbox's metric names plus loss and RTT
// statistics. Only targets inside the allow-list (--probe.allow) are
// pinged: the exporter is never an open ping relay.
#pragma once

#include "config.hpp"
#include "exposition.hpp"

#include <icmpengine/engine.hpp>
#include <icmpengine/ip_address.hpp>
#include <icmpengine/task.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace icmpengine_exporter {

/// Prefixes /probe may ping ("127.0.0.0/8,::1/128,10.1.0.0/16"; a bare
/// address is a /32 or /128). Default: loopback only.
class allow_list {
  public:
    allow_list(); ///< 127.0.0.0/8 and ::1/128
    /// Parses a comma-separated list; nullopt and `error` set (naming the
    /// bad entry) if an entry is not a prefix.
    static std::optional<allow_list> parse(std::string_view text, std::string& error);
    bool allows(const ie::ip_address& a) const noexcept;
    std::string to_string() const;

  private:
    struct prefix {
        ie::ip_address network;
        unsigned length;
    };
    std::vector<prefix> m_prefixes;
};

/// Bounds on what a query may ask, from the command line.
struct probe_limits {
    std::uint32_t max_count = 100;
    std::chrono::nanoseconds min_interval = std::chrono::milliseconds(10);
    /// Used when neither `timeout` nor Prometheus's
    /// X-Prometheus-Scrape-Timeout-Seconds header says (blackbox: 120 s
    /// module timeout capped by the scrape timeout less 0.5 s).
    std::chrono::nanoseconds default_timeout = std::chrono::seconds(5);
    std::chrono::nanoseconds max_timeout = std::chrono::seconds(120);
};

struct probe_request {
    std::string target; ///< as given: an address or a name
    std::uint32_t count = 1;
    std::chrono::nanoseconds interval = std::chrono::seconds(1);
    /// The whole probe's budget (blackbox's meaning): the pings' sends and
    /// their waits all fit in it; each ping waits at most
    /// timeout - (count - 1) * interval.
    std::chrono::nanoseconds timeout = std::chrono::seconds(5);
    std::uint32_t size = 56;
    std::uint8_t ttl = 0;                        ///< 0 = kernel default
    network_kind ip_protocol = network_kind::ip; ///< ip4 / ip6 / either (ip)
};

/// Parses the query string (after '?'; percent-decoding done here) and the
/// scrape-timeout header value (empty if absent). The variant's string is
/// the 400 reason ("count: '0' is not in 1..100"). Unknown parameters
/// (`module`, as Prometheus configs for blackbox pass) are ignored; a
/// known one given twice is a 400.
///
/// `target`: an address ("192.0.2.1", "2001:db8::1", "[2001:db8::1]"), or
/// a host name; a trailing ":port" (a relabelled __address__ such as
/// "node:9100" or "[::1]:9100") is dropped, so request.target is the host
/// alone. An IPv6 address without brackets is taken whole.
/// `timeout` given: a Go duration ("2s") or seconds ("2.5"), at most
/// limits.max_timeout. Not given: the scrape-timeout header less 0.5 s
/// (the header itself when it is shorter), else limits.default_timeout.
/// Either way (count - 1) * interval must be below it.
/// `ip_protocol` (or blackbox's `preferred_ip_protocol`): ip4, ip6, or ip
/// (the resolver's first address); a literal of the other family is a
/// failed probe, as blackbox's resolution fails.
std::variant<probe_request, std::string> parse_probe_query(std::string_view query,
                                                           std::string_view scrape_timeout_header,
                                                           const probe_limits& limits);

struct probe_result {
    ie::ip_address address;                  ///< what was pinged
    std::chrono::nanoseconds resolve_time{}; ///< phase "resolve"
    std::uint32_t sent = 0;
    std::uint32_t received = 0;
    std::vector<std::chrono::nanoseconds> rtts; ///< of the replies, in send order
    std::uint8_t reply_ttl = 0;                 ///< of the last reply (hop limit)
    std::uint32_t icmp_errors = 0;
    std::uint32_t send_errors = 0;
    std::chrono::nanoseconds duration{}; ///< whole probe, resolution included
};

/// The engines probes use, one per (ttl, address family's needs), created
/// on first use and driven from `executor` (one thread, as
/// continuous_prober). Pings a resolved, allowed address.
class probe_runner {
  public:
    probe_runner(boost::asio::any_io_executor executor, ie::engine_config base = {});
    ~probe_runner();
    probe_runner(const probe_runner&) = delete;
    probe_runner& operator=(const probe_runner&) = delete;

    /// Runs the pings of one probe on the right engine; completes on the
    /// executor's thread. `result.resolve_time` and `duration` are left for
    /// the caller (it resolved the name).
    ie::task<probe_result> run(ie::ip_address address, probe_request request);
    /// The engine for `ttl` (for the caller to co_await run()'s task on:
    /// icmpengine::boost_asio::async_run(engine_for(ttl), ...)).
    ie::engine& engine_for(std::uint8_t ttl);
    /// SIGTERM: pings in flight end as cancelled.
    void stop();
    /// Engines created so far (one per ttl asked for): none until a probe
    /// runs, so a refused probe can be seen to have sent nothing.
    std::size_t engine_count() const noexcept;

  private:
    struct impl;
    std::unique_ptr<impl> m_impl;
};

/// blackbox_exporter's ICMP metrics (probe_success,
/// probe_duration_seconds, probe_icmp_duration_seconds{phase="resolve"|
/// "setup"|"rtt"}, probe_icmp_reply_hop_limit, probe_ip_protocol,
/// probe_ip_addr_hash, probe_dns_lookup_time_seconds) and ours
/// (icmpengine_probe_*: sent, received, loss ratio, RTT min/avg/max/stddev/
/// median). probe_success is 1 when at least one reply came.
void render_probe(const probe_request& request, const probe_result& result, exposition& page);
/// A probe that could not run (unresolvable name): probe_success 0 and
/// probe_duration_seconds, as blackbox answers.
void render_failed_probe(const probe_request& request, std::chrono::nanoseconds duration,
                         exposition& page);

/// What GET /probe answers: 200 with the metrics, 400 (bad query) or 403
/// (target outside the allow-list) with a one-line reason.
struct http_probe_answer {
    unsigned status = 200;
    std::string body;
    std::string content_type;
};

/// The whole of GET /probe, for the HTTP glue: parses `query` (after '?',
/// not decoded) and `scrape_timeout_header` (X-Prometheus-Scrape-Timeout-
/// Seconds, empty if absent), resolves the target (request's ip_protocol;
/// a name that does not resolve is a failed probe, 200 with probe_success
/// 0, as blackbox answers), checks the resolved address against `allow`,
/// runs the pings on `runner.engine_for(ttl)` and renders the page. Runs on
/// the runner's executor. Arguments are taken by value: they must outlive
/// the coroutine's suspensions.
boost::asio::awaitable<http_probe_answer>
handle_probe(probe_runner& runner, const allow_list& allow, const probe_limits& limits,
             std::string query, std::string scrape_timeout_header);

} // namespace icmpengine_exporter
