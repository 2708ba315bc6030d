// SPDX-License-Identifier: MIT
#include "app.hpp"

#include "continuous.hpp"
#include "exposition.hpp"
#include "http_server.hpp"
#include "log.hpp"
#include "metrics_stream.hpp"
#include "probe.hpp"
#include "resolver.hpp"
#include "routes.hpp"

#include <icmpengine/engine.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <csignal>
#include <system_error>
#include <thread>

namespace icmpengine_exporter {

namespace {

/// An extra --engines thread: its own io_context and continuous prober,
/// touched only from that thread (through post).
struct worker {
    boost::asio::io_context ctx{1};
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{
        ctx.get_executor()};
    std::unique_ptr<continuous_prober> prober;
    std::thread thread;
};

/// Fails start-up if neither family's socket opens, naming what the kernel
/// wants (the engine's errors name the sysctl or capability); warns if one
/// family cannot be used.
void check_sockets() {
    ie::engine probe_engine;
    const std::error_code v4 = probe_engine.open(ie::ip_family::v4);
    const std::error_code v6 = probe_engine.open(ie::ip_family::v6);
    if (v4 && v6)
        throw std::system_error(v4, "cannot open an ICMP socket (IPv4: " + v4.message() +
                                        "; IPv6: " + v6.message() + ")");
    if (v4)
        log(log_level::warn, "IPv4 targets cannot be pinged", {{"err", v4.message()}});
    if (v6)
        log(log_level::warn, "IPv6 targets cannot be pinged", {{"err", v6.message()}});
}

continuous_options continuous_options_of(const exporter_flags& flags) {
    continuous_options o;
    o.buckets = flags.buckets;
    o.history_bins = flags.history_bins;
    o.timeout = flags.timeout;
    // Replies arrive spread over each interval, not in a burst: 256
    // provided buffers per socket (the engine's default is 2,048, for
    // fan-outs that send everything at once) keep 3.5 MB per socket out of
    // the resident set. A burst beyond them waits in the socket's receive
    // buffer (SO_RCVBUF), never lost.
    o.engine.receive_buffers = 256;
    // A slot per ping in flight: at 1 Hz that is about one per target, not
    // the 65,536 the engine would grow to before reusing one (~7 MB at
    // 10,000 targets). 16,384 still leaves a slot unused for over a second
    // at 10,000 pings a second, so late replies keep their RTT; beyond it
    // the table grows whenever every slot is in use.
    o.engine.reuse_slots_after = 16384;
    return o;
}

class exporter {
  public:
    explicit exporter(const exporter_flags& flags)
        : m_flags(flags), m_config(configuration_of(flags)),
          m_prober(std::make_unique<continuous_prober>(m_ctx.get_executor(),
                                                       continuous_options_of(flags))),
          m_runner(std::make_unique<probe_runner>(m_ctx.get_executor())),
          m_resolver(m_ctx.get_executor()),
          m_server(m_ctx.get_executor(), limits_of(flags), make_handler()),
          m_signals(m_ctx, SIGTERM, SIGINT, SIGHUP), m_dns_timer(m_ctx) {
        for (unsigned i = 1; i < flags.engines; ++i)
            start_worker();
    }

    int run() {
        for (const std::string& address : m_flags.listen_addresses)
            m_server.listen(address);
        for (const auto& endpoint : m_server.endpoints())
            log(log_level::info, "listening on " + endpoint_text(endpoint));
        wait_for_signal();
        resolve_targets();
        schedule_dns();
        m_ctx.run();
        for (auto& w : m_workers)
            w->thread.join();
        log(log_level::info, "stopped");
        return 0;
    }

  private:
    static http_limits limits_of(const exporter_flags& flags) {
        http_limits l;
        l.max_connections = flags.max_connections;
        return l;
    }

    static std::string endpoint_text(const boost::asio::ip::tcp::endpoint& e) {
        const std::string a = e.address().to_string();
        return (e.address().is_v6() ? "[" + a + "]" : a) + ":" + std::to_string(e.port());
    }

    http_handler make_handler() {
        route_context r;
        r.flags = &m_flags;
        r.metrics = [this]() { return metrics_producer(); };
        r.visit_targets = [this](const std::function<void(const target_view&)>& f) {
            if (m_prober)
                m_prober->visit(f);
            // Workers' targets live on their threads: with --engines > 1
            // the status page shows the main thread's share (man page).
        };
        r.runner = [this]() { return m_runner.get(); };
        r.allow = &m_flags.probe_allow;
        r.limits = &m_flags.probe;
        return make_routes(std::move(r));
    }

    void start_worker() {
        auto w = std::make_unique<worker>();
        worker* raw = w.get();
        const continuous_options options = continuous_options_of(m_flags);
        raw->thread = std::thread([raw, options] {
            raw->prober = std::make_unique<continuous_prober>(raw->ctx.get_executor(), options);
            raw->ctx.run();
            raw->prober.reset();
        });
        m_workers.push_back(std::move(w));
    }

    /// /metrics, streamed: the main thread's prober, then each worker's
    /// (rendered on its own thread), then the exporter's own families.
    http_body_producer metrics_producer() {
        std::vector<metrics_source> sources;
        sources.push_back({{}, [this]() -> const continuous_prober* { return m_prober.get(); }});
        for (auto& w : m_workers) {
            worker* raw = w.get();
            sources.push_back({raw->ctx.get_executor(),
                               [raw]() -> const continuous_prober* { return raw->prober.get(); }});
        }
        auto stream = std::make_shared<metrics_stream>(
            std::move(sources),
            [this](exposition& page) {
                render_own_metrics(page, m_server.stats(), m_reload_ok, m_workers.size() + 1);
            },
            [this] { return m_stopping; });
        return [stream](std::string& chunk) { return stream->next(chunk); };
    }

    void distribute(expanded_targets expanded) {
        for (const std::string& host : expanded.unresolved)
            log(log_level::warn, "host does not resolve; not pinged", {{"host", host}});
        const std::size_t parts = m_workers.size() + 1;
        std::vector<std::vector<target_spec>> split(parts);
        for (target_spec& t : expanded.targets)
            split[parts == 1 ? 0 : shard_of(t.host, static_cast<std::uint32_t>(parts))].push_back(
                std::move(t));
        log(log_level::info, "targets", {{"count", std::to_string(expanded.targets.size())}});
        if (m_prober)
            m_prober->set_targets(std::move(split[0]));
        for (std::size_t i = 1; i < parts; ++i) {
            worker* w = m_workers[i - 1].get();
            boost::asio::post(w->ctx, [w, t = std::move(split[i])]() mutable {
                if (w->prober)
                    w->prober->set_targets(std::move(t));
            });
        }
    }

    void resolve_targets() {
        if (m_stopping)
            return;
        m_resolver.resolve(m_config, m_flags.shard,
                           [this](expanded_targets t) { distribute(std::move(t)); });
    }

    void schedule_dns() {
        if (m_flags.dns_interval.count() == 0)
            return;
        m_dns_timer.expires_after(m_flags.dns_interval);
        m_dns_timer.async_wait([this](const boost::system::error_code& ec) {
            if (ec || m_stopping)
                return;
            resolve_targets();
            schedule_dns();
        });
    }

    void reload() {
        try {
            m_config = configuration_of(m_flags);
            m_reload_ok = true;
            log(log_level::info, "configuration reloaded");
            resolve_targets();
        } catch (const config_error& e) {
            m_reload_ok = false;
            log(log_level::error, "reload failed; keeping the running configuration",
                {{"err", e.what()}});
        }
    }

    void wait_for_signal() {
        m_signals.async_wait([this](const boost::system::error_code& ec, int signal) {
            if (ec)
                return;
            if (signal == SIGHUP) {
                reload();
                wait_for_signal();
                return;
            }
            shut_down(signal);
        });
    }

    /// Graceful: listeners closed, pings in flight cancelled, responses
    /// being written finish; run() returns once nothing is left.
    void shut_down(int signal) {
        log(log_level::info, "shutting down",
            {{"signal", signal == SIGTERM ? "SIGTERM" : "SIGINT"}});
        m_stopping = true;
        m_server.close();
        m_dns_timer.cancel();
        m_prober->stop();
        m_runner->stop();
        for (auto& w : m_workers) {
            worker* raw = w.get();
            boost::asio::post(raw->ctx, [raw] {
                if (raw->prober)
                    raw->prober->stop();
                raw->prober.reset();
                raw->work.reset();
            });
        }
        // The engines' drivers keep run() going: release them once stop()'s
        // completions have been delivered.
        boost::asio::post(m_ctx, [this] {
            m_prober.reset();
            m_runner.reset();
        });
    }

    exporter_flags m_flags;
    exporter_config m_config;
    boost::asio::io_context m_ctx{1};
    std::unique_ptr<continuous_prober> m_prober; ///< null once shut down
    std::unique_ptr<probe_runner> m_runner;      ///< null once shut down
    resolver m_resolver;
    http_server m_server;
    boost::asio::signal_set m_signals;
    boost::asio::steady_timer m_dns_timer;
    std::vector<std::unique_ptr<worker>> m_workers;
    bool m_reload_ok = true;
    bool m_stopping = false;
};

} // namespace

exporter_config configuration_of(const exporter_flags& flags) {
    const group_defaults defaults{flags.interval, flags.size};
    exporter_config config;
    if (!flags.config_file.empty())
        config = load_config(flags.config_file, defaults);
    if (!flags.hosts.empty()) {
        target_group g;
        g.hosts = flags.hosts;
        g.interval = flags.interval;
        g.size = flags.size;
        config.groups.push_back(std::move(g));
    }
    return config;
}

int run_exporter(const exporter_flags& flags) {
    check_sockets();
    exporter e(flags);
    return e.run();
}

} // namespace icmpengine_exporter
