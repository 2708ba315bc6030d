// SPDX-License-Identifier: MIT
// The Prometheus text exposition writer (tools/exporter/exposition.hpp).
#include <catch2/catch.hpp>

#include "exposition.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

using icmpengine_exporter::append_label_set;
using icmpengine_exporter::append_sample;
using icmpengine_exporter::append_value;
using icmpengine_exporter::exposition;

TEST_CASE("families keep their samples together, HELP and TYPE once", "[exposition]") {
    exposition page;
    const auto a = page.family("a_total", exposition::kind::counter, "Things.\nMore \\ text");
    const auto b = page.family("b", exposition::kind::gauge, "Level.");
    page.family("unused", exposition::kind::gauge, "Never sampled.");
    append_sample(page.samples(a), "a_total", "{x=\"1\"}", std::uint64_t{3});
    append_sample(page.samples(b), "b", "", 0.5);
    CHECK(page.family("a_total", exposition::kind::counter, "Things.\nMore \\ text") == a);
    append_sample(page.samples(a), "a_total", "{x=\"2\"}", std::uint64_t{4});
    CHECK(page.text() == "# HELP a_total Things.\\nMore \\\\ text\n# TYPE a_total counter\n"
                         "a_total{x=\"1\"} 3\na_total{x=\"2\"} 4\n"
                         "# HELP b Level.\n# TYPE b gauge\nb 0.5\n");
    CHECK_THROWS_AS(page.family("b", exposition::kind::counter, "Level."), std::logic_error);
}

TEST_CASE("merge appends another page's samples to the same families", "[exposition]") {
    exposition one;
    exposition two;
    append_sample(one.samples(one.family("m", exposition::kind::counter, "h")), "m", "{t=\"1\"}",
                  std::uint64_t{1});
    append_sample(two.samples(two.family("n", exposition::kind::gauge, "g")), "n", "", 2.0);
    append_sample(two.samples(two.family("m", exposition::kind::counter, "h")), "m", "{t=\"2\"}",
                  std::uint64_t{2});
    one.merge(std::move(two));
    CHECK(one.text() == "# HELP m h\n# TYPE m counter\nm{t=\"1\"} 1\nm{t=\"2\"} 2\n"
                        "# HELP n g\n# TYPE n gauge\nn 2\n");
}

TEST_CASE("label values are escaped, numbers exact", "[exposition]") {
    std::string out;
    append_label_set(out, {{"host", "a\"b\\c\nd"}, {"ip", "::1"}});
    CHECK(out == "{host=\"a\\\"b\\\\c\\nd\",ip=\"::1\"}");
    out.clear();
    append_value(out, std::numeric_limits<double>::infinity());
    out += ' ';
    append_value(out, -std::numeric_limits<double>::infinity());
    out += ' ';
    append_value(out, std::nan(""));
    out += ' ';
    append_value(out, 0.1);
    out += ' ';
    append_value(out, 5e-05);
    out += ' ';
    append_value(out, std::uint64_t{18446744073709551615u});
    CHECK(out == "+Inf -Inf NaN 0.1 5e-05 18446744073709551615");
}
