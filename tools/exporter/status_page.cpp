// SPDX-License-Identifier: MIT
// The status page: a header, a table of every target (worst first), the
// loss colour legend, and smoke graphs (smoke_graph.cpp) for the worst
// max_graphs targets. One self-contained HTML5 document: inline CSS, no
// script, every configured string escaped (html.hpp).
#include "status_page.hpp"

#include "html.hpp"
#include "smoke_graph.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <vector>

namespace icmpengine_exporter {

namespace {

// The SVG's classes (smoke_graph.cpp) and the page's. .l0 .. .l7 colour
// both the medians' strokes and the legend's swatches.
constexpr const char* style_sheet =
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1d1d1f;"
    "margin:0 auto;max-width:1360px;padding:0 20px 24px;background:#fff}"
    "header{border-bottom:1px solid #ddd;padding:14px 0 10px;margin-bottom:14px}"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:22px 0 8px}"
    ".meta{color:#555;margin:0}nav{margin-top:6px;color:#555}nav a{margin-right:1.2em}"
    "code{font:12.5px ui-monospace,monospace;background:#f3f3f3;padding:1px 4px;border-radius:3px}"
    "table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}"
    "th,td{padding:4px 10px;border-bottom:1px solid #e8e8e8;text-align:left;vertical-align:top}"
    "th{background:#f5f5f7;font-weight:600}td.n,th.n{text-align:right;white-space:nowrap}"
    "td.ip{font-family:ui-monospace,monospace;font-size:12.5px}"
    "td.lb{color:#555;font-size:12.5px}a{color:#0a58ca;text-decoration:none}"
    "a:hover{text-decoration:underline}"
    ".sw{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px;"
    "border:1px solid rgba(0,0,0,.25);vertical-align:-1px}td .sw{margin-left:0}"
    ".legend{color:#444;margin:4px 0 12px}"
    ".graphs{display:grid;grid-template-columns:repeat(auto-fill,minmax(600px,1fr));gap:14px}"
    "figure{margin:0;border:1px solid #e2e2e2;border-radius:6px;padding:8px 10px 4px}"
    "figcaption{margin-bottom:2px;overflow-wrap:anywhere}figcaption .ip,figcaption .st{color:#555}"
    "svg{display:block;width:100%;height:auto}svg text{font:11px sans-serif;fill:#555}"
    ".gl{fill:none;stroke:#ececec}.ax{fill:none;stroke:#aaa}"
    ".s1{fill:none;stroke:#e3e3e3;background:#e3e3e3}.s2{fill:none;stroke:#c4c4c4;"
    "background:#c4c4c4}.s3{fill:none;stroke:#9d9d9d;background:#9d9d9d}"
    ".m{fill:none;stroke-width:2}"
    ".l0{stroke:#26ff00;background:#26ff00}.l1{stroke:#00b8ff;background:#00b8ff}"
    ".l2{stroke:#0059ff;background:#0059ff}.l3{stroke:#5e00ff;background:#5e00ff}"
    ".l4{stroke:#7e00ff;background:#7e00ff}.l5{stroke:#dd00ff;background:#dd00ff}"
    ".l6{stroke:#ff0000;background:#ff0000}.l7{fill:none;stroke:#ffd0d0;background:#ffd0d0}"
    "footer{margin-top:24px;color:#777;font-size:12.5px}";

struct row {
    const target_view* target;
    history_bin window;
    bool has_data;
    double loss; // fraction of the window's pings, when has_data
};

// Worst first: targets with pings in the window by loss (highest first),
// then those without; then by host and address.
std::vector<row> sorted_rows(std::span<const target_view> targets,
                             std::chrono::system_clock::time_point now) {
    std::vector<row> rows;
    rows.reserve(targets.size());
    for (const target_view& t : targets) {
        row r{&t, {}, false, 0.0};
        if (t.history != nullptr)
            r.window = t.history->summary(now);
        r.has_data = r.window.sent > 0;
        if (r.has_data)
            r.loss = 1.0 - static_cast<double>(r.window.received) / r.window.sent;
        rows.push_back(r);
    }
    std::stable_sort(rows.begin(), rows.end(), [](const row& a, const row& b) {
        if (a.has_data != b.has_data)
            return a.has_data;
        if (a.loss != b.loss)
            return a.loss > b.loss;
        const std::string& ha = a.target->spec ? a.target->spec->host : std::string();
        const std::string& hb = b.target->spec ? b.target->spec->host : std::string();
        if (ha != hb)
            return ha < hb;
        return a.target->spec && b.target->spec && a.target->spec->ip < b.target->spec->ip;
    });
    return rows;
}

std::string format_loss(const row& r) {
    if (!r.has_data)
        return "&#8212;";
    const html::loss_colour& c =
        html::loss_colour_for(r.window.sent, r.window.sent - r.window.received);
    const double pct = 100.0 * r.loss;
    return fmt::format(R"(<i class="sw {}"></i>{} %)", c.css_class,
                       pct == 0.0 || pct >= 10.0 ? fmt::format("{:.0f}", pct)
                                                 : fmt::format("{:.1f}", pct));
}

std::string window_text(std::span<const target_view> targets) {
    for (const target_view& t : targets)
        if (t.history != nullptr) {
            const auto minutes =
                static_cast<long long>(t.history->capacity()) * t.history->step().count() / 60;
            return minutes >= 180 ? fmt::format("{} h", minutes / 60)
                                  : fmt::format("{} min", std::max(1LL, minutes));
        }
    return "60 min";
}

// host, then the extra labels and the non-default source and tos.
void append_labels(std::string& out, const target_spec& spec) {
    bool first = true;
    auto one = [&](std::string_view name, std::string_view value) {
        out += first ? "" : ", ";
        first = false;
        html::append_escaped(out, name);
        out += '=';
        html::append_escaped(out, value);
    };
    for (const auto& [name, value] : spec.labels)
        one(name, value);
    if (!spec.source.empty())
        one("source", spec.source);
    if (spec.tos != 0)
        one("tos", std::to_string(spec.tos));
}

void append_header(std::string& out, std::size_t count, std::chrono::system_clock::time_point now,
                   const std::string& window, const status_page_options& options) {
    const std::time_t tt = std::chrono::system_clock::to_time_t(now);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    out += "<header><h1>";
    html::append_escaped(out, options.title);
    out += "</h1><p class=\"meta\">";
    if (!options.version.empty()) {
        out += "version ";
        html::append_escaped(out, options.version);
        out += " &#183; ";
    }
    out += fmt::format("{} target{} &#183; loss and RTT over the last {} &#183; "
                       "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC</p><nav><a href=\"",
                       count, count == 1 ? "" : "s", window, tm.tm_year + 1900, tm.tm_mon + 1,
                       tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    html::append_escaped(out, options.metrics_path);
    out += "\">Metrics</a>Probe one host: <code>/probe?target=127.0.0.1&amp;count=5</code> "
           "(blackbox_exporter&#8217;s ICMP probe, hosts in <code>--probe.allow</code>)</nav>"
           "</header>";
}

void append_table(std::string& out, const std::vector<row>& rows, std::size_t graphs,
                  std::size_t max_rows) {
    out += "<section><h2>Targets</h2><table><thead><tr><th>Host</th><th>Address</th>"
           "<th>Labels</th><th class=\"n\">Loss</th><th class=\"n\">Median ms</th>"
           "<th class=\"n\">p90 ms</th><th class=\"n\">Max ms</th>"
           "<th class=\"n\" title=\"echo requests sent since the target was added\">Sent</th>"
           "</tr></thead><tbody>";
    const std::size_t shown = std::min(rows.size(), max_rows);
    for (std::size_t i = 0; i < shown; ++i) {
        const row& r = rows[i];
        const target_spec* spec = r.target->spec;
        out += "<tr><td>";
        if (i < graphs)
            out += fmt::format("<a href=\"#g{}\">", i);
        if (spec != nullptr)
            html::append_escaped(out, spec->host);
        out += i < graphs ? "</a></td><td class=\"ip\">" : "</td><td class=\"ip\">";
        if (spec != nullptr)
            html::append_escaped(out, spec->ip.to_string());
        out += "</td><td class=\"lb\">";
        if (spec != nullptr)
            append_labels(out, *spec);
        out += "</td><td class=\"n\">" + format_loss(r) + "</td>";
        for (const std::size_t q : {3, 5, 6})
            out += "<td class=\"n\">" +
                   (r.window.received > 0 ? html::format_ms(r.window.rtt[q]) : "&#8212;") + "</td>";
        out += fmt::format("<td class=\"n\">{}</td></tr>", r.target->sent);
    }
    out += "</tbody></table>";
    if (shown < rows.size())
        out += fmt::format("<p>The worst {} of {} targets; the {} others lost no more.</p>", shown,
                           rows.size(), rows.size() - shown);
    out += "</section>";
}

void append_legend(std::string& out) {
    out += "<p class=\"legend\">Per bin: the median RTT, coloured by the pings lost "
           "(of 20, as SmokePing counts):";
    for (const html::loss_colour& c : html::loss_colours)
        out += fmt::format(R"(<i class="sw {}"></i>{})", c.css_class, c.label);
    out += "; behind it the spread of RTTs:<i class=\"sw s1\"></i>min&#8211;max"
           "<i class=\"sw s2\"></i>p10&#8211;p90<i class=\"sw s3\"></i>p25&#8211;p75. "
           "Bins without pings are left empty.</p>";
}

void append_graph(std::string& out, const row& r, std::size_t id,
                  std::chrono::system_clock::time_point now) {
    const target_spec* spec = r.target->spec;
    const std::string host = spec ? spec->host : std::string();
    const std::string ip = spec ? spec->ip.to_string() : std::string();
    out += fmt::format("<figure id=\"g{}\"><figcaption><b>", id);
    html::append_escaped(out, host);
    out += "</b> <span class=\"ip\">";
    html::append_escaped(out, ip);
    out += "</span> <span class=\"st\">&#183; loss " + format_loss(r);
    if (r.window.received > 0)
        out += " &#183; median " + html::format_ms(r.window.rtt[3]) + " ms";
    out += "</span></figcaption>";
    smoke_graph_input in;
    const std::string title = host + " (" + ip + "): RTT and loss per " +
                              std::to_string(r.target->history->step().count()) + " s";
    in.title = title;
    in.bins = r.target->history->bins(now);
    in.capacity = r.target->history->capacity();
    in.step = r.target->history->step();
    append_smoke_graph(out, in, id);
    out += "</figure>";
}

} // namespace

std::string render_status_page(std::span<const target_view> targets,
                               std::chrono::system_clock::time_point now,
                               const status_page_options& options) {
    const std::vector<row> rows = sorted_rows(targets, now);
    std::size_t graphs = 0;
    while (graphs < rows.size() && graphs < options.max_graphs &&
           rows[graphs].target->history != nullptr)
        ++graphs;
    std::string out;
    out.reserve(4096 + std::min(rows.size(), options.max_rows) * 300 + graphs * 5000);
    out += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
           "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>";
    html::append_escaped(out, options.title);
    out += fmt::format(" &#8212; {} target{}</title><style>", rows.size(),
                       rows.size() == 1 ? "" : "s");
    out += style_sheet;
    out += "</style></head><body>";
    append_header(out, rows.size(), now, window_text(targets), options);
    out += "<main>";
    if (rows.empty()) {
        out += "<p>No targets. Give hosts on the command line or in <code>--config.file</code>"
               ".</p>";
    } else {
        append_table(out, rows, graphs, options.max_rows);
        out += fmt::format("<section><h2>Smoke graphs</h2>");
        if (graphs < rows.size())
            out += fmt::format("<p>The worst {} of {} targets.</p>", graphs, rows.size());
        append_legend(out);
        out += "<div class=\"graphs\">";
        for (std::size_t i = 0; i < graphs; ++i)
            append_graph(out, rows[i], i, now);
        out += "</div></section>";
    }
    out += "</main><footer>";
    html::append_escaped(out, options.title);
    if (!options.version.empty()) {
        out += ' ';
        html::append_escaped(out, options.version);
    }
    out += " &#183; icmpengine</footer></body></html>\n";
    return out;
}

} // namespace icmpengine_exporter
