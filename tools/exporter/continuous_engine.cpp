// SPDX-License-Identifier: MIT
// One engine of continuous mode and the scheduler of its targets.
//
// Scheduling costs no coroutine frame and no timer per target: the due
// sends sit in a min-heap, and one boost::asio::steady_timer per engine
// wakes at the earliest of them, but at most once per tick (1 ms): with
// 100,000 targets at 1 Hz that is ~1,000 wake-ups a second, each sending
// the ~100 targets that came due, and the engine submits them in batches.
// Sends are started from the timer's handler (outside the engine's poll()):
// the engine's descriptor then becomes readable and the driver's poll()
// submits them.
#include "continuous_engine.hpp"

#include <algorithm>

namespace icmpengine_exporter {

namespace {

/// The scheduler wakes at most once per tick.
constexpr std::chrono::nanoseconds tick = std::chrono::milliseconds(1);

} // namespace

ie::engine_config continuous_engine::make_config(const ie::engine_config& base,
                                                 const engine_key& key, continuous_engine* self) {
    ie::engine_config config = base;
    // Our engine sets the DSCP (the TOS byte's upper six bits); the two ECN
    // bits of a configured `tos` are dropped (smokeping_prober sets the
    // whole byte).
    config.dscp = static_cast<std::uint8_t>(key.tos >> 2);
    if (!key.source.empty()) {
        const ie::ip_address source = ie::ip_address::parse(key.source);
        if (source.is_v4())
            config.source_v4 = source;
        else
            config.source_v6 = source;
    }
    config.on_stray = [self](const ie::stray_reply& stray) { self->on_stray(stray); };
    return config;
}

continuous_engine::continuous_engine(prober_core& owner,
                                     const boost::asio::any_io_executor& executor,
                                     const engine_key& key, const ie::engine_config& base)
    : m_owner(&owner), m_key(key), m_label_set(engine_label_set(key.source, key.tos)),
      m_engine(make_config(base, key, this)), m_timer(executor) {
    m_driver.emplace(executor, m_engine);
}

continuous_engine::~continuous_engine() {
    m_owner = nullptr;
    m_engine.stop();
    m_driver.reset();
}

void continuous_engine::schedule(const continuous_target& t) {
    m_heap.push_back({t.next_send, t.cookie()});
    std::push_heap(m_heap.begin(), m_heap.end(), later{});
}

void continuous_engine::arm() {
    if (m_owner == nullptr || m_owner->is_stopped() || m_heap.empty())
        return;
    const prober_clock::time_point when = std::max(m_heap.front().due, m_last_wake + tick);
    if (when >= m_armed_for)
        return; // the timer is set for then or earlier already
    m_armed_for = when;
    m_timer.expires_at(when);
    m_timer.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
        if (ec)
            return; // cancelled: re-armed, stopped or destroyed
        if (const std::shared_ptr<continuous_engine> self = weak.lock())
            self->on_timer();
    });
}

void continuous_engine::on_timer() {
    m_armed_for = prober_clock::time_point::max();
    if (m_owner == nullptr || m_owner->is_stopped())
        return;
    const prober_clock::time_point now = prober_clock::now();
    m_last_wake = now;
    while (!m_heap.empty() && m_heap.front().due <= now) {
        std::pop_heap(m_heap.begin(), m_heap.end(), later{});
        const due_send d = m_heap.back();
        m_heap.pop_back();
        continuous_target* t = m_owner->find(d.cookie);
        if (t == nullptr)
            continue;                  // removed
        m_owner->send(*t, d.due, now); // sets t->next_send > now
        schedule(*t);
    }
    arm();
}

void continuous_engine::stop() {
    m_timer.cancel();
    m_armed_for = prober_clock::time_point::max();
    m_engine.stop();
}

void continuous_engine::owner_gone() {
    m_timer.cancel();
    m_armed_for = prober_clock::time_point::max();
    m_owner = nullptr;
    m_engine.stop();
}

void continuous_engine::on_ping_result(std::uint64_t cookie, const ie::ping_result& result) {
    if (m_owner != nullptr)
        m_owner->on_result(cookie, result);
}

void continuous_engine::on_stray(const ie::stray_reply& stray) {
    if (m_owner == nullptr)
        return;
    // A stray ICMP error comes from a router, not from a target: it finds
    // no target here (the engine counts it in late_replies all the same).
    const auto it = std::lower_bound(by_address.begin(), by_address.end(), stray.from,
                                     [](const std::pair<ie::ip_address, continuous_target*>& a,
                                        const ie::ip_address& b) { return a.first < b; });
    if (it == by_address.end() || it->first != stray.from)
        return;
    target_metrics& m = it->second->metrics;
    if (stray.what == ie::stray_reply::kind::duplicate)
        ++m.duplicates;
    else
        ++m.late_replies;
}

} // namespace icmpengine_exporter
