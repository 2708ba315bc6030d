// SPDX-License-Identifier: MIT
// The command-line tool's output, mode by mode, against fping itself: the
// same command through fping 5.x (a test dependency, Debian's fping) and
// through our binary (ICMPENGINE_BIN), in this test's private network
// namespace (support/system_main.cpp), to loopback and to the network
// simulator's 198.18.0.0/16. Output is compared with every number masked
// ("N"), stream by stream, and the exit codes must be equal. fping 5.1 has
// no -J: its objects are checked here against fping 5.5's format.
#include <catch2/catch.hpp>

#include "program_run.hpp"
#include "sim_targets.hpp"
#include "temp_file.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <unistd.h>
#include <vector>

namespace testing = icmpengine::testing;
using testing::program_output;
using testing::run_program;
using json = nlohmann::json;

namespace {

std::string our_binary() {
    const char* p = std::getenv("ICMPENGINE_BIN");
    if (p == nullptr || *p == '\0')
        FAIL("ICMPENGINE_BIN is not set: run this test through meson");
    return p;
}

/// Whether fping 5.x runs here. Without it the comparisons cannot run:
/// a warning, and under CI=true a failure.
bool have_fping() {
    static const bool found = [] {
        try {
            const program_output v = run_program({"fping", "-v"});
            return v.status == 0 && v.out.rfind("fping: Version 5.", 0) == 0;
        } catch (const std::exception&) {
            return false;
        }
    }();
    if (!found) {
        const char* ci = std::getenv("CI");
        if (ci != nullptr && std::strcmp(ci, "true") == 0)
            FAIL("fping 5.x is not installed (apt install fping): CI=true needs the comparison");
        WARN("fping 5.x is not installed (apt install fping): comparison skipped");
    }
    return found;
}

std::string joined(const std::vector<std::string>& args) {
    std::string s;
    for (const std::string& a : args)
        s += (s.empty() ? "" : " ") + a;
    return s;
}

/// Every number as "N": "127.0.0.1 : [0], 64 bytes, 0.04 ms" becomes
/// "N.N : [N], N bytes, N ms".
std::string masked(const std::string& text) {
    static const std::regex number(R"(\d+(\.\d+)?(e[+-]\d+)?)");
    return std::regex_replace(text, number, "N");
}

program_output ours(const std::vector<std::string>& args, const std::string& input = {}) {
    std::vector<std::string> argv{our_binary()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_program(argv, input);
}

program_output theirs(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"fping"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_program(argv);
}

/// The same command through fping and through ours: same exit code, same
/// stdout and stderr once the numbers are masked.
void same_as_fping(const std::vector<std::string>& args) {
    const program_output f = theirs(args);
    const program_output o = ours(args);
    INFO("args: " << joined(args) << "\n--- fping stdout\n"
                  << f.out << "--- fping stderr\n"
                  << f.err << "--- ours stdout\n"
                  << o.out << "--- ours stderr\n"
                  << o.err);
    CHECK(o.status == f.status);
    CHECK(masked(o.out) == masked(f.out));
    CHECK(masked(o.err) == masked(f.err));
}

/// As same_as_fping, for output whose number of lines depends on time (-Q
/// reports): the distinct masked lines of each stream.
void same_lines_as_fping(const std::vector<std::string>& args) {
    const program_output f = theirs(args);
    const program_output o = ours(args);
    INFO("args: " << joined(args) << "\n--- fping\n"
                  << f.out << f.err << "--- ours\n"
                  << o.out << o.err);
    const auto distinct = [](const std::string& text) {
        const auto lines = testing::lines_of(masked(text));
        return std::set<std::string>(lines.begin(), lines.end());
    };
    CHECK(o.status == f.status);
    CHECK(distinct(o.out) == distinct(f.out));
    CHECK(distinct(o.err) == distinct(f.err));
}

using testing::temp_file;

/// Every stdout line parsed as JSON (a line that is not fails the test).
std::vector<json> json_lines(const program_output& r) {
    std::vector<json> out;
    for (const std::string& line : testing::lines_of(r.out)) {
        INFO("line: " << line);
        json j;
        REQUIRE_NOTHROW(j = json::parse(line));
        out.push_back(std::move(j));
    }
    return out;
}

} // namespace

TEST_CASE("single-shot output as fping's: is alive, -a, -u, -e, -q, -s, -x, -D",
          "[cli][output][fping]") {
    if (!have_fping())
        return;
    const std::vector<std::vector<std::string>> cases = {
        {"127.0.0.1", "127.0.0.2"},
        {"-a", "127.0.0.1", "127.0.0.2"},
        {"-u", "127.0.0.1"},
        {"-e", "127.0.0.1"},
        {"-a", "-e", "127.0.0.1"},
        {"-q", "127.0.0.1"},
        {"-s", "127.0.0.1"},
        {"-D", "127.0.0.1"},
        {"-D", "-a", "127.0.0.1"},
        {"-x", "1", "127.0.0.1"},
        {"-a", "-x", "1", "127.0.0.1"},
        {"-x", "2", "127.0.0.1"},
        {"nosuch.invalid", "127.0.0.1"},
        {"-q", "nosuch.invalid", "127.0.0.1"},
    };
    for (const auto& args : cases)
        same_as_fping(args);
}

TEST_CASE("count and vector output as fping's: -c, -C, -q, -a, -u, -o, -D, -s, padding",
          "[cli][output][fping]") {
    if (!have_fping())
        return;
    const std::vector<std::vector<std::string>> cases = {
        {"-c", "2", "-p", "100", "127.0.0.1", "127.0.0.10"},
        {"-C", "2", "-p", "100", "127.0.0.1", "127.0.0.10"},
        {"-a", "-c", "2", "-p", "100", "127.0.0.1"},
        {"-u", "-c", "2", "-p", "100", "127.0.0.1"},
        {"-q", "-c", "2", "-p", "100", "127.0.0.1"},
        {"-C", "2", "-q", "-p", "100", "127.0.0.1"},
        {"-a", "-C", "1", "127.0.0.1"},
        {"-s", "-c", "1", "127.0.0.1"},
        {"-D", "-c", "1", "127.0.0.1"},
        {"-e", "-c", "1", "127.0.0.1"},
        {"-o", "-c", "2", "-p", "100", "127.0.0.1"},
        {"-c", "1", "nosuch.invalid", "127.0.0.1"},
    };
    for (const auto& args : cases)
        same_as_fping(args);
}

TEST_CASE("timeouts, duplicates and ICMP errors as fping prints them", "[cli][output][fping]") {
    if (!have_fping())
        return;
    // .9 never answers, .5 answers twice, .6 answers with host unreachable.
    testing::network_simulator sim(testing::simulated(
        "198.18.0.9:loss=1;198.18.0.5:dup=1;198.18.0.6:error=unreach:1", "cli output"));
    const std::vector<std::vector<std::string>> cases = {
        {"-t", "100", "-r", "1", "198.18.0.9"},
        {"-c", "2", "-p", "100", "-t", "50", "198.18.0.9", "127.0.0.1"},
        {"-D", "-c", "2", "-p", "100", "-t", "50", "198.18.0.9"},
        {"-C", "3", "-p", "100", "-t", "50", "198.18.0.9", "127.0.0.1"},
        {"-s", "-t", "50", "-r", "1", "198.18.0.9", "127.0.0.1"},
        {"-u", "-t", "50", "-r", "0", "198.18.0.9", "127.0.0.1"},
        {"-o", "-c", "3", "-p", "100", "-t", "50", "198.18.0.9"},
        {"-x", "1", "-t", "50", "-r", "0", "198.18.0.9", "127.0.0.1"},
        {"198.18.0.5"},
        {"-c", "2", "-p", "100", "198.18.0.5"},
        {"-q", "-c", "2", "-p", "100", "198.18.0.5"},
        {"-C", "2", "-q", "-p", "100", "198.18.0.5"},
        {"-s", "-c", "2", "-p", "100", "198.18.0.5"},
        {"-t", "50", "-r", "1", "198.18.0.6"},
        {"-c", "2", "-p", "100", "-t", "50", "198.18.0.6"},
        {"-q", "-c", "1", "-t", "50", "198.18.0.6"},
    };
    for (const auto& args : cases)
        same_as_fping(args);
}

TEST_CASE("-Q interval reports and -N netdata as fping's", "[cli][output][fping]") {
    if (!have_fping())
        return;
    testing::network_simulator sim(testing::simulated("198.18.0.9:loss=1", "cli output -Q"));
    // 15 pings 100 ms apart: at least one report a second falls inside.
    same_lines_as_fping(
        {"-c", "15", "-p", "100", "-t", "50", "-Q", "1", "127.0.0.1", "198.18.0.9"});
    same_lines_as_fping({"-c", "15", "-p", "100", "-t", "50", "-Q", "1", "-o", "127.0.0.1"});
    same_lines_as_fping({"-c", "15", "-p", "100", "-Q", "1,cumulative", "127.0.0.1"});
    same_lines_as_fping({"-c", "15", "-p", "100", "-Q", "1", "-N", "127.0.0.1"});

    const program_output r = ours({"-c", "15", "-p", "100", "-Q", "1", "127.0.0.1"});
    const auto err = testing::lines_of(r.err);
    const std::regex stamp(R"(^\[\d\d:\d\d:\d\d\]$)");
    REQUIRE(err.size() >= 3);
    CHECK(std::regex_match(err[0], stamp));
    CHECK(std::regex_match(
        err[1],
        std::regex(
            R"(^127\.0\.0\.1 : xmt/rcv/%loss = \d+/\d+/0%, min/avg/max = [\d.]+/[\d.]+/[\d.]+$)")));
    CHECK(r.out.empty()); // -Q is quiet
}

TEST_CASE("one address under several names: lines per given target, as fping's",
          "[cli][output][fping]") {
    // 127.1, localhost and 127.1 again are one address, pinged once; each
    // given target gets its own lines and summary, in the order given.
    const program_output r = ours({"-c", "2", "-p", "100", "127.1", "localhost", "127.1"});
    INFO(r.out << r.err);
    CHECK(r.status == 0);
    const auto out = testing::lines_of(r.out);
    REQUIRE(out.size() == 6);
    const char* const names[] = {"127.1    ", "localhost", "127.1    "};
    for (std::size_t k = 0; k < out.size(); ++k) {
        INFO("line " << k << ": " << out[k]);
        const std::string want =
            std::string(names[k % 3]) + " : [" + std::to_string(k / 3) + "], 64 bytes, ";
        CHECK(out[k].rfind(want, 0) == 0);
    }
    const auto err = testing::lines_of(r.err);
    REQUIRE(err.size() == 4);
    CHECK(err[0].empty());
    const std::regex summary(
        R"(^(127\.1    |localhost) : xmt/rcv/%loss = 2/2/0%, min/avg/max = [\d.]+/[\d.]+/[\d.]+$)");
    for (std::size_t k = 1; k < err.size(); ++k) {
        CHECK(std::regex_match(err[k], summary));
        CHECK(err[k].rfind(names[k - 1], 0) == 0);
    }

    if (!have_fping())
        return;
    const std::vector<std::vector<std::string>> cases = {
        {"127.0.0.1", "localhost", "127.0.0.1"},
        {"-c", "2", "-p", "100", "127.1", "localhost", "127.1"},
        {"-C", "2", "-p", "100", "127.0.0.1", "localhost"},
        {"-a", "127.0.0.1", "localhost"},
        {"-u", "127.0.0.1", "localhost"},
        {"-s", "127.0.0.1", "localhost"},
        {"-q", "-c", "1", "127.0.0.1", "localhost"},
        {"-A", "127.0.0.1", "localhost"},
        {"-A", "-c", "1", "127.0.0.1", "localhost"},
    };
    for (const auto& args : cases)
        same_as_fping(args);
}

TEST_CASE("the summary line ends at min/avg/max unless --extended-summary", "[cli][output]") {
    const std::regex plain(
        R"(^127\.0\.0\.1 : xmt/rcv/%loss = 2/2/0%, min/avg/max = [\d.]+/[\d.]+/[\d.]+$)");
    const std::regex extended(
        R"(^127\.0\.0\.1 : xmt/rcv/%loss = 2/2/0%, min/avg/max = [\d.]+/[\d.]+/[\d.]+, stddev = [\d.]+, out-of-order = 0, duplicates = 0, icmp-errors = 0$)");
    const program_output p = ours({"-q", "-c", "2", "-p", "50", "127.0.0.1"});
    REQUIRE(testing::lines_of(p.err).size() == 1);
    CHECK(std::regex_match(testing::lines_of(p.err)[0], plain));
    const program_output x = ours({"--extended-summary", "-q", "-c", "2", "-p", "50", "127.0.0.1"});
    REQUIRE(testing::lines_of(x.err).size() == 1);
    CHECK(std::regex_match(testing::lines_of(x.err)[0], extended));
    CHECK(p.status == 0);
}

TEST_CASE("fping 5.5's reply extras: --print-ttl, --print-srcaddr, --print-tos, --timestamp-format",
          "[cli][output]") {
    const program_output r =
        ours({"--print-ttl", "--print-srcaddr", "--print-tos", "-c", "1", "127.0.0.1"});
    REQUIRE(testing::lines_of(r.out).size() == 1);
    CHECK(std::regex_match(
        testing::lines_of(r.out)[0],
        std::regex(
            R"(^127\.0\.0\.1 : \[0\], 64 bytes, [\d.]+ ms \([\d.]+ avg, 0% loss\) \(SRC 127\.0\.0\.1\) \(TOS 0\) \(TTL 64\)$)")));
    const program_output a = ours({"--print-ttl", "-e", "127.0.0.1"});
    CHECK(std::regex_match(a.out,
                           std::regex(R"(^127\.0\.0\.1 is alive \(TTL 64\) \([\d.]+ ms\)\n$)")));
    const program_output iso = ours({"-D", "--timestamp-format", "iso", "-c", "1", "127.0.0.1"});
    CHECK(std::regex_match(
        iso.out,
        std::regex(R"(^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}\] 127\.0\.0\.1 : \[0\], .*\n$)")));
}

TEST_CASE("-J prints fping 5.5's objects, key by key", "[cli][output][json]") {
    testing::network_simulator sim(testing::simulated("198.18.0.9:loss=1", "cli output -J"));
    const program_output r = ours({"-J", "-s", "-o", "-c", "2", "-p", "100", "-t", "50",
                                   "127.0.0.1", "198.18.0.9", "nosuch.invalid"});
    INFO(r.out << r.err);
    CHECK(r.status == 2);
    const auto lines = testing::lines_of(r.out);
    const std::vector<std::regex> shapes = {
        std::regex(R"(^\{"warning": \{"host": "nosuch\.invalid", "message": "[^"]+"\}\}$)"),
        std::regex(
            R"(^\{"resp": \{"host": "127\.0\.0\.1", "seq": 0, "size": 64, "rtt": [\d.]+\}\}$)"),
        std::regex(R"(^\{"timeout": \{"host": "198\.18\.0\.9", "seq": 0\}\}$)"),
        std::regex(
            R"(^\{"resp": \{"host": "127\.0\.0\.1", "seq": 1, "size": 64, "rtt": [\d.]+\}\}$)"),
        std::regex(R"(^\{"timeout": \{"host": "198\.18\.0\.9", "seq": 1\}\}$)"),
        std::regex(
            R"re(^\{"summary": \{"host": "127\.0\.0\.1", "xmt": 2, "rcv": 2, "loss": 0, "outage\(ms\)": 0, "rttMin": [\d.]+, "rttAvg": [\d.]+, "rttMax": [\d.]+\}\}$)re"),
        std::regex(
            R"re(^\{"summary": \{"host": "198\.18\.0\.9", "xmt": 2, "rcv": 0, "loss": 100, "outage\(ms\)": 200\}\}$)re"),
        std::regex(
            R"(^\{"stats": \{"targets": 2, "alive": 1, "unreachable": 1, "unknownAddresses": 1, "timeouts": 2, "icmpEchosSent": 4, "icmpEchoRepliesReceived": 2, "otherIcmpReceived": 0, "rttMin": [\d.]+, "rttAvg": [\d.]+, "rttMax": [\d.]+, "elapsed": \d+\.\d{3}\}\}$)"),
    };
    REQUIRE(lines.size() == shapes.size());
    for (std::size_t i = 0; i < lines.size(); ++i) {
        INFO("line " << i << ": " << lines[i]);
        CHECK(std::regex_match(lines[i], shapes[i]));
    }
    json_lines(r); // and each is JSON
    // The text warning stays on stderr, as fping writes it.
    CHECK(r.err.rfind("nosuch.invalid: ", 0) == 0);
}

TEST_CASE("-J: -C's vSum, -Q's intSum, -D's timestamp", "[cli][output][json]") {
    testing::network_simulator sim(testing::simulated("198.18.0.9:loss=1", "cli output -J -C"));
    const program_output v =
        ours({"-J", "-C", "2", "-p", "100", "-t", "50", "127.0.0.1", "198.18.0.9"});
    const auto lines = testing::lines_of(v.out);
    REQUIRE(lines.size() == 6);
    CHECK(std::regex_match(
        lines[4],
        std::regex(R"(^\{"vSum": \{"host": "127\.0\.0\.1", "values": \[[\d.]+, [\d.]+\]\}\}$)")));
    CHECK(lines[5] == R"({"vSum": {"host": "198.18.0.9", "values": [null, null]}})");

    const program_output q = ours({"-J", "-c", "15", "-p", "100", "-Q", "1", "127.0.0.1"});
    const auto qlines = testing::lines_of(q.out);
    REQUIRE(!qlines.empty());
    CHECK(std::regex_match(
        qlines[0],
        std::regex(
            R"(^\{"intSum": \{"time": \d+,"host": "127\.0\.0\.1", "xmt": \d+, "rcv": \d+, "loss": 0, "rttMin": [\d.]+, "rttAvg": [\d.]+, "rttMax": [\d.]+\}\}$)")));
    CHECK(json_lines(q).back().contains("summary"));

    const program_output d = ours({"-J", "-D", "-c", "1", "127.0.0.1"});
    CHECK(std::regex_match(
        d.out, std::regex(R"(^\{"resp": \{"timestamp": "\d+\.\d{5}", "host": [\s\S]*)")));
}

TEST_CASE("JSON stays valid with odd bytes in a name: -J and --json-lines", "[cli][output][json]") {
    // Not UTF-8 (0xff 0xfe), a quote, a backslash and a control character.
    const std::string odd = "\xff\xfe\"odd\\name\x01";
    const temp_file targets("127.0.0.1\n" + odd + "\n");
    const program_output j = ours({"-J", "-c", "1", "-f", targets.path});
    INFO(j.out << j.err);
    CHECK(j.status == 2);
    const auto objects = json_lines(j);
    REQUIRE(objects.size() == 3);
    CHECK(objects[0].at("warning").at("host") == "\xef\xbf\xbd\xef\xbf\xbd\"odd\\name\x01");

    const program_output l = ours({"--json-lines", "-c", "1", "-f", targets.path});
    INFO(l.out << l.err);
    CHECK(l.status == 2);
    const auto events = json_lines(l);
    REQUIRE(!events.empty());
    CHECK(events.back().at("event") == "summary");
}

TEST_CASE("late replies print nothing; fping's exit code with -x", "[cli][output]") {
    // .7 answers after 300 ms, past the 100 ms timeout of every try.
    testing::network_simulator sim(
        testing::simulated("198.18.0.7:delay=300ms;198.18.0.9:loss=1", "cli output late"));
    const program_output r = ours({"-c", "2", "-p", "400", "-t", "100", "198.18.0.7"});
    INFO(r.out << r.err);
    CHECK(r.err.find("late") == std::string::npos);
    CHECK(testing::lines_of(r.out).size() == 2); // two "timed out" lines, nothing else
    const program_output x = ours({"-x", "1", "-t", "50", "-r", "0", "198.18.0.9", "127.0.0.1"});
    CHECK(x.status == 0);
    CHECK(x.out == "Enough hosts reachable (required: 1, reachable: 1)\n");
}

TEST_CASE("-X N ends the run once N targets answered (fping 5.5)", "[cli][output]") {
    testing::network_simulator sim(testing::simulated("198.18.0.9:loss=1", "cli output -X"));
    // Without -X the silent target would hold the run for its 60 s timeout.
    const auto started = std::chrono::steady_clock::now();
    const program_output r = ours({"-X", "1", "-t", "60000", "-r", "0", "198.18.0.9", "127.0.0.1"});
    const auto took = std::chrono::steady_clock::now() - started;
    INFO(r.out << r.err);
    CHECK(r.status == 0);
    CHECK(r.out == "Enough hosts reachable (required: 1, reachable: 1)\n");
    CHECK(took < std::chrono::seconds(30));

    // Targets count as given: one address under two names is two of them.
    const auto again = std::chrono::steady_clock::now();
    const program_output two =
        ours({"-X", "2", "-t", "60000", "-r", "0", "198.18.0.9", "127.0.0.1", "localhost"});
    INFO(two.out << two.err);
    CHECK(two.status == 0);
    CHECK(two.out == "Enough hosts reachable (required: 2, reachable: 2)\n");
    CHECK(std::chrono::steady_clock::now() - again < std::chrono::seconds(30));
}
