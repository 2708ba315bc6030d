// SPDX-License-Identifier: MIT
// GET /probe from query to page (probe.hpp's handle_probe):
//   1. parse_probe_query: a bad query is a 400 with its reason;
//   2. the target to an address: a literal as it is, a name through
//      Asio's resolver (getaddrinfo on Asio's resolver thread; the engine's
//      thread never blocks), in the family ip_protocol asks for; a name
//      that does not resolve is a failed probe (200, probe_success 0), as
//      blackbox answers;
//   3. the allow-list, on the resolved address: outside it, 403 and no
//      packet (and no engine) at all;
//   4. the pings, on the engine for the query's ttl, within what the
//      resolution left of the timeout;
//   5. render_probe.
#include "probe.hpp"

#include <icmpengine/boost_asio.hpp>

#include <boost/asio/ip/udp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

namespace icmpengine_exporter {

namespace {

constexpr std::string_view metrics_type = "text/plain; version=0.0.4; charset=utf-8";
constexpr std::string_view reason_type = "text/plain; charset=utf-8";

http_probe_answer refuse(unsigned status, std::string reason) {
    return {status, std::move(reason) + "\n", std::string(reason_type)};
}

ie::ip_address from_asio(const boost::asio::ip::address& a) {
    if (a.is_v4())
        return ie::ip_address::from_v4(a.to_v4().to_uint());
    const boost::asio::ip::address_v6 v6 = a.to_v6();
    const auto b = v6.to_bytes();
    std::array<std::uint8_t, 16> bytes{};
    std::copy(b.begin(), b.end(), bytes.begin());
    return ie::ip_address::from_v6_bytes(bytes, static_cast<std::uint32_t>(v6.scope_id()));
}

/// ::ffff:a.b.c.d is pinged (and allow-listed) as a.b.c.d: an ICMPv6
/// socket cannot reach it.
ie::ip_address unmapped(const ie::ip_address& a) {
    const auto& b = a.bytes();
    if (!a.is_v6() || b[10] != 0xff || b[11] != 0xff ||
        !std::all_of(b.begin(), b.begin() + 10, [](std::uint8_t x) { return x == 0; }))
        return a;
    return ie::ip_address::from_v4_bytes({b[12], b[13], b[14], b[15]});
}

bool family_fits(const ie::ip_address& a, network_kind kind) {
    return kind == network_kind::ip || (kind == network_kind::ip4) == a.is_v4();
}

/// The first address of the asked family, or nullopt (no such name, no
/// address of that family, resolver failure).
boost::asio::awaitable<std::optional<ie::ip_address>> resolve(const std::string& host,
                                                              network_kind kind) {
    if (const auto literal = ie::ip_address::try_parse(host)) {
        const ie::ip_address a = unmapped(*literal);
        co_return family_fits(a, kind) ? std::optional(a) : std::nullopt;
    }
    using udp = boost::asio::ip::udp;
    udp::resolver resolver(co_await boost::asio::this_coro::executor);
    udp::resolver::results_type results;
    try {
        if (kind == network_kind::ip)
            results = co_await resolver.async_resolve(host, "", boost::asio::use_awaitable);
        else
            results =
                co_await resolver.async_resolve(kind == network_kind::ip4 ? udp::v4() : udp::v6(),
                                                host, "", boost::asio::use_awaitable);
    } catch (const boost::system::system_error&) {
        co_return std::nullopt;
    }
    for (const auto& entry : results) {
        const ie::ip_address a = unmapped(from_asio(entry.endpoint().address()));
        if (family_fits(a, kind))
            co_return a;
    }
    co_return std::nullopt;
}

http_probe_answer page_of(exposition& page) {
    return {200, page.text(), std::string(metrics_type)};
}

} // namespace

boost::asio::awaitable<http_probe_answer>
handle_probe(probe_runner& runner, const allow_list& allow, const probe_limits& limits,
             std::string query, std::string scrape_timeout_header) {
    const auto start = std::chrono::steady_clock::now();
    auto parsed = parse_probe_query(query, scrape_timeout_header, limits);
    if (auto* reason = std::get_if<std::string>(&parsed))
        co_return refuse(400, std::move(*reason));
    probe_request request = std::get<probe_request>(std::move(parsed));

    const std::optional<ie::ip_address> address =
        co_await resolve(request.target, request.ip_protocol);
    const auto resolved = std::chrono::steady_clock::now();
    exposition page;
    // What the resolution left of the budget must still hold the sends.
    const auto left = request.timeout - (resolved - start);
    if (!address || (request.count - 1) * request.interval >= left) {
        render_failed_probe(request, resolved - start, page);
        co_return page_of(page);
    }
    if (!allow.allows(*address)) {
        const std::string shown = address->to_string() == request.target
                                      ? request.target
                                      : request.target + " (" + address->to_string() + ")";
        co_return refuse(403, "target " + shown + " is not in --probe.allow (" + allow.to_string() +
                                  ")");
    }
    request.timeout = left;
    probe_result result = co_await ie::boost_asio::async_run(
        runner.engine_for(request.ttl), runner.run(*address, request), boost::asio::use_awaitable);
    result.resolve_time = resolved - start;
    result.duration = std::chrono::steady_clock::now() - start;
    render_probe(request, result, page);
    co_return page_of(page);
}

} // namespace icmpengine_exporter
