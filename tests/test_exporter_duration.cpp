// SPDX-License-Identifier: MIT
// Go's duration syntax (tools/exporter/duration.hpp), as smokeping_prober's
// and blackbox_exporter's flags and queries use it.
#include <catch2/catch.hpp>

#include "duration.hpp"

#include <chrono>

using namespace std::chrono_literals;
using icmpengine_exporter::format_go_duration;
using icmpengine_exporter::parse_go_duration;

TEST_CASE("Go durations parse as time.ParseDuration reads them", "[duration]") {
    CHECK(parse_go_duration("1s") == 1s);
    CHECK(parse_go_duration("500ms") == 500ms);
    CHECK(parse_go_duration("1m30s") == 90s);
    CHECK(parse_go_duration("1.5h") == 90min);
    CHECK(parse_go_duration("250us") == 250us);
    CHECK(parse_go_duration("250\xC2\xB5s") == 250us);
    CHECK(parse_go_duration("10ns") == 10ns);
    CHECK(parse_go_duration("0") == 0ns);
    CHECK(parse_go_duration("0s") == 0ns);
    CHECK(parse_go_duration(".5s") == 500ms);
    CHECK(parse_go_duration("1.s") == 1s);
    CHECK(parse_go_duration("+2s") == 2s);
    CHECK(parse_go_duration("1h2m3s4ms5us6ns") == 1h + 2min + 3s + 4ms + 5us + 6ns);
}

TEST_CASE("what is not a Go duration is refused", "[duration]") {
    for (const char* bad :
         {"", "1", "s", "1x", "-1s", "1s2", "1 s", ".s", "1.2.3s", "1e3s", "99999999999h", "ms"})
        CHECK_FALSE(parse_go_duration(bad).has_value());
}

TEST_CASE("durations print as Go's Duration.String()", "[duration]") {
    CHECK(format_go_duration(1s) == "1s");
    CHECK(format_go_duration(90s) == "1m30s");
    CHECK(format_go_duration(500ms) == "500ms");
    CHECK(format_go_duration(1500ms) == "1.5s");
    CHECK(format_go_duration(2h) == "2h0m0s");
    CHECK(format_go_duration(250us) == "250\xC2\xB5s");
    CHECK(format_go_duration(0ns) == "0s");
    CHECK(format_go_duration(7ns) == "7ns");
}
