// SPDX-License-Identifier: MIT
// System tests of the streamed /metrics page (tools/exporter/metrics_stream):
// the page it streams is the page render() makes, byte for byte (several
// probers: per family every prober's rows, then their totals), in chunks of
// bounded size; a reload between chunks never puts a series (or a family's
// head) on the page twice.
//
// The probers' own io_contexts are never run, so nothing is pinged and the
// counters stay put (they are set by hand through no API: all zero, which
// is enough for byte equality). A "worker" prober is touched only on a
// second thread (its source's executor), as app.cpp's --engines workers.
// The engines open sockets: this runs in a private namespace (system_main).
#include <catch2/catch.hpp>

#include "continuous.hpp"
#include "continuous_metrics.hpp"
#include "exposition_text.hpp"
#include "metrics_stream.hpp"
#include "promtool_check.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <set>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace net = boost::asio;
namespace ex = icmpengine_exporter;

using icmpengine::testing::check_with_promtool;

namespace {

/// `n` targets "h<offset>".."h<offset+n-1>", on 127.0.0.1 and ::1 in turn
/// (one label set each: `host` differs), every fifth in a labelled group.
std::vector<ex::target_spec> targets(std::size_t n, std::size_t offset = 0) {
    std::vector<ex::target_spec> out;
    out.reserve(n);
    for (std::size_t i = offset; i < offset + n; ++i) {
        ex::target_spec s;
        s.host = "h" + std::to_string(i);
        s.ip = icmpengine::ip_address::parse(i % 2 == 0 ? "127.0.0.1" : "::1");
        s.interval = std::chrono::hours(1);
        if (i % 5 == 0)
            s.labels = {{"group", "fifth"}};
        out.push_back(std::move(s));
    }
    return out;
}

ex::continuous_options options() {
    ex::continuous_options o;
    o.buckets = {5e-05,  0.0001, 0.0002, 0.0004, 0.0008, 0.0016, 0.0032, 0.0064, 0.0128,  0.0256,
                 0.0512, 0.1024, 0.2048, 0.4096, 0.8192, 1.6384, 3.2768, 6.5536, 13.1072, 26.2144};
    o.history_bins = 0;
    return o;
}

void own(ex::exposition& page) {
    ex::append_sample(page.samples(page.family("test_own", ex::exposition::kind::gauge, "Own.")),
                      "test_own", "", 1.0);
}

/// A second thread with its io_context (an --engines worker).
struct worker_thread {
    net::io_context ctx{1};
    net::executor_work_guard<net::io_context::executor_type> work{ctx.get_executor()};
    std::thread thread{[this] { ctx.run(); }};
    ~worker_thread() {
        work.reset();
        thread.join();
    }
    template <typename F>
    void run(F f) { // f() on the worker's thread, waited for
        std::promise<void> done;
        net::post(ctx, [&] {
            f();
            done.set_value();
        });
        done.get_future().get();
    }
};

/// Drives a stream to its end on `ctx`; `between(i)` runs after chunk i.
std::vector<std::string> stream_chunks(net::io_context& ctx, ex::metrics_stream& stream,
                                       const std::function<void(std::size_t)>& between = {}) {
    std::vector<std::string> chunks;
    std::string chunk;
    for (bool more = true; more;) {
        chunk.clear();
        auto f = net::co_spawn(ctx, stream.next(chunk), net::use_future);
        ctx.restart();
        ctx.run();
        more = f.get();
        chunks.push_back(chunk);
        if (between)
            between(chunks.size() - 1);
    }
    return chunks;
}

std::string join(const std::vector<std::string>& chunks) {
    std::string s;
    for (const auto& c : chunks)
        s += c;
    return s;
}

/// Every sample line (name and labels) once, every family's head once.
void check_no_duplicates(const std::string& page) {
    std::set<std::string_view> series;
    std::set<std::string_view> heads;
    std::string_view rest = page;
    while (!rest.empty()) {
        const auto nl = rest.find('\n');
        REQUIRE(nl != std::string_view::npos);
        const std::string_view line = rest.substr(0, nl);
        rest.remove_prefix(nl + 1);
        if (line.starts_with("# ")) {
            INFO(line);
            CHECK(heads.insert(line).second);
            continue;
        }
        const std::string_view key = line.substr(0, line.rfind(' '));
        INFO(key);
        CHECK(series.insert(key).second);
    }
}

} // namespace

TEST_CASE("the streamed page is render()'s byte for byte, in bounded chunks", "[metrics_stream]") {
    net::io_context main_ctx{1}; // the stream's (and main prober's) thread: this one
    net::io_context idle_ctx{1}; // the probers' engines: never run, nothing is pinged
    worker_thread worker;
    ex::continuous_prober main_prober(idle_ctx.get_executor(), options());
    std::optional<ex::continuous_prober> worker_prober;
    worker.run([&] { worker_prober.emplace(idle_ctx.get_executor(), options()); });
    const std::size_t main_n = GENERATE(0u, 1u, 3000u);
    const std::size_t worker_n = GENERATE(0u, 7u, 2500u);
    INFO("targets: main " << main_n << ", worker " << worker_n);
    main_prober.set_targets(targets(main_n));
    worker.run([&] { worker_prober->set_targets(targets(worker_n, 100000)); });

    // Per family the main prober's rows then the worker's; the prober-wide
    // families summed.
    ex::exposition expected;
    for (std::size_t f = 0; f < ex::continuous_prober::family_count(); ++f) {
        const ex::family_info info = ex::continuous_metrics::family(f);
        std::string& rows = expected.samples(expected.family(info.name, info.kind, info.help));
        main_prober.render_family_rows(rows, f, 0, main_n);
        worker.run([&] { worker_prober->render_family_rows(rows, f, 0, worker_n); });
    }
    ex::prober_totals totals;
    main_prober.add_totals(totals);
    worker.run([&] { worker_prober->add_totals(totals); });
    CHECK(totals.targets == main_n + worker_n);
    ex::render_prober_totals(expected, totals);
    own(expected);

    std::vector<ex::metrics_source> sources;
    sources.push_back({{}, [&]() -> const ex::continuous_prober* { return &main_prober; }});
    sources.push_back({worker.ctx.get_executor(),
                       [&]() -> const ex::continuous_prober* { return &*worker_prober; }});
    ex::metrics_stream stream(std::move(sources), own);
    const auto chunks = stream_chunks(main_ctx, stream);
    const std::string page = join(chunks);
    CHECK(page == expected.text());
    for (const auto& c : chunks)
        CHECK(c.size() <= 2 * ex::metrics_stream::chunk_bytes);
    if (main_n + worker_n > 1000)
        CHECK(chunks.size() > 10);
    check_no_duplicates(page);

    // One prober: render()'s page, then the own families.
    ex::exposition alone;
    main_prober.render(alone);
    own(alone);
    ex::metrics_stream single(
        {{{}, [&]() -> const ex::continuous_prober* { return &main_prober; }}}, own);
    CHECK(join(stream_chunks(main_ctx, single)) == alone.text());
    worker.run([&] { worker_prober.reset(); });
}

TEST_CASE("a reload between chunks of 10,000 targets: no series twice, promtool clean",
          "[metrics_stream]") {
    net::io_context main_ctx{1};
    net::io_context idle_ctx{1};
    worker_thread worker;
    ex::continuous_prober main_prober(idle_ctx.get_executor(), options());
    std::optional<ex::continuous_prober> worker_prober;
    worker.run([&] { worker_prober.emplace(idle_ctx.get_executor(), options()); });
    main_prober.set_targets(targets(5000));
    worker.run([&] { worker_prober->set_targets(targets(5000, 5000)); });
    std::vector<ex::metrics_source> sources;
    sources.push_back({{}, [&]() -> const ex::continuous_prober* { return &main_prober; }});
    sources.push_back({worker.ctx.get_executor(),
                       [&]() -> const ex::continuous_prober* { return &*worker_prober; }});
    ex::metrics_stream stream(std::move(sources), own);
    // After chunks 2, 5, 9...: new targets at the front, some removed, so
    // that every index names another target than before.
    std::size_t reloads = 0;
    const auto chunks = stream_chunks(main_ctx, stream, [&](std::size_t i) {
        if (i % 3 != 2)
            return;
        ++reloads;
        auto m = targets(300, 20000 + reloads * 300);
        for (auto& t : targets(5000 - 100 * reloads, 100 * reloads))
            m.push_back(std::move(t));
        main_prober.set_targets(std::move(m));
        worker.run([&] {
            auto w = targets(200, 40000 + reloads * 200);
            for (auto& t : targets(5000 - 50 * reloads, 5000 + 50 * reloads))
                w.push_back(std::move(t));
            worker_prober->set_targets(std::move(w));
        });
    });
    INFO("chunks " << chunks.size() << ", reloads " << reloads);
    CHECK(reloads >= 5);
    const std::string page = join(chunks);
    check_no_duplicates(page);
    const auto p = icmpengine::testing::parse_exposition(page);
    CHECK(p.value("test_own") == 1);
    check_with_promtool(page);
    worker.run([&] { worker_prober.reset(); });
}
