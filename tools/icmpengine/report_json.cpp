// SPDX-License-Identifier: MIT
// --json-lines: our JSON Lines output. Keys are printed in the schema's order ("event" first),
// hence nlohmann::ordered_json; absent values are null, never left out.
#include "report_json.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>

#ifndef ICMPENGINE_VERSION
#error "the build defines ICMPENGINE_VERSION (tools/meson.build)"
#endif

namespace icmpengine_cli {

using json = nlohmann::ordered_json;

namespace {

/// Names come from the command line and files: bytes that are not UTF-8
/// become U+FFFD rather than an exception (and no output).
void emit(line_output& lines, const json& j) {
    lines.out(j.dump(-1, ' ', false, json::error_handler_t::replace));
}

json ms_or_null(const std::optional<std::chrono::nanoseconds>& d) {
    return d ? json(to_ms(*d)) : json(nullptr);
}
json ms_or_null(const std::optional<ie::ping_statistics::rtt_duration>& d) {
    return d ? json(to_ms(*d)) : json(nullptr);
}

/// One target's "target" event; with -C, its RTTs too.
json target_json(const std::string& name, const ie::series_result& r, bool final, bool vector) {
    const ie::ping_statistics& st = r.statistics;
    json j = {{"event", "target"},
              {"time", unix_now()},
              {"final", final},
              {"target", name},
              {"address", r.target.to_string()},
              {"alive", r.alive()},
              {"sent", st.resolved()},
              {"received", st.received()},
              {"lost", st.timeouts()},
              {"icmp_errors", st.icmp_errors()},
              {"send_errors", st.send_errors()},
              {"cancelled", st.cancelled()},
              {"in_flight", r.in_flight},
              {"duplicates", st.duplicates()},
              {"late", r.late_replies},
              {"credited_rtt_ms", r.credited_rtt ? json(to_ms(*r.credited_rtt)) : json(nullptr)},
              {"out_of_order", st.out_of_order()},
              {"loss_percent", st.loss_fraction() * 100.0},
              {"rtt_min_ms", ms_or_null(st.rtt_min())},
              {"rtt_avg_ms", ms_or_null(st.rtt_mean())},
              {"rtt_max_ms", ms_or_null(st.rtt_max())},
              {"rtt_stddev_ms", ms_or_null(st.rtt_stddev_population())},
              {"rtt_stddev_sample_ms", ms_or_null(st.rtt_stddev_sample())}};
    if (vector) {
        json v = json::array();
        const auto history = st.rtt_history();
        const std::size_t n = std::max<std::size_t>(history.size(), r.sent);
        for (std::size_t k = 0; k < n; ++k)
            v.push_back(k < history.size() ? ms_or_null(history[k]) : json(nullptr));
        j["rtts_ms"] = std::move(v);
    }
    return j;
}

/// The "summary" event: the totals over all given targets (an address
/// given twice counts twice, as its "target" events do).
json summary_json(std::span<const given_target> given, std::span<const ie::series_result> series,
                  const run_status& run) {
    ie::ping_statistics total;
    std::size_t alive = 0;
    std::uint64_t late = 0;
    for (const given_target& g : given) {
        const ie::series_result& r = series[g.address];
        total.merge(r.statistics);
        alive += r.alive() ? 1 : 0;
        late += r.late_replies;
    }
    return {{"event", "summary"},
            {"time", unix_now()},
            {"final", run.final},
            {"interrupted", run.interrupted},
            {"elapsed_s", std::chrono::duration<double>(run.elapsed).count()},
            {"targets", given.size()},
            {"alive", alive},
            {"unreachable", given.size() - alive},
            {"unresolved", run.unresolved},
            {"sent", total.resolved()},
            {"received", total.received()},
            {"lost", total.timeouts()},
            {"icmp_errors", total.icmp_errors()},
            {"send_errors", total.send_errors()},
            {"cancelled", total.cancelled()},
            {"duplicates", total.duplicates()},
            {"late", late},
            {"out_of_order", total.out_of_order()},
            {"loss_percent", total.loss_fraction() * 100.0},
            {"rtt_min_ms", ms_or_null(total.rtt_min())},
            {"rtt_avg_ms", ms_or_null(total.rtt_mean())},
            {"rtt_max_ms", ms_or_null(total.rtt_max())},
            {"rtt_stddev_ms", ms_or_null(total.rtt_stddev_population())},
            {"exit_code", run.exit_code ? json(*run.exit_code) : json(nullptr)}};
}

} // namespace

void json_reporter::resolve_failure(const ie::target_failure& f) {
    emit(m_lines, {{"event", "error"},
                   {"time", unix_now()},
                   {"name", f.name},
                   {"reason", f.reason},
                   {"file", f.line > 0 ? json(m_settings.file) : json(nullptr)},
                   {"line", f.line}});
}

void json_reporter::start(std::size_t targets) {
    const settings& s = m_settings;
    const bool single = s.mode == run_mode::single_shot;
    emit(m_lines, {{"event", "start"},
                   {"time", unix_now()},
                   {"version", ICMPENGINE_VERSION},
                   {"mode", to_string(s.mode)},
                   {"targets", targets},
                   {"count", s.mode == run_mode::count ? json(s.count) : json(nullptr)},
                   {"retries", single ? json(s.retries) : json(nullptr)},
                   {"period_ms", single ? json(nullptr) : json(to_ms(s.period_ns))},
                   {"timeout_ms", to_ms(s.timeout_ns)},
                   {"pace_ms", to_ms(s.pace)},
                   {"payload_size", s.size}});
}

void json_reporter::ping(const ie::ping_event& e) {
    if (m_settings.quiet)
        return;
    const ie::ping_result& r = e.result;
    const bool answered = r.status != ie::ping_status::timeout &&
                          r.status != ie::ping_status::cancelled &&
                          r.status != ie::ping_status::send_error;
    const bool reply = r.status == ie::ping_status::reply;
    for (const std::string& name : m_targets.names_of[e.target])
        emit(m_lines, {{"event", "ping"},
                       {"time", unix_now()},
                       {"target", name},
                       {"address", e.series.target.to_string()},
                       {"index", e.index},
                       {"sequence", r.sequence},
                       {"status", ie::to_string(r.status)},
                       {"rtt_ms", answered ? json(to_ms(r.rtt)) : json(nullptr)},
                       {"from", answered ? json(r.from.to_string()) : json(nullptr)},
                       {"bytes", reply ? json(r.bytes) : json(nullptr)},
                       {"ttl", reply && r.ttl != 0 ? json(r.ttl) : json(nullptr)},
                       {"icmp_type", answered ? json(r.icmp_type) : json(nullptr)},
                       {"icmp_code", answered ? json(r.icmp_code) : json(nullptr)},
                       {"error", r.error ? json(r.error.message()) : json(nullptr)}});
}

void json_reporter::stray(const ie::stray_event& e) {
    if (m_settings.quiet)
        return;
    const bool duplicate = e.reply.what == ie::stray_reply::kind::duplicate;
    for (const std::string& name : m_targets.names_of[e.target])
        emit(m_lines, {{"event", "stray"},
                       {"time", unix_now()},
                       {"target", name},
                       {"address", e.series.target.to_string()},
                       {"kind", duplicate ? "duplicate" : "late"},
                       {"sequence", e.reply.sequence},
                       {"rtt_ms", e.reply.rtt ? json(to_ms(*e.reply.rtt)) : json(nullptr)},
                       {"credited", e.credited}});
}

void json_reporter::summary(std::span<const ie::series_result> series, const run_status& run) {
    for (const given_target& g : m_targets.given)
        emit(m_lines, target_json(g.name, series[g.address], run.final, m_settings.vector_output));
    emit(m_lines, summary_json(m_targets.given, series, run));
}

} // namespace icmpengine_cli
