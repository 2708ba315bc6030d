// SPDX-License-Identifier: MIT
// Probe mode's pings (tools/exporter/probe.hpp): probe_runner and
// handle_probe on a Boost io_context, as the exporter runs them, in the
// test's private namespace. Targets: loopback, and the silent target
// (198.18.99.1, routed into lo, never answered). No upper bound on time:
// "in parallel" is shown by the pings in flight at once.
#include <catch2/catch.hpp>

#include "engine_test.hpp"
#include "probe.hpp"

#include <icmpengine/boost_asio.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <functional>
#include <optional>
#include <string>

using namespace std::chrono_literals;
namespace net = boost::asio;
using icmpengine::ip_address;
using icmpengine::testing::silent_target;
using icmpengine_exporter::allow_list;
using icmpengine_exporter::handle_probe;
using icmpengine_exporter::http_probe_answer;
using icmpengine_exporter::probe_limits;
using icmpengine_exporter::probe_request;
using icmpengine_exporter::probe_result;
using icmpengine_exporter::probe_runner;

namespace {

/// An io_context with a probe_runner on it; run() drives `body` to its end,
/// then destroys the runner (its drivers) so that the context runs out of
/// work.
struct probe_context {
    net::io_context ctx{1};
    std::optional<probe_runner> runner{std::in_place, ctx.get_executor()};

    void run(std::function<net::awaitable<void>()> body) {
        bool finished = false;
        net::co_spawn(
            ctx,
            [&]() -> net::awaitable<void> {
                co_await body();
                finished = true;
                runner.reset();
            },
            [](std::exception_ptr e) {
                if (e)
                    std::rethrow_exception(e);
            });
        ctx.run();
        CHECK(finished);
    }
};

allow_list allowing(const std::string& text) {
    std::string error;
    auto l = allow_list::parse(text, error);
    REQUIRE(l.has_value());
    return *l;
}

/// The value of the sample `name` (with its labels, if any) on a page;
/// nullopt if absent.
std::optional<double> value_of(const std::string& page, const std::string& name) {
    const std::size_t at = page.find("\n" + name + " ");
    if (at == std::string::npos)
        return std::nullopt;
    return std::stod(page.substr(at + name.size() + 2));
}

} // namespace

TEST_CASE("a probe of 127.0.0.1: 5 pings, 5 replies, on the page", "[probe_run]") {
    probe_context p;
    http_probe_answer answer;
    std::optional<probe_result> direct;
    p.run([&]() -> net::awaitable<void> {
        answer = co_await handle_probe(*p.runner, allow_list(), probe_limits(),
                                       "target=127.0.0.1&count=5&interval=10ms", "");
        probe_request request;
        request.count = 5;
        request.interval = 10ms;
        direct = co_await icmpengine::boost_asio::async_run(
            p.runner->engine_for(0), p.runner->run(ip_address::parse("127.0.0.1"), request),
            net::use_awaitable);
    });
    CHECK(answer.status == 200);
    CHECK(answer.content_type == "text/plain; version=0.0.4; charset=utf-8");
    INFO(answer.body);
    CHECK(value_of(answer.body, "probe_success") == 1.0);
    CHECK(value_of(answer.body, "icmpengine_probe_packets_sent") == 5.0);
    CHECK(value_of(answer.body, "icmpengine_probe_packets_received") == 5.0);
    CHECK(value_of(answer.body, "icmpengine_probe_packet_loss_ratio") == 0.0);
    CHECK(value_of(answer.body, "probe_ip_protocol") == 4.0);
    CHECK(value_of(answer.body, "probe_icmp_reply_hop_limit") == 64.0);
    CHECK(value_of(answer.body, "icmpengine_probe_rtt_seconds{stat=\"min\"}") > 0.0);
    // The fifth ping went out 40 ms after the first: the probe took longer.
    CHECK(value_of(answer.body, "probe_duration_seconds") >= 0.040);
    REQUIRE(direct.has_value());
    CHECK(direct->sent == 5);
    CHECK(direct->received == 5);
    CHECK(direct->rtts.size() == 5);
    CHECK(direct->icmp_errors == 0);
    CHECK(direct->send_errors == 0);
}

TEST_CASE("a probe of ::1, and of a name in the family asked for", "[probe_run]") {
    probe_context p;
    http_probe_answer v6;
    http_probe_answer bracketed;
    http_probe_answer name;
    p.run([&]() -> net::awaitable<void> {
        v6 = co_await handle_probe(*p.runner, allow_list(), probe_limits(),
                                   "target=%3A%3A1&count=2", "");
        bracketed = co_await handle_probe(*p.runner, allow_list(), probe_limits(),
                                          "target=[::1]:9100&ip_protocol=ip6", "");
        name = co_await handle_probe(*p.runner, allow_list(), probe_limits(),
                                     "target=localhost&ip_protocol=ip4", "");
    });
    INFO(v6.body);
    CHECK(v6.status == 200);
    CHECK(value_of(v6.body, "probe_success") == 1.0);
    CHECK(value_of(v6.body, "icmpengine_probe_packets_received") == 2.0);
    CHECK(value_of(v6.body, "probe_ip_protocol") == 6.0);
    CHECK(value_of(bracketed.body, "probe_success") == 1.0);
    INFO(name.body);
    CHECK(name.status == 200);
    CHECK(value_of(name.body, "probe_success") == 1.0);
    CHECK(value_of(name.body, "probe_ip_protocol") == 4.0);
}

TEST_CASE("a silent target: 0 of 3, probe_success 0, within its budget", "[probe_run]") {
    probe_context p;
    const std::string silent = silent_target().to_string();
    http_probe_answer answer;
    p.run([&]() -> net::awaitable<void> {
        answer =
            co_await handle_probe(*p.runner, allowing(silent), probe_limits(),
                                  "target=" + silent + "&count=3&interval=10ms&timeout=300ms", "");
    });
    INFO(answer.body);
    CHECK(answer.status == 200);
    CHECK(value_of(answer.body, "probe_success") == 0.0);
    CHECK(value_of(answer.body, "icmpengine_probe_packets_sent") == 3.0);
    CHECK(value_of(answer.body, "icmpengine_probe_packets_received") == 0.0);
    CHECK(value_of(answer.body, "icmpengine_probe_packet_loss_ratio") == 1.0);
    CHECK(answer.body.find("icmpengine_probe_rtt_seconds") == std::string::npos);
    CHECK(answer.body.find("probe_icmp_reply_hop_limit") == std::string::npos);
    // Each ping waited timeout - 2 * interval = 280 ms at least.
    CHECK(value_of(answer.body, "probe_duration_seconds") >= 0.280);
}

TEST_CASE("ttl=1 gets an engine of its own", "[probe_run]") {
    probe_context p;
    http_probe_answer with_ttl;
    http_probe_answer without;
    std::size_t engines = 0;
    std::uint8_t ttl_of_engine = 0;
    p.run([&]() -> net::awaitable<void> {
        without =
            co_await handle_probe(*p.runner, allow_list(), probe_limits(), "target=127.0.0.1", "");
        with_ttl = co_await handle_probe(*p.runner, allow_list(), probe_limits(),
                                         "target=127.0.0.1&ttl=1", "");
        engines = p.runner->engine_count();
        ttl_of_engine = p.runner->engine_for(1).config().ttl;
    });
    CHECK(value_of(without.body, "probe_success") == 1.0);
    CHECK(value_of(with_ttl.body, "probe_success") == 1.0); // loopback: no hop to expire
    CHECK(engines == 2);
    CHECK(ttl_of_engine == 1);
}

TEST_CASE("100 probes at once run in parallel and all complete", "[probe_run]") {
    probe_context p;
    const std::string silent = silent_target().to_string();
    const allow_list allow = allowing("127.0.0.0/8," + silent);
    constexpr int probes = 100;
    int done = 0;
    int loopback_done = 0;
    int good = 0;
    std::uint64_t most_in_flight = 0;
    p.run([&]() -> net::awaitable<void> {
        for (int i = 0; i < probes; ++i) {
            // Half to the silent target (in flight until stop() below),
            // half to loopback (3 pings each).
            const bool loopback = i % 2 == 1;
            const std::string query =
                loopback ? "target=127.0." + std::to_string(i) + ".1&count=3&interval=10ms"
                         : "target=" + silent + "&timeout=60s";
            net::co_spawn(
                p.ctx,
                [&, query, loopback]() -> net::awaitable<void> {
                    const http_probe_answer a =
                        co_await handle_probe(*p.runner, allow, probe_limits(), query, "");
                    const bool replied = value_of(a.body, "probe_success") == 1.0;
                    good += a.status == 200 && replied == loopback ? 1 : 0;
                    loopback_done += loopback ? 1 : 0;
                    ++done;
                },
                [](std::exception_ptr e) {
                    if (e)
                        std::rethrow_exception(e);
                });
        }
        // All 50 silent probes' pings are in flight together (none waits
        // for another), while the loopback probes come and go beside them.
        // The limit only keeps a broken test from hanging.
        net::steady_timer timer(p.ctx);
        const auto give_up = std::chrono::steady_clock::now() + 50s;
        while ((loopback_done < probes / 2 || most_in_flight < probes / 2) &&
               std::chrono::steady_clock::now() < give_up) {
            most_in_flight = std::max(most_in_flight, p.runner->engine_for(0).stats().in_flight);
            timer.expires_after(1ms);
            co_await timer.async_wait(net::use_awaitable);
        }
        p.runner->stop(); // the silent probes end now, with no reply
        while (done < probes) {
            timer.expires_after(1ms);
            co_await timer.async_wait(net::use_awaitable);
        }
    });
    CHECK(done == probes);
    CHECK(loopback_done == probes / 2);
    CHECK(good == probes);
    CHECK(most_in_flight >= probes / 2);
}

TEST_CASE("a target outside the allow-list: 403 and nothing sent", "[probe_run]") {
    probe_context p;
    http_probe_answer outside;
    http_probe_answer mapped_outside;
    http_probe_answer bad;
    std::size_t engines = 1;
    p.run([&]() -> net::awaitable<void> {
        outside = co_await handle_probe(*p.runner, allow_list(), probe_limits(),
                                        "target=" + silent_target().to_string(), "");
        mapped_outside = co_await handle_probe(*p.runner, allow_list(), probe_limits(),
                                               "target=::ffff:10.1.2.3", "");
        bad = co_await handle_probe(*p.runner, allow_list(), probe_limits(), "target=::1&count=0",
                                    "");
        engines = p.runner->engine_count();
    });
    CHECK(outside.status == 403);
    CHECK(outside.body == "target 198.18.99.1 is not in --probe.allow (127.0.0.0/8,::1/128)\n");
    CHECK(mapped_outside.status == 403);
    CHECK(mapped_outside.body ==
          "target ::ffff:10.1.2.3 (10.1.2.3) is not in --probe.allow (127.0.0.0/8,::1/128)\n");
    CHECK(bad.status == 400);
    CHECK(bad.body == "count: '0' is not in 1..100\n");
    CHECK(engines == 0); // no engine, so no ping
}

TEST_CASE("a name that does not resolve: probe_success 0 with status 200", "[probe_run]") {
    probe_context p;
    http_probe_answer answer;
    http_probe_answer wrong_family;
    p.run([&]() -> net::awaitable<void> {
        answer = co_await handle_probe(*p.runner, allow_list(), probe_limits(),
                                       "target=nonexistent.invalid", "");
        wrong_family = co_await handle_probe(*p.runner, allow_list(), probe_limits(),
                                             "target=::1&ip_protocol=ip4", "");
    });
    INFO(answer.body);
    CHECK(answer.status == 200);
    CHECK(value_of(answer.body, "probe_success") == 0.0);
    CHECK(value_of(answer.body, "probe_ip_protocol") == 0.0);
    CHECK(value_of(wrong_family.body, "probe_success") == 0.0);
}

TEST_CASE("stop(): a probe waiting for a silent target ends at once", "[probe_run]") {
    probe_context p;
    std::optional<probe_result> result;
    p.run([&]() -> net::awaitable<void> {
        probe_request request;
        request.timeout = 1h;
        icmpengine::engine& eng = p.runner->engine_for(0);
        net::co_spawn(
            p.ctx,
            [&]() -> net::awaitable<void> {
                result = co_await icmpengine::boost_asio::async_run(
                    eng, p.runner->run(silent_target(), request), net::use_awaitable);
            },
            [](std::exception_ptr e) {
                if (e)
                    std::rethrow_exception(e);
            });
        net::steady_timer timer(p.ctx);
        while (eng.stats().in_flight == 0) { // the ping is out
            timer.expires_after(1ms);
            co_await timer.async_wait(net::use_awaitable);
        }
        p.runner->stop();
        while (!result) {
            timer.expires_after(1ms);
            co_await timer.async_wait(net::use_awaitable);
        }
        CHECK(eng.stats().cancelled == 1);
    });
    REQUIRE(result.has_value());
    CHECK(result->sent == 1);
    CHECK(result->received == 0);
}
