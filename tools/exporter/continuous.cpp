// SPDX-License-Identifier: MIT
// Continuous mode: the life of one ping.
//
//  1. set_targets() gives each target a slot (index + generation: the
//     cookie of its pings), its metrics (continuous_metrics.hpp), its
//     history ring, and its engine: one per (source, tos), made on first
//     use and driven from the executor (continuous_engine.cpp). Its first
//     send comes at a phase drawn from a hash of its identity, within one
//     interval, so that 10,000 targets do not send in one burst; phases
//     lie on a 4 ms grid, so that an engine wakes at most 250 times a
//     second to send.
//  2. Each engine's one timer wakes at the earliest due send, at most once
//     per tick, and sends every target whose time has come with
//     engine::start_ping (no coroutine frame per ping); the next send is
//     due one interval after this one's due time (a schedule, not "after
//     the reply"), see impl::send for how lateness is absorbed.
//  3. The engine hands the ping's end to on_result() from inside its
//     poll(): the cookie names the target, a stale generation (the target
//     was removed) is ignored. A reply in time goes into the histogram;
//     a timeout, an ICMP error or a send error into its counter; every end
//     but a cancellation into the history ring.
//  4. Late and duplicate replies come through engine_config::on_stray,
//     routed by address to that engine's target of that address.
//  5. render() writes the counters out (continuous_metrics.cpp).
#include "continuous.hpp"

#include "continuous_engine.hpp"

#include <icmpengine/limits.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <span>
#include <stdexcept>
#include <utility>

namespace icmpengine_exporter {

namespace {

/// A send more than this late moves its target's schedule back, so that
/// two sends of a target are never closer than interval - this.
constexpr std::chrono::nanoseconds max_catch_up = std::chrono::milliseconds(1);

/// Send times lie on a grid of this step (from the prober's creation):
/// a target's phase is a multiple of it, so with an interval that is one
/// too (1 s, 100 ms...) its sends stay on the grid, and an engine's timer
/// wakes at most once per step however many targets it has: with 100,000
/// targets at 1 Hz, 250 wake-ups a second of 400 sends each.
constexpr std::chrono::nanoseconds grid = std::chrono::milliseconds(4);

/// FNV-1a over the target's identity: where in its interval it sends.
std::uint64_t identity_hash(const target_spec& s) {
    std::uint64_t h = 14695981039346656037ull;
    auto mix = [&h](std::string_view bytes) {
        for (const char c : bytes) {
            h ^= static_cast<unsigned char>(c);
            h *= 1099511628211ull;
        }
        h ^= 0xff; // separator
        h *= 1099511628211ull;
    };
    mix(s.host);
    const auto& ip = s.ip.bytes();
    mix(std::string_view(reinterpret_cast<const char*>(ip.data()), ip.size()));
    mix(s.source);
    mix(std::string_view(reinterpret_cast<const char*>(&s.tos), 1));
    for (const auto& [name, value] : s.labels) {
        mix(name);
        mix(value);
    }
    return h;
}

} // namespace

struct continuous_prober::impl final : prober_core {
    impl(boost::asio::any_io_executor ex, continuous_options opts)
        : executor(std::move(ex)), metrics(opts.buckets), options(std::move(opts)) {}

    boost::asio::any_io_executor executor;
    prober_clock::time_point origin = prober_clock::now(); ///< of the send grid
    continuous_metrics metrics;
    continuous_options options;
    std::vector<std::unique_ptr<continuous_target>> targets; ///< set_targets order
    std::vector<const target_metrics*> render_order;
    std::vector<continuous_target*> slots; ///< by slot; null = free
    std::vector<std::uint32_t> slot_generation;
    std::vector<std::uint32_t> free_slots;
    std::map<engine_key, std::shared_ptr<continuous_engine>> engines;
    std::uint64_t retired_receive_errors = 0; ///< of engines already destroyed
    std::uint64_t generation = 0;             ///< of the target set
    bool stopped = false;
    send_observer observer;

    void set_targets(std::vector<target_spec> specs);
    std::unique_ptr<continuous_target> add_target(target_spec spec, continuous_engine& engine,
                                                  prober_clock::time_point now);
    void remove_target(continuous_target& t);
    void retire(std::shared_ptr<continuous_engine> engine);
    void reindex();
    std::chrono::nanoseconds timeout_for(const target_spec& spec) const;
    void validate(const target_spec& spec) const;

    continuous_target* find(std::uint64_t cookie) const noexcept override;
    void send(continuous_target& t, prober_clock::time_point due,
              prober_clock::time_point now) override;
    void on_result(std::uint64_t cookie, const ie::ping_result& r) override;
    bool is_stopped() const noexcept override { return stopped; }
    void stop();
};

std::chrono::nanoseconds continuous_prober::impl::timeout_for(const target_spec& spec) const {
    const std::chrono::nanoseconds t =
        options.timeout > std::chrono::nanoseconds::zero() ? options.timeout : spec.interval;
    return std::min(t, ie::max_ping_timeout);
}

void continuous_prober::impl::validate(const target_spec& spec) const {
    if (spec.interval <= std::chrono::nanoseconds::zero())
        throw std::invalid_argument("continuous_prober: target " + spec.host +
                                    ": the interval must be positive");
    if (!spec.source.empty() && !ie::ip_address::try_parse(spec.source))
        throw std::invalid_argument("continuous_prober: target " + spec.host + ": source '" +
                                    spec.source + "' is not an IP address");
    ie::check_ping_arguments(spec.ip, timeout_for(spec), ie::ping_options{spec.size});
}

continuous_target* continuous_prober::impl::find(std::uint64_t cookie) const noexcept {
    const auto slot = static_cast<std::uint32_t>(cookie);
    const auto generation = static_cast<std::uint32_t>(cookie >> 32);
    if (slot >= slots.size() || slots[slot] == nullptr || slot_generation[slot] != generation)
        return nullptr;
    return slots[slot];
}

void continuous_prober::impl::send(continuous_target& t, prober_clock::time_point due,
                                   prober_clock::time_point now) {
    // On schedule: due + interval. A wake-up late by more than
    // max_catch_up (a loaded machine, or a tick that coalesced sends)
    // moves the schedule back by the excess instead of sending the next
    // one early: a target is never pinged faster than its interval allows
    // (interval - max_catch_up at the closest, for intervals of 2 ms and
    // more).
    const std::chrono::nanoseconds interval = t.spec.interval;
    const std::chrono::nanoseconds catch_up = std::min(max_catch_up, interval / 2);
    t.next_send = std::max(due + interval, now + interval - catch_up);
    t.last_ticket = t.engine->engine().start_ping(t.spec.ip, timeout_for(t.spec), *t.engine,
                                                  t.cookie(), ie::ping_options{t.spec.size});
    ++t.metrics.sent;
    ++t.metrics.in_flight;
    if (observer)
        observer(t.index, now);
}

void continuous_prober::impl::on_result(std::uint64_t cookie, const ie::ping_result& r) {
    continuous_target* t = find(cookie);
    if (t == nullptr)
        return; // removed since: its counters are gone
    target_metrics& m = t->metrics;
    if (m.in_flight > 0)
        --m.in_flight;
    std::optional<std::chrono::nanoseconds> rtt;
    switch (r.status) {
    case ie::ping_status::reply:
        metrics.observe_reply(m, r.rtt, r.ttl);
        rtt = r.rtt;
        break;
    case ie::ping_status::timeout:
        ++m.timeouts;
        break;
    case ie::ping_status::unreachable:
        ++m.icmp_errors[static_cast<std::size_t>(icmp_error_type::unreachable)];
        break;
    case ie::ping_status::time_exceeded:
        ++m.icmp_errors[static_cast<std::size_t>(icmp_error_type::time_exceeded)];
        break;
    case ie::ping_status::packet_too_big:
        ++m.icmp_errors[static_cast<std::size_t>(icmp_error_type::packet_too_big)];
        break;
    case ie::ping_status::parameter_problem:
        ++m.icmp_errors[static_cast<std::size_t>(icmp_error_type::parameter_problem)];
        break;
    case ie::ping_status::send_error:
        ++m.send_errors;
        break;
    case ie::ping_status::cancelled:
        ++m.cancelled;
        return; // not a loss: we ended it
    }
    if (t->history)
        t->history->record(std::chrono::system_clock::now(), rtt);
}

std::unique_ptr<continuous_target>
continuous_prober::impl::add_target(target_spec spec, continuous_engine& engine,
                                    prober_clock::time_point now) {
    auto t = std::make_unique<continuous_target>();
    t->metrics = metrics.make_target(spec);
    if (options.history_bins > 0)
        t->history.emplace(options.history_bins, options.history_step);
    if (free_slots.empty()) {
        t->slot = static_cast<std::uint32_t>(slots.size());
        slots.push_back(nullptr);
        slot_generation.push_back(0);
    } else {
        t->slot = free_slots.back();
        free_slots.pop_back();
    }
    t->generation = slot_generation[t->slot];
    slots[t->slot] = t.get();
    t->engine = &engine;
    // The first send: the next grid point, plus a phase within the interval
    // (on the grid when the interval is at least a step).
    const std::uint64_t hash = identity_hash(spec);
    const auto interval = static_cast<std::uint64_t>(spec.interval.count());
    const auto step = static_cast<std::uint64_t>(grid.count());
    const auto phase = std::chrono::nanoseconds(interval >= step ? hash % (interval / step) * step
                                                                 : hash % interval);
    const auto since = static_cast<std::uint64_t>((now - origin).count());
    t->next_send = origin + std::chrono::nanoseconds((since + step - 1) / step * step) + phase;
    t->spec = std::move(spec);
    engine.schedule(*t);
    return t;
}

void continuous_prober::impl::remove_target(continuous_target& t) {
    // Its pings in flight end as cancelled; their results find the slot's
    // generation moved on and are dropped. (Only the last ping can be
    // cancelled by ticket; an earlier one still in flight, when the timeout
    // is longer than the interval, ends by itself and is dropped too.)
    if (t.metrics.in_flight > 0)
        (void)t.engine->engine().cancel(t.last_ticket);
    slots[t.slot] = nullptr;
    ++slot_generation[t.slot];
    free_slots.push_back(t.slot);
}

void continuous_prober::impl::retire(std::shared_ptr<continuous_engine> engine) {
    retired_receive_errors += engine->engine().stats().receive_overruns;
    engine->owner_gone();
    // Destroyed from a handler of its own, never from inside its poll()
    // (set_targets may be called from anywhere on the executor's thread).
    boost::asio::post(executor, [e = std::move(engine)]() mutable { e.reset(); });
}

void continuous_prober::impl::reindex() {
    render_order.clear();
    render_order.reserve(targets.size());
    for (auto& [key, e] : engines)
        e->by_address.clear();
    for (std::size_t i = 0; i < targets.size(); ++i) {
        continuous_target& t = *targets[i];
        t.index = i;
        render_order.push_back(&t.metrics);
        t.engine->by_address.emplace_back(t.spec.ip, &t);
    }
    for (auto& [key, e] : engines) {
        std::stable_sort(e->by_address.begin(), e->by_address.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
        if (!stopped)
            e->arm();
    }
}

void continuous_prober::impl::set_targets(std::vector<target_spec> specs) {
    // Everything that can fail first, before anything changes: the specs,
    // then the engines the new set needs (an engine's ring is made here).
    std::set<target_spec::identity> seen;
    std::vector<target_spec> unique;
    unique.reserve(specs.size());
    for (target_spec& s : specs) {
        validate(s);
        if (seen.insert(s.key()).second)
            unique.push_back(std::move(s));
    }
    std::map<engine_key, std::shared_ptr<continuous_engine>> next_engines;
    for (const target_spec& s : unique) {
        engine_key key{s.source, s.tos};
        if (next_engines.contains(key))
            continue;
        const auto it = engines.find(key);
        auto engine =
            it != engines.end()
                ? it->second
                : std::make_shared<continuous_engine>(*this, executor, key, options.engine);
        next_engines.emplace(std::move(key), std::move(engine));
    }
    // Kept targets keep their state (counters, history, schedule); a
    // change of interval or size applies from their next send.
    std::map<target_spec::identity, std::unique_ptr<continuous_target>> old;
    for (auto& t : targets)
        old.emplace(t->spec.key(), std::move(t));
    std::vector<std::unique_ptr<continuous_target>> next;
    next.reserve(unique.size());
    const prober_clock::time_point now = prober_clock::now();
    for (target_spec& s : unique) {
        if (const auto it = old.find(s.key()); it != old.end()) {
            next.push_back(std::move(it->second));
            old.erase(it);
            next.back()->spec = std::move(s);
            continue;
        }
        continuous_engine& engine = *next_engines.at(engine_key{s.source, s.tos});
        next.push_back(add_target(std::move(s), engine, now));
    }
    for (auto& [key, t] : old)
        remove_target(*t);
    for (auto& [key, e] : engines)
        if (!next_engines.contains(key))
            retire(e);
    engines = std::move(next_engines);
    targets = std::move(next);
    ++generation;
    reindex();
}

void continuous_prober::impl::stop() {
    stopped = true;
    for (auto& [key, e] : engines)
        e->stop();
}

continuous_prober::continuous_prober(boost::asio::any_io_executor executor,
                                     continuous_options options)
    : m_impl(std::make_unique<impl>(std::move(executor), std::move(options))) {}

continuous_prober::~continuous_prober() {
    m_impl->stop();
    for (auto& [key, e] : m_impl->engines)
        e->owner_gone();
    m_impl->engines.clear(); // the driver first, then the engine (continuous_engine)
}

void continuous_prober::set_targets(std::vector<target_spec> targets) {
    m_impl->set_targets(std::move(targets));
}

void continuous_prober::render(exposition& page) const {
    for (std::size_t f = 0; f < family_count(); ++f) {
        const family_info info = continuous_metrics::family(f);
        render_family_rows(page.samples(page.family(info.name, info.kind, info.help)), f, 0,
                           m_impl->render_order.size());
    }
    render_prober_families(page);
}

std::uint64_t continuous_prober::generation() const noexcept {
    return m_impl->generation;
}

std::size_t continuous_prober::family_count() noexcept {
    return continuous_metrics::family_count();
}

void continuous_prober::render_family_head(std::string& out, std::size_t f) {
    const family_info info = continuous_metrics::family(f);
    append_family_head(out, info.name, info.kind, info.help);
}

void continuous_prober::render_family_rows(std::string& out, std::size_t f, std::size_t first,
                                           std::size_t count) const {
    const std::span<const target_metrics* const> all = m_impl->render_order;
    if (first >= all.size())
        return;
    m_impl->metrics.render_rows(out, f, all.subspan(first, std::min(count, all.size() - first)));
}

void continuous_prober::render_prober_families(exposition& page) const {
    prober_totals totals;
    add_totals(totals);
    render_prober_totals(page, totals);
}

void continuous_prober::add_totals(prober_totals& totals) const {
    totals.receive_errors += m_impl->retired_receive_errors;
    totals.targets += m_impl->targets.size();
    for (const auto& [key, e] : m_impl->engines) {
        const ie::engine_stats stats = e->engine().stats();
        totals.receive_errors += stats.receive_overruns;
        const std::string_view label_set = e->label_set();
        auto it = std::find_if(totals.engines.begin(), totals.engines.end(),
                               [&](const auto& row) { return row.first == label_set; });
        if (it == totals.engines.end())
            it = totals.engines.insert(it, {std::string(label_set), ie::engine_stats{}});
        add_engine_stats(it->second, stats);
    }
}

void render_prober_totals(exposition& page, const prober_totals& totals) {
    std::vector<engine_metrics_row> rows;
    rows.reserve(totals.engines.size());
    for (const auto& [label_set, stats] : totals.engines)
        rows.push_back({label_set, stats});
    render_prober_metrics(page, rows, totals.receive_errors, totals.targets);
}

void continuous_prober::visit(const std::function<void(const target_view&)>& f) const {
    for (const auto& t : m_impl->targets)
        f(target_view{&t->spec, t->metrics.sent, t->metrics.received,
                      t->history ? &*t->history : nullptr});
}

std::size_t continuous_prober::size() const noexcept {
    return m_impl->targets.size();
}

void continuous_prober::stop() {
    m_impl->stop();
}

void continuous_prober::set_send_observer(send_observer f) {
    m_impl->observer = std::move(f);
}

} // namespace icmpengine_exporter
