// SPDX-License-Identifier: MIT
// render_status_page (tools/exporter/status_page.hpp): hostile strings
// escaped, never a script, a table row per target and a graph per target
// up to max_graphs (worst first), a sensible empty page, a bounded size.
#include <catch2/catch.hpp>

#include "html.hpp"
#include "status_page.hpp"

#include <deque>
#include <string>
#include <vector>

using namespace icmpengine_exporter;
using namespace std::chrono_literals;
using clock_type = std::chrono::system_clock;

namespace {

const clock_type::time_point t0 = clock_type::time_point(std::chrono::seconds(1'700'000'040));
const clock_type::time_point now = t0 + 60min - 1s;

std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
        ++n;
    return n;
}

// Owns what target_views point to.
struct fleet {
    std::deque<target_spec> specs;
    std::deque<history_ring> rings;
    std::vector<target_view> views;

    // One ping a second for the last hour; `loss_every` > 0 loses every n-th.
    void add(std::string host, std::string ip, int loss_every = 0,
             std::chrono::microseconds rtt = 1000us, label_list labels = {}) {
        target_spec& s = specs.emplace_back();
        s.host = std::move(host);
        s.ip = icmpengine::ip_address::parse(ip);
        s.labels = std::move(labels);
        history_ring& h = rings.emplace_back();
        std::uint64_t sent = 0;
        std::uint64_t received = 0;
        for (int i = 0; i < 3600; ++i) {
            const bool lost = loss_every > 0 && i % loss_every == 0;
            h.record(t0 + std::chrono::seconds(i),
                     lost ? std::nullopt
                          : std::optional<std::chrono::nanoseconds>(rtt + (i % 7) * 10us));
            ++sent;
            received += lost ? 0 : 1;
        }
        views.push_back({&s, sent, received, &h});
    }
};

} // namespace

TEST_CASE("status page: hostile strings are escaped and no script appears", "[status_page]") {
    fleet f;
    f.add("<script>alert(1)</script>", "127.0.0.1", 0, 1000us,
          {{"a\"b", "x' onload='y"}, {"amp", "R&D <b>"}});
    f.add("\"><img src=x onerror=alert(2)>", "::1");
    status_page_options o;
    o.title = "<script>t</script> & \"co\"";
    o.version = "1.0<script>";
    o.metrics_path = "/m\"><script>x</script>";
    const std::string page = render_status_page(f.views, now, o);
    CHECK(page.find("<script") == std::string::npos);
    CHECK(page.find("<SCRIPT") == std::string::npos);
    CHECK(page.find("<img") == std::string::npos);
    CHECK(page.find("onload='") == std::string::npos);
    CHECK(page.find("&lt;script&gt;alert(1)&lt;/script&gt;") != std::string::npos);
    CHECK(page.find("a&quot;b=x&#39; onload=&#39;y") != std::string::npos);
    CHECK(page.find("amp=R&amp;D &lt;b&gt;") != std::string::npos);
    CHECK(page.find("href=\"/m&quot;&gt;&lt;script&gt;x&lt;/script&gt;\"") != std::string::npos);
    CHECK(page.find("<title>&lt;script&gt;t&lt;/script&gt; &amp; &quot;co&quot;") !=
          std::string::npos);
}

TEST_CASE("status page: escaping covers every special character", "[status_page]") {
    std::string out;
    html::append_escaped(out, "a<b>c&d\"e'f");
    CHECK(out == "a&lt;b&gt;c&amp;d&quot;e&#39;f");
}

TEST_CASE("status page: a page is a whole HTML5 document without script", "[status_page]") {
    fleet f;
    f.add("a.example", "192.0.2.1");
    const std::string page = render_status_page(f.views, now, {});
    CHECK(page.rfind("<!DOCTYPE html>\n<html lang=\"en\">", 0) == 0);
    CHECK(page.find("<meta charset=\"utf-8\">") != std::string::npos);
    CHECK(page.find("<title>icmpengine-exporter") != std::string::npos);
    CHECK(page.find("href=\"/metrics\"") != std::string::npos);
    CHECK(page.find("/probe?target=") != std::string::npos);
    CHECK(page.find("<script") == std::string::npos);
    for (const char* handler : {"onload", "onclick", "onerror", "onmouseover"})
        CHECK(page.find(handler) == std::string::npos);
    CHECK(count(page, "<svg") == 1);
    CHECK(count(page, "</svg>") == 1);
    CHECK(count(page, "<title") == 2); // the page's and the graph's
    CHECK(page.substr(page.size() - 8) == "</html>\n");
}

TEST_CASE("status page: a row per target, a graph per target up to max_graphs, worst first",
          "[status_page]") {
    fleet f;
    f.add("steady.example", "192.0.2.1");
    f.add("lossy.example", "192.0.2.2", 2); // 50 % loss
    f.add("bit-lossy.example", "192.0.2.3", 20);
    f.add("also-steady.example", "192.0.2.4");
    status_page_options o;
    o.max_graphs = 3;
    const std::string page = render_status_page(f.views, now, o);
    CHECK(count(page, "<tr><td>") == 4);
    CHECK(count(page, "<svg") == 3);
    CHECK(count(page, "<figure id=\"g") == 3);
    CHECK(page.find("The worst 3 of 4 targets") != std::string::npos);
    // Worst first, then by host.
    const auto lossy = page.find("lossy.example");
    const auto bit = page.find("bit-lossy.example");
    const auto also = page.find("also-steady.example");
    const auto steady = page.find(">steady.example");
    CHECK(lossy < bit);
    CHECK(bit < also);
    CHECK(also < steady);
    CHECK(page.find("50 %") != std::string::npos);
    // The 50 % one's medians are in SmokePing's 10/20 colour, the steady ones' green.
    CHECK(page.find("class=\"m l5\"") != std::string::npos);
    CHECK(page.find("class=\"m l0\"") != std::string::npos);
    // Only the graphed targets link to their graph.
    CHECK(count(page, "<a href=\"#g") == 3);
}

TEST_CASE("status page: a dead target is drawn as lost bins, a new one as gaps", "[status_page]") {
    fleet f;
    f.add("dead.example", "192.0.2.9", 1); // every ping lost
    target_spec fresh;
    fresh.host = "fresh.example";
    history_ring empty;
    f.views.push_back({&fresh, 0, 0, &empty});
    const std::string page = render_status_page(f.views, now, {});
    CHECK(page.find("class=\"l7\"") != std::string::npos); // all-lost bins
    CHECK(page.find("100 %") != std::string::npos);
    CHECK(page.find("class=\"m ") == std::string::npos); // no median anywhere
    CHECK(count(page, "<svg") == 2);
    CHECK(count(page, "<tr><td>") == 2);
    CHECK(page.find("dead.example") < page.find("fresh.example"));
}

TEST_CASE("status page: zero targets is a sensible page", "[status_page]") {
    const std::string page = render_status_page({}, now, {});
    CHECK(page.find("<!DOCTYPE html>") == 0);
    CHECK(page.find("0 targets") != std::string::npos);
    CHECK(page.find("No targets") != std::string::npos);
    CHECK(page.find("<svg") == std::string::npos);
    CHECK(page.find("<table") == std::string::npos);
    CHECK(page.find("</html>") != std::string::npos);
}

TEST_CASE("status page: 200 graphs stay under a megabyte", "[status_page]") {
    fleet f;
    for (int i = 0; i < 300; ++i)
        f.add("host-" + std::to_string(i) + ".example.net",
              "10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256), i % 13,
              std::chrono::microseconds(500 + 97 * i), {{"site", "dc" + std::to_string(i % 5)}});
    const std::string page = render_status_page(f.views, now, {});
    INFO("page bytes: " << page.size());
    CHECK(count(page, "<svg") == 200);
    CHECK(count(page, "<tr><td>") == 300);
    CHECK(page.size() < 1'000'000);
}

TEST_CASE("status page: past max_rows only the worst targets get a row", "[status_page]") {
    fleet f;
    for (int i = 0; i < 30; ++i)
        f.add("h" + std::to_string(i), "10.1.0." + std::to_string(i + 1), i == 17 ? 2 : 0);
    status_page_options o;
    o.max_rows = 10;
    o.max_graphs = 5;
    const std::string page = render_status_page(f.views, now, o);
    CHECK(count(page, "<tr><td>") == 10);
    CHECK(count(page, "<svg") == 5);
    CHECK(page.find("The worst 10 of 30 targets; the 20 others lost no more.") !=
          std::string::npos);
    CHECK(page.find(">h17<") <
          page.find("<tr><td>", page.find("<tr><td>") + 1)); // the lossy one first
}

TEST_CASE("status page: SmokePing's loss colours", "[status_page]") {
    CHECK(std::string(html::loss_colour_for(20, 0).css_class) == "l0");
    CHECK(std::string(html::loss_colour_for(20, 1).css_class) == "l1");
    CHECK(std::string(html::loss_colour_for(20, 4).css_class) == "l4");
    CHECK(std::string(html::loss_colour_for(20, 5).css_class) == "l5");
    CHECK(std::string(html::loss_colour_for(20, 10).css_class) == "l5");
    CHECK(std::string(html::loss_colour_for(20, 11).css_class) == "l6");
    CHECK(std::string(html::loss_colour_for(20, 19).css_class) == "l6");
    CHECK(std::string(html::loss_colour_for(20, 20).css_class) == "l7");
    CHECK(std::string(html::loss_colour_for(60, 1).css_class) == "l1");  // 1.7 %: up to 1/20
    CHECK(std::string(html::loss_colour_for(60, 3).css_class) == "l1");  // 5 %
    CHECK(std::string(html::loss_colour_for(60, 4).css_class) == "l2");  // 6.7 %
    CHECK(std::string(html::loss_colour_for(60, 31).css_class) == "l6"); // 51.7 %
}
