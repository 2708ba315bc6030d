// SPDX-License-Identifier: MIT
// End-to-end tests of the icmpengine command-line tool: the built binary
// (ICMPENGINE_BIN) is run as a child process. support/system_main.cpp has
// moved this process into a private network namespace, which the children
// inherit: they reach loopback, and the network simulator
// (support/netsim.hpp) where a test starts one. Nothing leaves the namespace.
#include <catch2/catch.hpp>

#include "lo_capture.hpp"
#include "netns.hpp"
#include "netsim.hpp"
#include "sim_targets.hpp"
#include "temp_file.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <poll.h>
#include <pty.h>
#include <regex>
#include <sched.h>
#include <set>
#include <sstream>
#include <string>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using json = nlohmann::json;
namespace testing = icmpengine::testing;
using testing::lo_capture;
using testing::simulated;
using testing::wire_request;

namespace {

using clock_type = std::chrono::steady_clock;
using ms = std::chrono::duration<double, std::milli>;

std::string env_path(const char* name) {
    const char* p = std::getenv(name);
    if (p == nullptr || *p == '\0')
        FAIL(name << " is not set: run this test through meson (tests/meson.build sets it)");
    return p;
}

/// The version the tool was built with (meson.build's project version).
std::string project_version() {
    return env_path("ICMPENGINE_VERSION");
}

// ---------------------------------------------------------------- running

struct cli_result;

/// A signal for the child, sent once `when` holds for what the child has
/// written so far (polled while it runs; empty: at once), and never before
/// the previous one was delivered: the kernel keeps one pending instance of
/// a signal, so a second SIGINT sent before the child ran would be lost.
/// Conditions on the child's own output (or on what the simulator saw)
/// order "the child did X" before the signal; a time after the start would
/// not, on a busy machine.
struct signal_step {
    int signal;
    std::function<bool(const cli_result&)> when{};
};

struct cli_run {
    std::vector<std::string> args{};
    /// Written to the child's stdin, which is then closed (never a terminal).
    std::string stdin_text{};
    /// Signals sent to the child, in order.
    std::vector<signal_step> signals{};
    /// Runs the binary through this command (e.g. setpriv ...).
    std::vector<std::string> prefix{};
    /// Bind-mounted over /etc/hosts in a private mount namespace of the child.
    std::string hosts_file{};
    /// stderr is a pseudo-terminal (its output lands in cli_result::err).
    bool stderr_tty = false;
};

struct cli_result {
    int status = -1; ///< exit status, or -1 if killed by a signal
    std::string out;
    std::string err;
    clock_type::duration took{};

    std::vector<std::string> out_lines() const { return split(out); }
    std::vector<std::string> err_lines() const { return split(err); }
    static std::vector<std::string> split(const std::string& text) {
        std::vector<std::string> lines;
        std::istringstream in(text);
        for (std::string line; std::getline(in, line);)
            lines.push_back(line);
        return lines;
    }
};

std::ostream& operator<<(std::ostream& os, const cli_result& r) {
    return os << "exit " << r.status << " after " << ms(r.took).count() << " ms\n--- stdout\n"
              << r.out.substr(0, 4000) << "--- stderr\n"
              << r.err.substr(0, 4000);
}

/// True while `signal` is pending for process `pid` (not yet taken by it):
/// the SigPnd (thread) and ShdPnd (process) masks of /proc/PID/status.
bool signal_pending(pid_t pid, int signal) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    const std::uint64_t bit = std::uint64_t{1} << (signal - 1);
    for (std::string line; std::getline(status, line);)
        if (line.rfind("SigPnd:", 0) == 0 || line.rfind("ShdPnd:", 0) == 0)
            if (std::stoull(line.substr(7), nullptr, 16) & bit)
                return true;
    return false;
}

[[noreturn]] void child_fail(const char* what) {
    const std::string text =
        std::string("test child: ") + what + ": " + std::strerror(errno) + "\n";
    (void)!::write(2, text.data(), text.size());
    ::_exit(126);
}

cli_result run_cli(const cli_run& run) {
    std::vector<std::string> argv_text = run.prefix;
    argv_text.push_back(env_path("ICMPENGINE_BIN"));
    argv_text.insert(argv_text.end(), run.args.begin(), run.args.end());
    std::vector<char*> argv;
    for (std::string& a : argv_text)
        argv.push_back(a.data());
    argv.push_back(nullptr);

    int in[2], out[2], err[2];
    REQUIRE(::pipe2(in, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
    int pty_master = -1, pty_slave = -1;
    if (run.stderr_tty) {
        REQUIRE(::openpty(&pty_master, &pty_slave, nullptr, nullptr, nullptr) == 0);
        err[0] = pty_master;
        err[1] = pty_slave;
    } else {
        REQUIRE(::pipe2(err, O_CLOEXEC) == 0);
    }
    const auto started = clock_type::now();
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        if (::dup2(in[0], 0) < 0 || ::dup2(out[1], 1) < 0 || ::dup2(err[1], 2) < 0)
            child_fail("dup2");
        if (!run.hosts_file.empty()) {
            if (::unshare(CLONE_NEWNS) != 0)
                child_fail("unshare(CLONE_NEWNS)");
            if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
                child_fail("mount --make-rprivate /");
            if (::mount(run.hosts_file.c_str(), "/etc/hosts", nullptr, MS_BIND, nullptr) != 0)
                child_fail("mount --bind hosts /etc/hosts");
        }
        ::execvp(argv[0], argv.data());
        child_fail("execvp");
    }
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    if (!run.stdin_text.empty())
        REQUIRE(::write(in[1], run.stdin_text.data(), run.stdin_text.size()) ==
                static_cast<ssize_t>(run.stdin_text.size()));
    ::close(in[1]);

    cli_result result;
    std::size_t next_signal = 0;
    int in_delivery = 0; // a signal sent and still pending
    bool out_open = true, err_open = true;
    char buffer[65536];
    while (out_open || err_open) {
        REQUIRE(clock_type::now() - started < 60s); // a hung child fails the test, not the suite
        if (in_delivery != 0 && !signal_pending(pid, in_delivery))
            in_delivery = 0;
        if (in_delivery == 0 && next_signal < run.signals.size()) {
            const signal_step& step = run.signals[next_signal];
            if (!step.when || step.when(result)) {
                REQUIRE(::kill(pid, step.signal) == 0);
                in_delivery = step.signal;
                ++next_signal;
                continue;
            }
        }
        // Waiting for a condition or a delivery: look again soon.
        const int timeout_ms = in_delivery != 0 || next_signal < run.signals.size() ? 2 : 1000;
        pollfd fds[2] = {{out_open ? out[0] : -1, POLLIN, 0}, {err_open ? err[0] : -1, POLLIN, 0}};
        const int n = ::poll(fds, 2, timeout_ms);
        if (n < 0 && errno == EINTR)
            continue;
        REQUIRE(n >= 0);
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || fds[i].revents == 0)
                continue;
            const ssize_t got = ::read(fds[i].fd, buffer, sizeof buffer);
            if (got > 0) {
                (i == 0 ? result.out : result.err).append(buffer, static_cast<std::size_t>(got));
            } else if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) {
                // EOF; a pty master reports EIO once the slave side is gone.
                (i == 0 ? out_open : err_open) = false;
            }
        }
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    result.took = clock_type::now() - started;
    ::close(out[0]);
    ::close(err[0]);
    result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
}

cli_result run_cli(std::vector<std::string> args) {
    return run_cli(cli_run{.args = std::move(args)});
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

std::size_t count_of(const std::vector<std::string>& lines, const std::string& needle) {
    return static_cast<std::size_t>(std::count_if(
        lines.begin(), lines.end(), [&](const std::string& l) { return contains(l, needle); }));
}

using testing::temp_file;

/// "127.0.0.1 : [3], 64 bytes, 0.052 ms (0.052 avg, 0% loss)"
const std::regex reply_line(
    R"(^(\S+)\s* : \[(\d+)\], (\d+) bytes, ([\d.]+) ms \(([\d.]+|NaN) avg, (\d+)% loss\)$)");
/// "127.0.0.1 : xmt/rcv/%loss = 3/3/0%, min/avg/max = ..." (fping's), and with
/// --extended-summary ", stddev = ..., out-of-order = 0, ...".
const std::regex summary_line(
    R"(^(\S+)\s* : xmt/rcv/%loss = (\d+)/(\d+)/(\d+)%(, min/avg/max = ([\d.]+)/([\d.]+)/([\d.]+)(, stddev = ([\d.]+))?)?(, out-of-order = (\d+), duplicates = (\d+), icmp-errors = (\d+))?$)");

struct summary {
    std::uint64_t sent = 0, received = 0, loss = 0, out_of_order = 0, duplicates = 0,
                  icmp_errors = 0;
    bool has_rtt = false;
};

std::map<std::string, summary> summaries(const cli_result& r) {
    std::map<std::string, summary> out;
    for (const std::string& line : r.err_lines()) {
        std::smatch m;
        if (!std::regex_match(line, m, summary_line))
            continue;
        summary s;
        s.sent = std::stoull(m[2]);
        s.received = std::stoull(m[3]);
        s.loss = std::stoull(m[4]);
        s.has_rtt = m[5].matched;
        if (m[11].matched) {
            s.out_of_order = std::stoull(m[12]);
            s.duplicates = std::stoull(m[13]);
            s.icmp_errors = std::stoull(m[14]);
        }
        out[m[1]] = s;
    }
    return out;
}

/// Per target, the ping indices of its reply lines, in output order.
std::map<std::string, std::vector<std::uint64_t>> reply_indices(const cli_result& r) {
    std::map<std::string, std::vector<std::uint64_t>> out;
    for (const std::string& line : r.out_lines()) {
        std::smatch m;
        if (std::regex_match(line, m, reply_line))
            out[m[1]].push_back(std::stoull(m[2]));
    }
    return out;
}

// ------------------------------------------------------- JSON Schema subset

/// Validates JSON against the subset of JSON Schema (draft 2020-12) that
/// tools/icmpengine.schema.json uses: $ref (local), oneOf, type, const, enum,
/// properties, required, additionalProperties (false), items, minimum,
/// maximum; annotations are skipped. Any other keyword is an error, so a
/// schema change the checker does not understand cannot pass unnoticed.
class schema_checker {
  public:
    explicit schema_checker(json schema) : m_root(std::move(schema)) {}

    /// Empty if `doc` is valid; else the first violation, with its path.
    std::string check(const json& doc) const { return check(m_root, doc, "$"); }

  private:
    const json& resolve(const std::string& ref) const {
        if (ref.rfind("#/$defs/", 0) != 0)
            throw std::runtime_error("schema_checker: unsupported $ref " + ref);
        return m_root.at("$defs").at(ref.substr(8));
    }

    static bool has_type(const json& v, const std::string& type) {
        if (type == "null")
            return v.is_null();
        if (type == "boolean")
            return v.is_boolean();
        if (type == "string")
            return v.is_string();
        if (type == "object")
            return v.is_object();
        if (type == "array")
            return v.is_array();
        if (type == "number")
            return v.is_number();
        if (type == "integer")
            return v.is_number_integer();
        throw std::runtime_error("schema_checker: unknown type " + type);
    }

    std::string check(const json& s, const json& v, const std::string& path) const {
        static const std::set<std::string> annotations = {"$schema", "$id", "title", "description",
                                                          "$defs"};
        static const std::set<std::string> known = {
            "$ref",  "oneOf",      "type",     "const",
            "enum",  "properties", "required", "additionalProperties",
            "items", "minimum",    "maximum"};
        for (const auto& [key, value] : s.items())
            if (!annotations.count(key) && !known.count(key))
                throw std::runtime_error("schema_checker: unsupported keyword " + key);
        if (s.contains("$ref"))
            if (auto e = check(resolve(s["$ref"]), v, path); !e.empty())
                return e;
        if (s.contains("oneOf")) {
            int matches = 0;
            std::string why;
            for (const json& alt : s["oneOf"]) {
                std::string e = check(alt, v, path);
                if (e.empty())
                    ++matches;
                else if (why.empty() || e.rfind(path + ".event:", 0) != 0)
                    why = e; // the alternative whose "event" matched says most
            }
            if (matches != 1)
                return path + ": matches " + std::to_string(matches) +
                       " of the oneOf alternatives (closest miss: " + why + ")";
        }
        if (s.contains("type")) {
            const json& t = s["type"];
            bool ok = false;
            if (t.is_array()) {
                for (const json& one : t)
                    ok = ok || has_type(v, one.get<std::string>());
            } else {
                ok = has_type(v, t.get<std::string>());
            }
            if (!ok)
                return path + ": " + v.dump() + " is not of type " + t.dump();
        }
        if (s.contains("const") && v != s["const"])
            return path + ": " + v.dump() + " is not " + s["const"].dump();
        if (s.contains("enum") &&
            std::find(s["enum"].begin(), s["enum"].end(), v) == s["enum"].end())
            return path + ": " + v.dump() + " is not one of " + s["enum"].dump();
        if (v.is_number()) {
            if (s.contains("minimum") && v.get<double>() < s["minimum"].get<double>())
                return path + ": " + v.dump() + " is below the minimum " + s["minimum"].dump();
            if (s.contains("maximum") && v.get<double>() > s["maximum"].get<double>())
                return path + ": " + v.dump() + " is above the maximum " + s["maximum"].dump();
        }
        if (v.is_object()) {
            // Members with a "const" (the "event" discriminator) first, so
            // that an alternative of the top-level oneOf meant for another
            // event says so before anything else.
            const json properties = s.value("properties", json::object());
            for (const bool discriminators : {true, false})
                for (const auto& [key, value] : v.items()) {
                    const bool is_const =
                        properties.contains(key) && properties[key].contains("const");
                    if (is_const != discriminators)
                        continue;
                    if (properties.contains(key)) {
                        if (auto e = check(properties[key], value, path + "." + key); !e.empty())
                            return e;
                    } else if (s.contains("additionalProperties") &&
                               s["additionalProperties"] == false) {
                        return path + ": member \"" + key + "\" is not allowed";
                    }
                }
            if (s.contains("required"))
                for (const json& name : s["required"])
                    if (!v.contains(name.get<std::string>()))
                        return path + ": missing required member " + name.dump();
        }
        if (v.is_array() && s.contains("items"))
            for (std::size_t i = 0; i < v.size(); ++i)
                if (auto e = check(s["items"], v[i], path + "[" + std::to_string(i) + "]");
                    !e.empty())
                    return e;
        return {};
    }

    json m_root;
};

json load_schema() {
    std::ifstream in(env_path("ICMPENGINE_SCHEMA"));
    REQUIRE(in);
    return json::parse(in);
}

/// Every stdout line parsed, each checked against the schema.
std::vector<json> json_lines(const cli_result& r, const schema_checker& checker) {
    std::vector<json> out;
    for (const std::string& line : r.out_lines()) {
        INFO(line);
        json j;
        REQUIRE_NOTHROW(j = json::parse(line));
        const std::string why = checker.check(j);
        INFO(why);
        CHECK(why.empty());
        out.push_back(std::move(j));
    }
    return out;
}

std::vector<json> events(const std::vector<json>& lines, const std::string& kind) {
    std::vector<json> out;
    for (const json& j : lines)
        if (j.at("event") == kind)
            out.push_back(j);
    return out;
}

} // namespace

// ======================================================================
// Help, version, targets

TEST_CASE("-h lists fping's options in fping's shape, then ours; -v", "[cli]") {
    for (const char* flag : {"-h", "--help"}) {
        const cli_result help = run_cli({flag});
        INFO(help);
        CHECK(help.status == 0);
        CHECK(help.err.empty());
        CHECK_THAT(help.out, Catch::StartsWith("Usage: icmpengine [options] [targets...]\n"));
        // Every fping 5.5 option, as its usage shows it: scripts probe -h
        // for options (SmokePing matches /\s-S[,\s]/ and /\s-O[,\s]/).
        for (const char* option : {"   -4, --ipv4 ",
                                   "   -6, --ipv6 ",
                                   "   -b, --size=BYTES ",
                                   "   -B, --backoff=N ",
                                   "   -c, --count=N ",
                                   "   -f, --file=FILE ",
                                   "   -g, --generate ",
                                   "   -H, --ttl=N ",
                                   "   -i, --interval=MSEC ",
                                   "   -I, --iface=IFACE ",
                                   "       --oiface=IFACE ",
                                   "   -k, --fwmark=FWMARK ",
                                   "   -l, --loop ",
                                   "   -m, --all ",
                                   "   -M, --dontfrag ",
                                   "   -O, --tos=N ",
                                   "   -p, --period=MSEC ",
                                   "   -r, --retry=N ",
                                   "   -R, --random ",
                                   "   -S, --src=IP ",
                                   "       --seqmap-timeout=MSEC ",
                                   "   -t, --timeout=MSEC ",
                                   "       --check-source ",
                                   "       --icmp-timestamp ",
                                   "   -a, --alive ",
                                   "   -A, --addr ",
                                   "   -C, --vcount=N ",
                                   "   -d, --rdns ",
                                   "   -D, --timestamp ",
                                   "       --timestamp-format=FORMAT ",
                                   "   -e, --elapsed ",
                                   "   -J, --json ",
                                   "   -n, --name ",
                                   "   -N, --netdata ",
                                   "   -o, --outage ",
                                   "   -q, --quiet ",
                                   "   -Q, --squiet=SECS[,cumulative] ",
                                   "   -s, --stats ",
                                   "   -u, --unreach ",
                                   "   -v, --version ",
                                   "   -x, --reachable=N ",
                                   "   -X, --fast-reachable=N ",
                                   "       --print-tos ",
                                   "       --print-ttl ",
                                   "       --print-srcaddr ",
                                   "       --rate=PPS ",
                                   "       --dscp=N ",
                                   "       --max-targets=N ",
                                   "       --json-lines ",
                                   "       --extended-summary "})
            CHECK_THAT(help.out, Catch::Contains(option));
        CHECK(std::regex_search(help.out, std::regex(R"(\s-S[,\s])")));
        CHECK(std::regex_search(help.out, std::regex(R"(\s-O[,\s])")));
    }
    for (const char* flag : {"--version", "-v"}) {
        const cli_result version = run_cli({flag});
        CHECK(version.status == 0);
        CHECK(version.out == "icmpengine: Version " + project_version() +
                                 "\nicmpengine: the options and output of fping 5.5\n");
    }
}

TEST_CASE("invoked as fping: fping's name in every message, a version parsers accept",
          "[cli][args]") {
    // argv[0] "fping", as through a symlink named fping.
    auto as_fping = [](std::vector<std::string> args) {
        return run_cli(cli_run{.args = std::move(args),
                               .prefix = {"bash", "-c", R"(exec -a fping "$0" "$@")"}});
    };
    const cli_result version = as_fping({"-v"});
    INFO(version);
    CHECK(version.status == 0);
    const auto lines = version.out_lines();
    REQUIRE(lines.size() == 2);
    // The first line is fping's: what version parsers read (faucet's
    // "fping: Version (\d+\.\d+)", fping's own tests "fping: Version \S+").
    CHECK(lines[0] == "fping: Version 5.5");
    CHECK(std::regex_match(lines[0], std::regex(R"(fping: Version (\d+\.\d+))")));
    CHECK(lines[1] ==
          "fping: icmpengine " + project_version() + ", an fping-compatible pinger over io_uring");
    const cli_result help = as_fping({"-h"});
    CHECK_THAT(help.out, Catch::StartsWith("Usage: fping [options] [targets...]\n"));
    const cli_result bad = as_fping({"-Z", "127.0.0.1"});
    CHECK(bad.status == 1);
    CHECK(bad.err == "fping: invalid option -- 'Z'\nsee 'fping -h' for usage information\n");
    const cli_result alive = as_fping({"127.0.0.1"});
    CHECK(alive.status == 0);
    CHECK(alive.out == "127.0.0.1 is alive\n");
}

TEST_CASE("single-shot mode: IPv4 and IPv6 loopback alive, exit 0", "[cli][exit]") {
    const cli_result r = run_cli({"127.0.0.1", "::1"});
    INFO(r);
    CHECK(r.status == 0);
    const auto lines = r.out_lines();
    CHECK(lines.size() == 2);
    CHECK(count_of(lines, "127.0.0.1 is alive") == 1);
    CHECK(count_of(lines, "::1 is alive") == 1);
    CHECK(r.err.empty());
}

TEST_CASE("host names resolve for both families; -4, -6, -m, -A", "[cli][names]") {
    testing::network_simulator sim(simulated("", "cli names"));
    temp_file hosts("127.0.0.1 localhost\n"
                    "198.18.0.20 dual.test\n2001:db8:5::20 dual.test\n"
                    "2001:db8:5::21 v6only.test\n198.18.0.22 v4only.test\n");
    auto with_hosts = [&](std::vector<std::string> args) {
        return run_cli(cli_run{.args = std::move(args), .hosts_file = hosts.path});
    };
    SECTION("a name of either family is pinged under its name") {
        const cli_result r = with_hosts({"v6only.test", "v4only.test"});
        INFO(r);
        CHECK(r.status == 0);
        CHECK(count_of(r.out_lines(), "v6only.test is alive") == 1);
        CHECK(count_of(r.out_lines(), "v4only.test is alive") == 1);
    }
    SECTION("-A shows the address; -4 and -6 pick the family") {
        const cli_result any = with_hosts({"-A", "v6only.test"});
        CHECK(any.out == "2001:db8:5::21 is alive\n");
        const cli_result v4 = with_hosts({"-4", "-A", "dual.test"});
        INFO(v4);
        CHECK(v4.out == "198.18.0.20 is alive\n");
        const cli_result v6 = with_hosts({"-6", "-A", "dual.test"});
        INFO(v6);
        CHECK(v6.out == "2001:db8:5::20 is alive\n");
    }
    SECTION("-m pings every address of a name") {
        const cli_result r = with_hosts({"-m", "-A", "dual.test"});
        INFO(r);
        CHECK(r.status == 0);
        CHECK(count_of(r.out_lines(), "198.18.0.20 is alive") == 1);
        CHECK(count_of(r.out_lines(), "2001:db8:5::20 is alive") == 1);
        const cli_result one = with_hosts({"-A", "dual.test"});
        CHECK(one.out_lines().size() == 1);
    }
    SECTION("a name without an address of the allowed family is unresolved: exit 2") {
        const cli_result r = with_hosts({"-4", "v6only.test", "127.0.0.1"});
        INFO(r);
        CHECK(r.status == 2);
        CHECK_THAT(r.err, Catch::StartsWith("v6only.test: "));
        CHECK(r.out == "127.0.0.1 is alive\n");
        const cli_result literal = with_hosts({"-4", "::1", "127.0.0.1"});
        CHECK(literal.status == 2);
        CHECK_THAT(literal.err, Catch::Contains("::1"));
    }
}

TEST_CASE("an unresolvable name is reported, the rest still pinged: exit 2", "[cli][exit]") {
    temp_file hosts("127.0.0.1 localhost\n");
    const cli_result r = run_cli(
        cli_run{.args = {"no-such-host.invalid", "127.0.0.1", "::1"}, .hosts_file = hosts.path});
    INFO(r);
    CHECK(r.status == 2);
    CHECK_THAT(r.err, Catch::StartsWith("no-such-host.invalid: "));
    CHECK(count_of(r.out_lines(), "127.0.0.1 is alive") == 1);
    CHECK(count_of(r.out_lines(), "::1 is alive") == 1);
    // Only unresolvable names: nothing to ping, still 2.
    const cli_result none =
        run_cli(cli_run{.args = {"no-such-host.invalid"}, .hosts_file = hosts.path});
    CHECK(none.status == 2);
}

TEST_CASE("an address given twice is pinged once", "[cli]") {
    // "0:0::1" is ::1 written differently: the same address. fping prints
    // a line per given target (the reports map each address back to every
    // name it was given as); the wire carries one series per address.
    lo_capture capture;
    const cli_result r =
        run_cli({"-c", "2", "-p", "5", "-q", "127.0.0.1", "::1", "127.0.0.1", "0:0::1"});
    INFO(r);
    CHECK(r.status == 0);
    const auto s = summaries(r);
    CHECK(s.count("127.0.0.1") == 1);
    CHECK(s.count("::1") == 1);
    CHECK(capture.send_times().size() == 4);
}

TEST_CASE("-g: CIDR prefixes (IPv4 and IPv6), ranges, the cap", "[cli][generate]") {
    testing::network_simulator sim(simulated("", "cli generate"));
    SECTION("IPv4 prefix: network and broadcast left out") {
        const cli_result r = run_cli({"-g", "127.1.0.0/29", "-c", "1", "-q"});
        INFO(r);
        CHECK(r.status == 0);
        const auto s = summaries(r);
        CHECK(s.size() == 6);
        for (int i = 1; i <= 6; ++i)
            CHECK(s.count("127.1.0." + std::to_string(i)) == 1);
    }
    SECTION("IPv6 prefix and two prefixes at once") {
        const cli_result r =
            run_cli({"-g", "2001:db8:5::10/126", "198.18.1.0/30", "-c", "1", "-q"});
        INFO(r);
        CHECK(r.status == 0);
        const auto s = summaries(r);
        CHECK(s.size() == 6);
        for (const char* a : {"2001:db8:5::10", "2001:db8:5::11", "2001:db8:5::12",
                              "2001:db8:5::13", "198.18.1.1", "198.18.1.2"})
            CHECK(s.count(a) == 1);
    }
    SECTION("a range FIRST LAST, both families") {
        const cli_result v4 = run_cli({"-g", "127.0.0.1", "127.0.0.4", "-a"});
        CHECK(v4.out == "127.0.0.1\n127.0.0.2\n127.0.0.3\n127.0.0.4\n");
        const cli_result v6 = run_cli({"-g", "2001:db8:5::1", "2001:db8:5::3", "-a"});
        INFO(v6);
        CHECK(v6.out == "2001:db8:5::1\n2001:db8:5::2\n2001:db8:5::3\n");
    }
    SECTION("above the cap: a clear error naming the prefix, exit 1") {
        const cli_result r = run_cli({"--max-targets", "4", "-g", "127.1.0.0/29"});
        INFO(r);
        CHECK(r.status == 1);
        CHECK_THAT(r.err, Catch::Contains("127.1.0.0/29") && Catch::Contains("6 addresses") &&
                              Catch::Contains("cap of 4"));
        const cli_result v6 = run_cli({"-g", "2001:db8::/64"});
        CHECK(v6.status == 1);
        CHECK_THAT(v6.err, Catch::Contains("2001:db8::/64") && Catch::Contains("cap of 1048576"));
    }
}

TEST_CASE("-f FILE and stdin", "[cli][file]") {
    temp_file list("# fleet\n127.0.0.1\n\n  ::1   # loopback\n127.0.0.1\nno-such.invalid "
                   "web01\n127.0.0.2\r\n  #127.0.0.3\n127.0.0.4 web04 # rack 4\n");
    SECTION("as fping: the first word of a line, '#' lines, blanks, CRLF: exit 2") {
        const cli_result r = run_cli({"-f", list.path});
        INFO(r);
        CHECK(r.status == 2);
        // In the order the replies came: compare as a set.
        const auto lines = r.out_lines();
        CHECK(std::set<std::string>(lines.begin(), lines.end()) ==
              std::set<std::string>{"127.0.0.1 is alive", "127.0.0.2 is alive",
                                    "127.0.0.4 is alive", "::1 is alive"});
        // The name of the line that does not resolve is its first word.
        CHECK_THAT(r.err, Catch::Contains("no-such.invalid: "));
        CHECK_THAT(r.err, !Catch::Contains("web01"));
    }
    SECTION("a directory, bytes that are not UTF-8, a long line") {
        const cli_result dir = run_cli({"-f", "/tmp"});
        INFO(dir);
        CHECK(dir.status == 1);
        CHECK(dir.err == "icmpengine: /tmp: Is a directory\n");
        temp_file odd("\xff\xfe.invalid\n127.0.0.1 \x80\x81\n" + std::string(5000, 'a') + "\n");
        const cli_result r = run_cli({"-f", odd.path});
        INFO(r);
        CHECK(r.status == 2);
        CHECK(count_of(r.out_lines(), "127.0.0.1 is alive") == 1);
    }
    SECTION("-f - reads stdin") {
        const cli_result r = run_cli(
            cli_run{.args = {"-f", "-", "-c", "1", "-q"}, .stdin_text = "127.0.0.3\n::1\n"});
        INFO(r);
        CHECK(r.status == 0);
        CHECK(summaries(r).size() == 2);
    }
    SECTION("no targets at all: stdin, as fping") {
        const cli_result r = run_cli(cli_run{.args = {"-a"}, .stdin_text = "127.0.0.4\n"});
        INFO(r);
        CHECK(r.status == 0);
        CHECK(r.out == "127.0.0.4\n");
        const cli_result empty = run_cli(cli_run{.args = {}});
        CHECK(empty.status == 1);
        CHECK(empty.err == "icmpengine: no targets in the standard input\n");
    }
    SECTION("targets on the command line and a file: refused, as fping") {
        const cli_result r = run_cli({"-f", list.path, "127.0.0.9", "-a"});
        CHECK(r.status == 1);
        CHECK(r.err == "icmpengine: targets on the command line and -f cannot be combined\n");
    }
    SECTION("an unreadable file is a system error naming it: exit 4") {
        const cli_result r = run_cli({"-f", "/nonexistent/targets.txt"});
        INFO(r);
        CHECK(r.status == 4);
        CHECK(r.err == "icmpengine: /nonexistent/targets.txt: No such file or directory\n");
    }
}

// ======================================================================
// Modes and timing

TEST_CASE("timeouts with icmp_echo_ignore_all: unreachable, retries, exit 1",
          "[cli][timeout][exit]") {
    // No upper bound on how long a run takes: a loaded machine stretches
    // any. That a timeout is what was asked for, and no longer, shows as a
    // reply that comes after it (from the simulator) counted as lost.
    testing::scoped_sysctl ignore("net.ipv4.icmp_echo_ignore_all", "1");
    // One ping (`args` and "-c 1") to a simulated target that answers after
    // 300 ms: lost, if the timeout is what the options make it.
    auto lost_when_answered_after_300ms = [](std::vector<std::string> args, const char* target) {
        testing::network_simulator sim(simulated("delay=300ms", target));
        args.insert(args.end(), {"-c", "1", "-q", target});
        const cli_result slow = run_cli(args);
        INFO(slow);
        CHECK(slow.status == 1);
        REQUIRE(summaries(slow).count(target));
        CHECK(summaries(slow).at(target).received == 0);
        CHECK(sim.requests().size() == 1);
    };
    SECTION("single-shot: 1 + RETRIES attempts, one after another") {
        lo_capture capture;
        const std::chrono::nanoseconds before = testing::realtime_now();
        const cli_result r =
            run_cli({"-t", "40", "-r", "2", "--json-lines", "-q", "127.0.0.1", "::1"});
        INFO(r);
        CHECK(r.status == 1);
        const schema_checker checker(load_schema());
        const auto lines = json_lines(r, checker);
        const auto targets = events(lines, "target");
        REQUIRE(targets.size() == 2);
        CHECK(targets[0]["address"] == "127.0.0.1");
        CHECK(targets[0]["sent"] == 3);
        CHECK(targets[0]["lost"] == 3);
        CHECK(targets[0]["alive"] == false);
        CHECK(targets[1]["sent"] == 1); // answered at once: no retry
        CHECK(targets[1]["alive"] == true);
        CHECK(r.took >= 120ms);
        // Attempt k leaves after k timeouts of 40 ms (by the kernel's clock).
        std::int64_t k = 0;
        for (const wire_request& w : capture.requests()) {
            if (w.destination != "127.0.0.1")
                continue;
            INFO("attempt " << k << " left " << ms(w.sent - before).count() << " ms in");
            CHECK(w.sent - before >= 40ms * k);
            ++k;
        }
        CHECK(k == 3);
    }
    SECTION("single-shot text: is unreachable; -r 0 is one attempt") {
        lo_capture capture;
        const cli_result r = run_cli({"-t", "30", "-r", "0", "127.0.0.1", "::1"});
        INFO(r);
        CHECK(r.status == 1);
        CHECK(r.out == "::1 is alive\n127.0.0.1 is unreachable\n");
        const auto sent = capture.requests();
        CHECK(std::count_if(sent.begin(), sent.end(), [](const wire_request& w) {
                  return w.destination == "127.0.0.1";
              }) == 1);
    }
    SECTION("-t in count mode; timeout lines") {
        const cli_result r = run_cli({"-c", "2", "-p", "20", "-t", "60", "127.0.0.1"});
        INFO(r);
        CHECK(r.status == 1);
        const auto lines = r.out_lines();
        REQUIRE(lines.size() == 2);
        CHECK(lines[0] == "127.0.0.1 : [0], timed out (NaN avg, 100% loss)");
        CHECK(lines[1] == "127.0.0.1 : [1], timed out (NaN avg, 100% loss)");
        // Ping 1 left at 20 ms and timed out 60 ms later.
        CHECK(r.took >= 80ms);
        const auto s = summaries(r);
        REQUIRE(s.count("127.0.0.1"));
        CHECK(s.at("127.0.0.1").sent == 2);
        CHECK(s.at("127.0.0.1").received == 0);
        CHECK(s.at("127.0.0.1").loss == 100);
        CHECK_FALSE(s.at("127.0.0.1").has_rtt);
        // And no longer than 60 ms.
        lost_when_answered_after_300ms({"-t", "60"}, "198.18.0.30");
    }
    SECTION("without -t, count mode waits one period (at most 2 s), as fping") {
        const cli_result r = run_cli({"-c", "1", "-p", "70", "127.0.0.1"});
        CHECK(r.status == 1);
        CHECK(r.took >= 70ms);
        // One period and no longer (not the 2 s cap).
        lost_when_answered_after_300ms({"-p", "70"}, "198.18.0.31");
    }
}

TEST_CASE("-c: per-reply lines, exact summaries on stderr", "[cli][count]") {
    const cli_result r = run_cli({"-c", "3", "-p", "10", "127.0.0.1", "::1"});
    INFO(r);
    CHECK(r.status == 0);
    for (const std::string& line : r.out_lines()) {
        std::smatch m;
        INFO(line);
        REQUIRE(std::regex_match(line, m, reply_line));
        CHECK(m[3] == "64"); // 56 + the 8-byte ICMP header, as fping counts
        CHECK(m[6] == "0");
    }
    CHECK(reply_indices(r)["127.0.0.1"] == std::vector<std::uint64_t>{0, 1, 2});
    CHECK(reply_indices(r)["::1"] == std::vector<std::uint64_t>{0, 1, 2});
    const auto s = summaries(r);
    REQUIRE(s.size() == 2);
    for (const auto& [name, sum] : s) {
        INFO(name);
        CHECK(sum.sent == 3);
        CHECK(sum.received == 3);
        CHECK(sum.loss == 0);
        CHECK(sum.has_rtt);
        CHECK(sum.out_of_order == 0);
        CHECK(sum.duplicates == 0);
        CHECK(sum.icmp_errors == 0);
    }
    // Names are padded to one width, as fping pads them.
    CHECK(count_of(r.err_lines(), "::1       : xmt/rcv/%loss = 3/3/0%") == 1);
}

TEST_CASE("-p and -D: pings to one target one period apart, timestamped", "[cli][count]") {
    lo_capture capture;
    const auto wall = [] {
        return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    };
    const double started = wall();
    const std::chrono::nanoseconds before = testing::realtime_now();
    const cli_result r = run_cli({"-c", "4", "-p", "60", "-D", "127.0.0.1"});
    const double ended = wall();
    INFO(r);
    CHECK(r.status == 0);
    const auto lines = r.out_lines();
    REQUIRE(lines.size() == 4);
    std::vector<double> stamps;
    const std::regex stamped(R"(^\[(\d+\.\d{5})\] 127\.0\.0\.1 : \[\d\], 64 bytes, .*)");
    for (const std::string& line : lines) {
        std::smatch m;
        INFO(line);
        REQUIRE(std::regex_match(line, m, stamped));
        stamps.push_back(std::stod(m[1]));
    }
    // Wall-clock time of the run, to the 10 us the stamps are printed to.
    CHECK(stamps.front() >= started - 0.00001);
    CHECK(stamps.back() <= ended + 0.00001);
    CHECK(std::is_sorted(stamps.begin(), stamps.end()));
    // The stamps are when the lines were printed, which a stalled process
    // delays; the send times, by the kernel's clock, keep the period: ping k
    // leaves no earlier than k x 60 ms after the start (test_ping_series.cpp
    // checks that the schedule does not drift).
    const auto sent = capture.requests();
    REQUIRE(sent.size() == 4);
    for (std::size_t k = 0; k < sent.size(); ++k) {
        INFO("ping " << k << " left at " << ms(sent[k].sent - before).count() << " ms");
        CHECK(sent[k].sent - before >= 60ms * static_cast<int>(k));
    }
    CHECK(r.took >= 180ms);
}

TEST_CASE("-C: per-ping RTT vectors, '-' for no reply", "[cli][count]") {
    testing::scoped_sysctl ignore("net.ipv4.icmp_echo_ignore_all", "1");
    const cli_result r = run_cli({"-C", "3", "-p", "10", "-t", "30", "::1", "127.0.0.1"});
    INFO(r);
    CHECK(r.status == 1);
    CHECK(reply_indices(r)["::1"] == std::vector<std::uint64_t>{0, 1, 2});
    const auto err = r.err_lines();
    CHECK(count_of(err, "127.0.0.1 : - - -") == 1);
    CHECK(std::count_if(err.begin(), err.end(), [](const std::string& l) {
              return std::regex_match(l, std::regex(R"(^::1       : [\d.]+ [\d.]+ [\d.]+$)"));
          }) == 1);
    const cli_result quiet = run_cli({"-C", "2", "-p", "5", "-q", "::1"});
    CHECK(quiet.out.empty());
    CHECK(std::regex_match(quiet.err, std::regex(R"(^::1 : [\d.]+ [\d.]+\n$)")));
}

TEST_CASE("-q, -a, -u, -e, --stats", "[cli][output]") {
    testing::scoped_sysctl ignore("net.ipv4.icmp_echo_ignore_all", "1");
    SECTION("-q: single-shot prints nothing; count mode only the summaries") {
        const cli_result single = run_cli({"-q", "-t", "20", "-r", "0", "127.0.0.1", "::1"});
        CHECK(single.status == 1);
        CHECK(single.out.empty());
        CHECK(single.err.empty());
        const cli_result count = run_cli({"-q", "-c", "2", "-p", "5", "-t", "20", "::1"});
        CHECK(count.status == 0);
        CHECK(count.out.empty());
        CHECK(summaries(count).size() == 1);
        CHECK(count.err_lines().size() == 1);
    }
    SECTION("-a and -u, single-shot and count mode") {
        const std::vector<std::string> targets{"-t", "20", "-r", "0", "127.0.0.1", "::1"};
        auto with = [&](std::vector<std::string> args) {
            args.insert(args.end(), targets.begin(), targets.end());
            return run_cli(args);
        };
        CHECK(with({"-a"}).out == "::1\n");
        CHECK(with({"-u"}).out == "127.0.0.1\n");
        // As fping: not both.
        const cli_result both = with({"-a", "-u"});
        CHECK(both.out.empty());
        CHECK(both.err == "icmpengine: specify only one of a, u\n");
        CHECK(both.status == 1);
        // fping 5.1 lists nothing in count mode: -a and -u only silence the
        // per-reply lines there.
        const cli_result count_alive = with({"-a", "-c", "2", "-p", "5"});
        CHECK(count_alive.out.empty());
        CHECK(summaries(count_alive).size() == 2);
        CHECK(with({"-u", "-c", "2", "-p", "5"}).out.empty());
    }
    SECTION("-e: the RTT on 'is alive' lines") {
        const cli_result r = run_cli({"-e", "::1"});
        CHECK(std::regex_match(r.out, std::regex(R"(^::1 is alive \([\d.]+ ms\)\n$)")));
    }
    SECTION("--stats: totals at the end") {
        const cli_result r = run_cli({"--stats", "-t", "20", "-r", "1", "127.0.0.1", "::1"});
        INFO(r);
        CHECK(r.status == 1);
        for (const char* row :
             {"       2 targets", "       1 alive", "       1 unreachable",
              "       0 unknown addresses", "       2 timeouts (waiting for response)",
              "       3 ICMP Echos sent", "       1 ICMP Echo Replies received",
              "ms (min round trip time)", "sec (elapsed real time)"})
            CHECK_THAT(r.err, Catch::Contains(row));
    }
}

TEST_CASE("-i / --rate pace every ping of the run; -i 0 sends unpaced", "[cli][pace]") {
    const std::vector<std::string> targets{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4",
                                           "::1"};
    for (const auto& pace :
         std::vector<std::vector<std::string>>{{"-i", "30"}, {"--rate", "33.3333"}}) {
        INFO(pace[0]);
        lo_capture capture;
        std::vector<std::string> args = pace;
        args.insert(args.end(), {"-c", "1", "-q"});
        args.insert(args.end(), targets.begin(), targets.end());
        const std::chrono::nanoseconds before = testing::realtime_now();
        const cli_result r = run_cli(args);
        INFO(r);
        CHECK(r.status == 0);
        const auto at = capture.send_times();
        REQUIRE(at.size() == 5);
        for (std::size_t i = 0; i < at.size(); ++i) {
            // Request i leaves at least i x 30 ms after the start, by the
            // kernel's clock. (Not each gap: a request that left late, its
            // process preempted, shortens the gap to the next one.)
            INFO("request " << i << " left " << ms(at[i] - before).count() << " ms in");
            CHECK(at[i] - before >= 30ms * static_cast<int>(i));
        }
    }
    // By default, as fping: 10 ms between any two pings. 5 targets: the
    // last request leaves at least 40 ms after the first.
    {
        lo_capture capture;
        const cli_result r =
            run_cli({"-c", "1", "-q", "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "::1"});
        INFO(r);
        CHECK(r.status == 0);
        const auto at = capture.send_times();
        REQUIRE(at.size() == 5);
        CHECK(at.back() - at.front() >= 40ms);
    }
    // -i 0: 200 targets leave in one burst, in the engine's first loop
    // turns. Paced as by default (10 ms), the 200 sends would span at least
    // 1.99 s on the wire; unpaced they take a few milliseconds. The bound,
    // a second, is hundreds of times the normal span and half the paced one:
    // only pacing, or a sender stalled for most of a second, fails it.
    lo_capture capture;
    const cli_result r =
        run_cli({"--json-lines", "-i", "0", "-q", "-c", "1", "-g", "127.0.0.1", "127.0.0.200"});
    INFO(r);
    CHECK(r.status == 0);
    const schema_checker checker(load_schema());
    CHECK(events(json_lines(r, checker), "start").at(0)["pace_ms"] == 0.0);
    const auto at = capture.send_times();
    REQUIRE(at.size() == 200);
    CHECK(at.back() - at.front() < 1s);
}

namespace {

/// The lines of `text` that are complete (a child's output read so far may
/// end in the middle of one).
std::vector<std::string> complete_lines(const std::string& text) {
    std::vector<std::string> lines = cli_result::split(text);
    if (!text.empty() && text.back() != '\n' && !lines.empty())
        lines.pop_back();
    return lines;
}

/// Conditions on the output so far, for signal_step::when.
auto reply_lines_at_least(const char* target, std::size_t n) {
    return
        [target, n](const cli_result& so_far) { return reply_indices(so_far)[target].size() >= n; };
}

/// The `sent` of the first interim summary on stderr, if one was written.
std::optional<std::uint64_t> interim_sent(const cli_result& so_far) {
    for (const std::string& line : complete_lines(so_far.err)) {
        std::smatch m;
        if (std::regex_match(line, m, summary_line))
            return std::stoull(m[2]);
    }
    return std::nullopt;
}

/// JSON output so far: the ping events, and the interim target event's `sent`.
std::size_t json_pings(const cli_result& so_far) {
    std::size_t n = 0;
    for (const std::string& line : complete_lines(so_far.out))
        n += json::parse(line).at("event") == "ping" ? 1 : 0;
    return n;
}
std::optional<std::uint64_t> json_interim_sent(const cli_result& so_far) {
    for (const std::string& line : complete_lines(so_far.out)) {
        const json j = json::parse(line);
        if (j.at("event") == "target" && j.at("final") == false)
            return j.at("sent").get<std::uint64_t>();
    }
    return std::nullopt;
}

} // namespace

TEST_CASE("-l and SIGINT: summary, every ping counted once", "[cli][signal][loop]") {
    // The signal goes once both targets have 8 reply lines out.
    const cli_result r =
        run_cli(cli_run{.args = {"-l", "-p", "20", "127.0.0.1", "::1"},
                        .signals = {{SIGINT, [](const cli_result& so_far) {
                                         return reply_lines_at_least("127.0.0.1", 8)(so_far) &&
                                                reply_lines_at_least("::1", 8)(so_far);
                                     }}}});
    INFO(r);
    CHECK(r.status == 0);
    const auto indices = reply_indices(r);
    const auto s = summaries(r);
    REQUIRE(s.size() == 2);
    for (const auto& [name, sum] : s) {
        INFO(name);
        const auto& seen = indices.at(name);
        CHECK(seen.size() >= 8);
        // Each index once, 0..n-1, and the summary counts exactly those.
        std::vector<std::uint64_t> sorted = seen;
        std::sort(sorted.begin(), sorted.end());
        for (std::size_t k = 0; k < sorted.size(); ++k)
            CHECK(sorted[k] == k);
        CHECK(sum.sent == seen.size());
        CHECK(sum.received == seen.size());
    }
    SECTION("SIGTERM does the same") {
        const cli_result t =
            run_cli(cli_run{.args = {"-l", "-p", "20", "::1"},
                            .signals = {{SIGTERM, reply_lines_at_least("::1", 1)}}});
        INFO(t);
        CHECK(t.status == 0);
        CHECK(summaries(t).size() == 1);
    }
}

TEST_CASE("SIGINT waits for pings in flight; a second SIGINT cancels them", "[cli][signal]") {
    SECTION("one SIGINT: no more sends, the replies in flight still counted") {
        // The signal goes once the simulator has the second request; the
        // third is due 500 ms after it, long after the signal was handled
        // (within the tool's 25 ms tick).
        testing::network_simulator sim(simulated("delay=300ms", "cli interrupt"));
        const cli_result r = run_cli(cli_run{
            .args = {"-l", "-p", "500", "-t", "5s", "198.18.0.2"},
            .signals = {{SIGINT, [&](const cli_result&) { return sim.requests().size() >= 2; }}}});
        INFO(r);
        CHECK(r.status == 0);
        CHECK(r.took >= 300ms); // waited for the replies, which take 300 ms
        const auto indices = reply_indices(r)["198.18.0.2"];
        CHECK(indices.size() == 2);
        const auto s = summaries(r).at("198.18.0.2");
        CHECK(s.sent == indices.size());
        CHECK(s.received == indices.size());
        CHECK(sim.requests().size() == indices.size()); // nothing sent after the signal
    }
    SECTION("two SIGINTs: the pings in flight are cancelled and not counted") {
        // Replies would take 30 s: waiting for them is what the second
        // SIGINT must prevent.
        testing::network_simulator sim(simulated("delay=30s", "cli interrupt twice"));
        const cli_result r = run_cli(cli_run{
            .args = {"-l", "-p", "50", "-t", "60s", "--json-lines", "198.18.0.2"},
            .signals = {{SIGINT, [&](const cli_result&) { return sim.requests().size() >= 2; }},
                        {SIGINT}}});
        INFO(r);
        CHECK(r.status == 1);
        CHECK(r.took < 20s); // not the 30 s the replies would take
        const schema_checker checker(load_schema());
        const auto lines = json_lines(r, checker);
        const auto target = events(lines, "target").at(0);
        CHECK(target["sent"] == 0);
        CHECK(target["received"] == 0);
        const auto cancelled = target["cancelled"].get<std::size_t>();
        CHECK(cancelled >= 2);
        // Every request sent reaches the simulator, if not yet read: wait for
        // them before comparing.
        CHECK(sim.wait_for_requests(cancelled, 20s));
        CHECK(sim.requests().size() == cancelled);
        CHECK(target["loss_percent"] == 0.0);
        const auto summary = events(lines, "summary").at(0);
        CHECK(summary["interrupted"] == true);
        CHECK(summary["exit_code"] == 1);
    }
}

TEST_CASE("SIGQUIT prints an interim summary and carries on", "[cli][signal]") {
    // SIGQUIT once 3 pings are answered; SIGINT once the interim summary is
    // out and another ping was answered after it.
    const cli_result r = run_cli(cli_run{
        .args = {"-l", "-p", "20", "127.0.0.1"},
        .signals = {{SIGQUIT, reply_lines_at_least("127.0.0.1", 3)},
                    {SIGINT, [](const cli_result& so_far) {
                         const auto interim = interim_sent(so_far);
                         return interim && reply_lines_at_least("127.0.0.1", *interim + 1)(so_far);
                     }}}});
    INFO(r);
    CHECK(r.status == 0);
    // Without -q (its reply lines are what the signals wait for), a blank
    // line comes before the final summary, as in fping.
    std::vector<std::string> err = r.err_lines();
    err.erase(std::remove(err.begin(), err.end(), std::string()), err.end());
    REQUIRE(err.size() == 3);
    CHECK(std::regex_match(err[0], std::regex(R"(^\[\d\d:\d\d:\d\d\]$)")));
    std::smatch interim, final;
    REQUIRE(std::regex_match(err[1], interim, summary_line));
    REQUIRE(std::regex_match(err[2], final, summary_line));
    CHECK(std::stoull(interim[2]) >= 3);
    CHECK(std::stoull(final[2]) > std::stoull(interim[2]));

    SECTION("with --json: target and summary objects with final = false") {
        const cli_result j = run_cli(cli_run{
            .args = {"--json-lines", "-l", "-p", "20", "127.0.0.1"},
            .signals = {{SIGQUIT, [](const cli_result& so_far) { return json_pings(so_far) >= 3; }},
                        {SIGINT, [](const cli_result& so_far) {
                             const auto interim = json_interim_sent(so_far);
                             return interim && json_pings(so_far) > *interim;
                         }}}});
        INFO(j);
        CHECK(j.status == 0);
        const schema_checker checker(load_schema());
        std::vector<json> lines;
        for (json& line : json_lines(j, checker))
            if (line["event"] != "ping")
                lines.push_back(std::move(line));
        REQUIRE(lines.size() == 5);
        CHECK(lines[0]["event"] == "start");
        CHECK(lines[0]["mode"] == "loop");
        CHECK(lines[0]["count"] == nullptr);
        CHECK(lines[1]["event"] == "target");
        CHECK(lines[1]["final"] == false);
        CHECK(lines[2]["event"] == "summary");
        CHECK(lines[2]["final"] == false);
        CHECK(lines[2]["exit_code"] == nullptr);
        CHECK(lines[3]["event"] == "target");
        CHECK(lines[3]["final"] == true);
        CHECK(lines[3]["sent"].get<std::uint64_t>() > lines[1]["sent"].get<std::uint64_t>());
        CHECK(lines[4]["event"] == "summary");
        CHECK(lines[4]["interrupted"] == true);
        CHECK(lines[4]["exit_code"] == 0);
    }
}

TEST_CASE("a progress line on a terminal's stderr, none otherwise", "[cli][progress]") {
    // On a terminal: SIGINT once the progress line (drawn each second) is out.
    const cli_result tty = run_cli(cli_run{
        .args = {"-l", "-p", "100", "127.0.0.1"},
        .signals = {{SIGINT,
                     [](const cli_result& so_far) { return contains(so_far.err, "pings/s"); }}},
        .stderr_tty = true});
    INFO(tty);
    CHECK(tty.status == 0);
    CHECK_THAT(tty.err, Catch::Contains("0/1 targets done, 1 alive") &&
                            Catch::Contains("pings/s") && Catch::Contains("\r\033[K"));
    // The summary comes after the progress line was erased.
    CHECK(tty.err.rfind("xmt/rcv/%loss") > tty.err.rfind("\r\033[K"));
    CHECK_THAT(tty.out, !Catch::Contains("targets done"));
    // On a pipe: SIGINT once ping 11's reply is out. Ping 11 leaves 1.1 s
    // after the start, and the tool writes its line out in a tick in which
    // it would also have drawn the first progress line (due at 1 s).
    const cli_result pipe = run_cli(
        cli_run{.args = {"-l", "-p", "100", "127.0.0.1"},
                .signals = {{SIGINT, [](const cli_result& so_far) {
                                 const auto seen = reply_indices(so_far)["127.0.0.1"];
                                 return std::find(seen.begin(), seen.end(), 11) != seen.end();
                             }}}});
    INFO(pipe);
    CHECK(pipe.status == 0);
    CHECK_THAT(pipe.err, !Catch::Contains("targets done") && !Catch::Contains("\r"));
}

// ======================================================================
// Packets

TEST_CASE("packet options on the wire: -s/-b, --dscp, -O, -H, -M, -S", "[cli][packet]") {
    testing::run("ip -6 addr add 2001:db8:7::9/128 dev lo nodad");
    lo_capture capture;
    const cli_result r = run_cli({"-c", "1", "-b", "100", "--dscp", "46", "-H", "7", "-M", "-S",
                                  "127.0.0.9", "-S", "2001:db8:7::9", "127.0.0.1", "::1"});
    INFO(r);
    CHECK(r.status == 0);
    CHECK(count_of(r.out_lines(), "108 bytes") == 2);
    const auto seen = capture.requests();
    REQUIRE(seen.size() == 2);
    for (const wire_request& w : seen) {
        INFO(w.destination);
        CHECK(w.traffic_class == 46u << 2);
        CHECK(w.ttl == 7);
        CHECK(w.payload == 100);
        if (w.family == AF_INET) {
            CHECK(w.dont_fragment);
            CHECK(w.source == "127.0.0.9");
        } else {
            CHECK(w.source == "2001:db8:7::9");
        }
    }
    // -b and -O (a TOS byte), and the defaults: no DF, TTL 64, no TOS.
    const cli_result b = run_cli({"-c", "1", "-b", "20", "-O", "0x20", "127.0.0.1"});
    CHECK(count_of(b.out_lines(), "28 bytes") == 1);
    const cli_result plain = run_cli({"-c", "1", "127.0.0.1"});
    CHECK(count_of(plain.out_lines(), "64 bytes") == 1);
    const auto more = capture.requests();
    REQUIRE(more.size() == 2);
    CHECK(more[0].payload == 20);
    CHECK(more[0].traffic_class == 0x20);
    CHECK(more[1].payload == 56);
    CHECK(more[1].traffic_class == 0);
    CHECK(more[1].ttl == 64);
    testing::run("ip -6 addr del 2001:db8:7::9/128 dev lo");
}

TEST_CASE("fping 5.5's -k, --print-tos, -R and --check-source", "[cli][packet]") {
    SECTION("-k: SO_MARK; without CAP_NET_ADMIN a one-line error naming it, exit 4") {
        const cli_result r = run_cli({"-k", "7", "-c", "1", "127.0.0.1", "::1"});
        INFO(r);
        CHECK(r.status == 0);
        // Linux 5.17+ lets CAP_NET_RAW set SO_MARK too: drop both, and let
        // root's group open datagram sockets without CAP_NET_RAW.
        testing::scoped_sysctl allow("net.ipv4.ping_group_range", "0 2147483647");
        const cli_result denied =
            run_cli(cli_run{.args = {"-k", "7", "127.0.0.1"},
                            .prefix = {"setpriv", "--inh-caps=-net_admin,-net_raw",
                                       "--bounding-set=-net_admin,-net_raw"}});
        INFO(denied);
        CHECK(denied.status == 4);
        CHECK_THAT(denied.err, Catch::Contains("SO_MARK 7") && Catch::Contains("CAP_NET_ADMIN"));
        CHECK(denied.err_lines().size() == 1);
    }
    SECTION("--print-tos: the reply's TOS byte / traffic class, as fping prints it") {
        const cli_result r = run_cli({"--print-tos", "-O", "0x20", "-c", "1", "127.0.0.1", "::1"});
        INFO(r);
        CHECK(r.status == 0);
        CHECK(count_of(r.out_lines(), "(TOS 32)") == 2);
        const cli_result a = run_cli({"--print-tos", "127.0.0.1"});
        INFO(a);
        CHECK(a.out == "127.0.0.1 is alive (TOS 0)\n");
        const cli_result j = run_cli({"-J", "--print-tos", "-O", "0x20", "-c", "1", "127.0.0.1"});
        INFO(j);
        CHECK(count_of(j.out_lines(), "\"tos\": 32") == 1);
    }
    SECTION("-R: random payload bytes, replies still matched") {
        const cli_result r =
            run_cli({"-R", "-c", "3", "-p", "20", "-b", "300", "127.0.0.1", "::1"});
        INFO(r);
        CHECK(r.status == 0);
        CHECK(count_of(r.out_lines(), "308 bytes") == 6);
    }
    SECTION("--check-source: a reply from another address does not count") {
        testing::network_simulator sim(
            simulated("198.18.0.4:corrupt=source:1:198.18.0.99", "cli check source"));
        const cli_result r =
            run_cli({"--check-source", "-c", "1", "-t", "200", "198.18.0.4", "198.18.0.5"});
        INFO(r);
        CHECK(r.status == 1);
        CHECK(count_of(r.err_lines(), "198.18.0.4 : xmt/rcv/%loss = 1/0/100%") == 1);
        CHECK(count_of(r.err_lines(), "198.18.0.5 : xmt/rcv/%loss = 1/1/0%") == 1);
        // The simulator did answer 198.18.0.4, from 198.18.0.99.
        bool answered_from_elsewhere = false;
        for (const auto& q : sim.requests())
            answered_from_elsewhere |= q.corrupted(testing::corruption::source);
        CHECK(answered_from_elsewhere);
    }
}

TEST_CASE("-M: no fragmentation, a packet above the MTU is a send error", "[cli][packet]") {
    // Linux sets DF on IPv4 pings anyway while they fit the path MTU
    // (IP_PMTUDISC_WANT); what -M changes is that a larger one is refused
    // instead of fragmented (IP_PMTUDISC_DO, IPV6_DONTFRAG).
    testing::run("ip link set lo mtu 1500");
    for (const char* target : {"127.0.0.1", "::1"}) {
        INFO(target);
        const cli_result fragmented = run_cli({"-c", "1", "-b", "3000", target});
        CHECK(fragmented.status == 0);
        CHECK(count_of(fragmented.out_lines(), "3008 bytes") == 1);
        const cli_result refused = run_cli({"-M", "-c", "1", "-b", "3000", target});
        INFO(refused);
        CHECK(refused.status == 1);
        CHECK(summaries(refused).at(target).sent == 1);
        // As fping: the send error is named in the default mode only.
        const cli_result told = run_cli({"-M", "-r", "0", "-b", "3000", target});
        INFO(told);
        CHECK(told.status == 1);
        CHECK_THAT(told.err, Catch::Contains("error while sending ping: Message too long"));
    }
    testing::run("ip link set lo mtu 65536");
}

TEST_CASE("-I binds to an interface", "[cli][packet]") {
    CHECK(run_cli({"-I", "lo", "127.0.0.1"}).status == 0);
    // Bound to another interface, loopback's addresses are not reachable.
    testing::run("ip link add veth7a type veth peer name veth7b && ip link set veth7a up");
    const cli_result other = run_cli({"-I", "veth7a", "-t", "30", "-r", "0", "127.0.0.1"});
    INFO(other);
    CHECK(other.status == 1);
    testing::run("ip link del veth7a");
    const cli_result missing = run_cli({"-I", "nosuchif0", "127.0.0.1"});
    INFO(missing);
    CHECK(missing.status == 4);
    CHECK_THAT(missing.err, Catch::Contains("SO_BINDTODEVICE \"nosuchif0\"") &&
                                Catch::Contains("No such device"));
}

TEST_CASE("ICMP errors and duplicates are reported and counted", "[cli][stray]") {
    testing::network_simulator sim(
        simulated("198.18.0.6:error=unreach:1;198.18.0.4:dup=1:2", "cli icmp errors"));
    // -a: no line per reply, so fping's duplicate lines are printed;
    // --extended-summary: the counts on the summary lines.
    const cli_result r = run_cli({"--extended-summary", "-a", "-c", "2", "-p", "10", "-t", "500",
                                  "198.18.0.6", "198.18.0.4"});
    INFO(r);
    CHECK(r.status == 1);
    CHECK(count_of(r.err_lines(),
                   "ICMP Host Unreachable from 198.18.255.254 for ICMP Echo sent to 198.18.0.6") ==
          2);
    CHECK(count_of(r.err_lines(), "198.18.0.4 : duplicate for [") == 4);
    const auto s = summaries(r);
    CHECK(s.at("198.18.0.6").icmp_errors == 2);
    CHECK(s.at("198.18.0.6").received == 0);
    CHECK(s.at("198.18.0.6").loss == 100);
    CHECK(s.at("198.18.0.4").duplicates == 4);
    CHECK(s.at("198.18.0.4").received == 2);
}

TEST_CASE("a socket the kernel refuses names the sysctl to fix: exit 4", "[cli][exit]") {
    testing::scoped_sysctl forbid("net.ipv4.ping_group_range", "1 0");
    // nobody: no CAP_NET_RAW for the raw-socket fallback, gid outside "1 0".
    const cli_result r =
        run_cli(cli_run{.args = {"127.0.0.1"},
                        .prefix = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}});
    INFO(r);
    CHECK(r.status == 4);
    CHECK_THAT(r.err, Catch::Contains("IPv4 ICMP socket") &&
                          Catch::Contains("sysctl -w net.ipv4.ping_group_range"));
}

// ======================================================================
// Bad input

TEST_CASE("every bad input: one line naming the offending text, fping's exit code",
          "[cli][args][exit]") {
    struct bad {
        std::vector<std::string> args;
        std::string message; ///< stderr, after "icmpengine: "
        int status = 1;
    };
    const std::string hint = "\nsee 'icmpengine -h' for usage information";
    const std::vector<bad> cases = {
        // What getopt_long refuses, worded as fping's optparse.
        {{"-Z", "::1"}, "invalid option -- 'Z'" + hint},
        {{"--frob", "::1"}, "invalid option -- 'frob'" + hint},
        {{"--coun=2", "::1"}, "invalid option -- 'coun=2'" + hint},
        {{"--quiet=1", "::1"}, "option takes no arguments -- 'quiet'" + hint},
        {{"::1", "-c"}, "option requires an argument -- 'c'" + hint},
        {{"::1", "--count"}, "option requires an argument -- 'count'" + hint},
        // Values, as fping 5.5 reads them.
        {{"-c", "abc", "::1"}, "-c: 'abc' is not a whole number"},
        {{"-c", "5x", "::1"}, "-c: '5x' is not a whole number"},
        {{"-c", "0", "::1"}, "-c: '0' must be at least 1"},
        {{"-C", "-2", "::1"}, "-C: '-2' is not a whole number"},
        {{"-c", "99999999999", "::1"}, "-c: '99999999999' is out of range (at most 4294967295)"},
        {{"-p", "10xs", "-c", "2", "::1"}, "-p: '10xs' is not a duration"},
        {{"-p", "0", "-c", "2", "::1"}, "-p must be >= 0.001"},
        {{"-t", "0", "::1"}, "-t: '0' must be above 0"},
        {{"-t", "9999999999999", "::1"},
         "-t: '9999999999999' is out of range (at most 315360000000 ms)"},
        {{"-t", "1e400", "::1"}, "-t: '1e400' is out of range"},
        {{"-i", "fast", "::1"}, "-i: 'fast' is not a duration"},
        {{"-i", "-5", "::1"}, "-i: '-5' is not a duration"},
        {{"-B", "0", "::1"}, "backoff factor 0.0 not valid, must be between 1.0 and 5.0"},
        {{"-B", "6", "::1"}, "backoff factor 6.0 not valid, must be between 1.0 and 5.0"},
        {{"-B", "x", "::1"}, "-B: 'x' is not a number of 0 or more"},
        {{"-r", "x", "::1"}, "-r: 'x' is not a whole number"},
        {{"-b", "70000", "::1"}, "data size 70000 not valid, must be lower than 65488"},
        {{"-H", "256", "::1"}, "ttl 256 out of range"},
        {{"-H", "0", "::1"}, "-H: '0' must be at least 1"},
        {{"-x", "0", "::1"}, "-x: '0' must be at least 1"},
        {{"-Q", "x", "-l", "::1"}, "-Q: 'x' is not a number of 0 or more"},
        {{"--timestamp-format", "unix", "-D", "::1"},
         "--timestamp-format: 'unix' is not ctime, iso or rfc3339"},
        {{"--rate", "0", "::1"}, "--rate: '0' is out of range (0.001 to 1000000000)"},
        {{"--dscp", "64", "::1"}, "--dscp: '64' is out of range (at most 63)"},
        {{"-O", "zz", "::1"}, "-O: 'zz' is not a whole number"},
        {{"-O", "256", "::1"}, "-O: '256' is out of range (at most 255)"},
        {{"-S", "1.2.3", "::1"}, "can't parse source address: 1.2.3"},
        {{"--max-targets", "0", "::1"}, "--max-targets: '0' must be at least 1"},
        // Long or odd inputs are cut and escaped.
        {{"-c", std::string(200, '7') + "x", "::1"},
         "-c: '" + std::string(64, '7') + "...' is not a whole number"},
        {{"-t", "\xff\n", "::1"}, "-t: '\\xff\\x0a' is not a duration"},
        // fping's combination checks, in its words.
        {{"-4", "-6", "::1"}, "can't specify both -4 and -6"},
        {{"-n", "-d", "::1"}, "use either one of -d or -n"},
        {{"-a", "-u", "::1"}, "specify only one of a, u"},
        {{"-c", "1", "-l", "::1"}, "specify only one of c, l"},
        {{"-C", "2", "-l", "::1"}, "specify only one of c, l"},
        {{"-J", "::1"}, "option -J, --json requires -c, -C, or -l"},
        {{"-I", "lo", "--oiface", "lo", "::1"}, "specify only --oiface or -I, --iface"},
        // Ours.
        {{"-i", "10", "--rate", "5", "::1"}, "-i/--interval and --rate cannot be combined"},
        {{"--dscp", "1", "-O", "4", "::1"}, "--dscp and -O/--tos cannot be combined"},
        {{"-J", "--json-lines", "-c", "1", "::1"},
         "-J/--json (fping's JSON) and --json-lines cannot be combined"},
        // What the engine cannot do: exit 3, never a silent ignore.
        {{"--icmp-timestamp", "127.0.0.1"},
         "--icmp-timestamp is not supported: icmpengine sends ICMP echo requests only",
         3},
        {{"--oiface", "lo", "::1"},
         "--oiface is not supported: the engine chooses no outgoing interface per packet (use -I)",
         3},
        {{"-O", "0x03", "::1"},
         "-O with the ECN bits set is not supported: only the DSCP (the upper six bits of the "
         "TOS byte) can be set",
         3},
        // Targets.
        {{"-g"}, "-g needs ADDRESS/PREFIX or FIRST LAST"},
        {{"-g", "127.0.0.0/33"},
         "-g: CIDR prefix \"127.0.0.0/33\": the prefix length \"33\" is not a number from 0 to 32"},
        {{"-g", "127.0.0.9", "127.0.0.1"},
         "-g: range \"127.0.0.9\" \"127.0.0.1\": the first address is above the last"},
        {{"-g", "127.0.0.1", "::9"}, "::9"},
        {{"-g", "127.0.0.1", "127.0.0.2", "127.0.0.3"},
         "-g takes one ADDRESS/PREFIX (or several) or a range FIRST LAST"},
        {{"-g", std::string(300, '1') + "/24"},
         "-g: '" + std::string(64, '1') + "...' is not an address, prefix or range"},
        {{"-g", "-f", "x", "127.0.0.0/30"}, "-g and -f cannot be combined"},
        {{"-6", "-g", "127.0.0.0/30"}, "127.0.0.0/30"},
        {{"--max-targets", "300", "-g", "127.1.0.0/24", "127.2.0.0/24"},
         "-g: the prefixes expand to 508 addresses, more than --max-targets 300"},
    };
    for (const bad& c : cases) {
        const cli_result r = run_cli(c.args);
        INFO(r);
        CHECK(r.status == c.status);
        CHECK_THAT(r.err, Catch::StartsWith("icmpengine: ") && Catch::Contains(c.message));
        // One line (two for getopt's refusals: fping's hint after it).
        CHECK(r.err_lines().size() == (c.message.find(hint) == std::string::npos ? 1u : 2u));
        CHECK(r.out.empty());
    }
}

TEST_CASE("fping's option forms: bundles, attached values, long forms, options after targets",
          "[cli][args]") {
    for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
             {"-qc2", "-p10", "127.0.0.1"},
             {"-q", "-c", "2", "-p", "10", "127.0.0.1"},
             {"--quiet", "--count=2", "--period", "10", "127.0.0.1"},
             {"127.0.0.1", "-q", "--count", "2", "--period=10"},
             {"-B1", "-r1", "-i10", "-C", "2", "-q", "-p", "10", "-T", "5", "127.0.0.1"},
         }) {
        const cli_result r = run_cli(args);
        INFO(r);
        CHECK(r.status == 0);
        CHECK(r.out.empty());
        CHECK(r.err_lines().size() == 1);
        CHECK_THAT(r.err, Catch::StartsWith("127.0.0.1 : "));
    }
    // "--" ends the options: "-q" after it is a target (that does not resolve).
    const cli_result r = run_cli({"127.0.0.1", "--", "-q"});
    CHECK(r.status == 2);
    CHECK(r.out == "127.0.0.1 is alive\n");
    CHECK_THAT(r.err, Catch::StartsWith("-q: "));
    // -s is fping's --stats now (the size is -b).
    const cli_result stats = run_cli({"-qs", "127.0.0.1"});
    CHECK(stats.status == 0);
    CHECK_THAT(stats.err, Catch::Contains(" 1 targets"));
}

TEST_CASE("-x N: exit 0 when N given targets answered, as fping", "[cli][exit]") {
    // 198.18.0.1 has no route in this namespace: it cannot answer.
    const std::vector<std::string> two{"-t", "50", "-r", "0", "127.0.0.1", "198.18.0.1"};
    auto with = [&](std::vector<std::string> args) {
        args.insert(args.end(), two.begin(), two.end());
        return run_cli(args);
    };
    CHECK(with({}).status == 1);
    CHECK(with({"-x", "1"}).status == 0);
    CHECK(with({"-x", "2"}).status == 1);
    // Counted per given target: an address given twice answers twice.
    CHECK(run_cli({"-x", "2", "127.0.0.1", "127.0.0.1"}).status == 0);
}

TEST_CASE("-n, -d, -A: the names fping shows", "[cli][names]") {
    temp_file hosts("127.0.0.1 localhost\n127.0.0.7 seven.test\n");
    auto with_hosts = [&](std::vector<std::string> args) {
        return run_cli(cli_run{.args = std::move(args), .hosts_file = hosts.path});
    };
    CHECK(with_hosts({"-n", "127.0.0.7"}).out == "seven.test is alive\n");
    CHECK(with_hosts({"-d", "seven.test"}).out == "seven.test is alive\n");
    CHECK(with_hosts({"-n", "seven.test"}).out == "seven.test is alive\n");
    CHECK(with_hosts({"-A", "seven.test"}).out == "127.0.0.7 is alive\n");
    CHECK(with_hosts({"-A", "-n", "127.0.0.7"}).out == "seven.test (127.0.0.7) is alive\n");
    // An address without a name keeps its numeric form.
    CHECK(with_hosts({"-d", "127.0.0.8"}).out == "127.0.0.8 is alive\n");
}

// ======================================================================
// JSON

TEST_CASE("the JSON Schema's own shape: each event's members and required lists agree",
          "[cli][json]") {
    const json schema = load_schema();
    REQUIRE(schema.at("oneOf").size() == 6);
    for (const char* event : {"start", "error", "ping", "stray", "target", "summary"}) {
        INFO(event);
        const json& def = schema.at("$defs").at(event);
        CHECK(def.at("type") == "object");
        CHECK(def.at("additionalProperties") == false);
        CHECK(def.at("properties").at("event").at("const") == event);
        std::set<std::string> members, required;
        for (const auto& [key, value] : def.at("properties").items())
            members.insert(key);
        for (const json& r : def.at("required"))
            required.insert(r.get<std::string>());
        // Only -C's per-ping vector is optional.
        std::set<std::string> optional;
        std::set_difference(members.begin(), members.end(), required.begin(), required.end(),
                            std::inserter(optional, optional.end()));
        CHECK(optional == (std::string(event) == "target" ? std::set<std::string>{"rtts_ms"}
                                                          : std::set<std::string>{}));
        CHECK(std::includes(members.begin(), members.end(), required.begin(), required.end()));
        CHECK(required.count("time") == 1);
    }
}

TEST_CASE("the schema checker rejects what the schema forbids", "[cli][json]") {
    const schema_checker checker(load_schema());
    const json good = json::parse(R"({"event":"stray","time":1.5,"target":"a","address":"::1",
                                      "kind":"late","sequence":7,"rtt_ms":null,
                                      "credited":false})");
    CHECK(checker.check(good).empty());
    auto broken = [&](auto change) {
        json j = good;
        change(j);
        return checker.check(j);
    };
    CHECK_THAT(broken([](json& j) { j.erase("sequence"); }), Catch::Contains("sequence"));
    CHECK_THAT(broken([](json& j) { j["sequence"] = "7"; }), Catch::Contains("type"));
    CHECK_THAT(broken([](json& j) { j["sequence"] = 70000; }), Catch::Contains("maximum"));
    CHECK_THAT(broken([](json& j) { j["kind"] = "early"; }), Catch::Contains("one of"));
    CHECK_THAT(broken([](json& j) { j["extra"] = 1; }), Catch::Contains("extra"));
    CHECK_THAT(broken([](json& j) { j["event"] = "bogus"; }), Catch::Contains("oneOf"));
    CHECK_THAT(broken([](json& j) { j["time"] = -1; }), Catch::Contains("minimum"));
    CHECK_FALSE(checker.check(json::array()).empty());
}

TEST_CASE("--json: every line valid against the schema, checked field by field", "[cli][json]") {
    testing::network_simulator sim(simulated("198.18.0.4:dup=1:1;198.18.0.5:late=1:250ms;"
                                             "198.18.0.6:error=unreach:1",
                                             "cli json"));
    temp_file hosts("127.0.0.1 localhost\n");
    const cli_result r = run_cli(cli_run{
        .args = {"--json-lines", "-C", "3", "-p", "400", "-t", "150", "-b", "40", "127.0.0.1",
                 "::1", "198.18.0.4", "198.18.0.5", "198.18.0.6", "no-such-host.invalid"},
        .hosts_file = hosts.path});
    INFO(r);
    CHECK(r.status == 2);
    CHECK(r.err.empty());
    const schema_checker checker(load_schema());
    const auto lines = json_lines(r, checker);
    REQUIRE(lines.size() >= 2);

    const auto errors = events(lines, "error");
    REQUIRE(errors.size() == 1);
    CHECK(errors[0]["name"] == "no-such-host.invalid");
    CHECK(errors[0]["file"] == nullptr);
    CHECK(errors[0]["line"] == 0);
    CHECK_FALSE(errors[0]["reason"].get<std::string>().empty());

    const auto start = events(lines, "start");
    REQUIRE(start.size() == 1);
    CHECK(start[0]["mode"] == "count");
    CHECK(start[0]["targets"] == 5);
    CHECK(start[0]["count"] == 3);
    CHECK(start[0]["retries"] == nullptr);
    CHECK(start[0]["period_ms"] == 400.0);
    CHECK(start[0]["timeout_ms"] == 150.0);
    CHECK(start[0]["pace_ms"] == 10.0); // fping's default -i
    CHECK(start[0]["payload_size"] == 40);
    CHECK(start[0]["version"] == project_version());

    // ping events: one per ping, each index once per target.
    const auto pings = events(lines, "ping");
    CHECK(pings.size() == 15);
    std::map<std::string, std::set<std::uint64_t>> indices;
    for (const json& p : pings) {
        INFO(p.dump());
        CHECK(indices[p["address"]].insert(p["index"].get<std::uint64_t>()).second);
        const std::string status = p["status"];
        if (status == "reply") {
            CHECK(p["rtt_ms"].get<double>() > 0.0);
            CHECK(p["from"] == p["address"]);
            CHECK(p["bytes"] == 40);
            CHECK(p["ttl"] == 64);
            CHECK(p["error"] == nullptr);
        } else if (status == "timeout") {
            CHECK(p["address"] == "198.18.0.5");
            CHECK(p["rtt_ms"] == nullptr);
            CHECK(p["bytes"] == nullptr);
        } else {
            CHECK(status == "unreachable");
            CHECK(p["address"] == "198.18.0.6");
            CHECK(p["from"] == "198.18.255.254");
            CHECK(p["icmp_type"] == 3);
            CHECK(p["icmp_code"] == 1);
        }
    }
    for (const auto& [address, seen] : indices)
        CHECK(seen == std::set<std::uint64_t>{0, 1, 2});

    const auto strays = events(lines, "stray");
    CHECK(std::count_if(strays.begin(), strays.end(), [](const json& s) {
              return s["address"] == "198.18.0.4" && s["kind"] == "duplicate";
          }) == 3);
    // Late replies come 250 ms after their ping: those to pings 0 and 1
    // before the run ends (at 950 ms), the last one normally after it. Only
    // ping 0's is certain (700 ms before the end; ping 1's is 300 ms before
    // it, which a stalled machine can miss); each one seen is counted below.
    const auto late_strays = std::count_if(strays.begin(), strays.end(), [](const json& s) {
        return s["address"] == "198.18.0.5" && s["kind"] == "late";
    });
    CHECK(late_strays >= 1);
    CHECK(late_strays <= 3);

    const auto targets = events(lines, "target");
    REQUIRE(targets.size() == 5);
    std::map<std::string, json> by_address;
    for (const json& t : targets) {
        INFO(t.dump());
        CHECK(t["final"] == true);
        CHECK(t["in_flight"] == 0);
        CHECK(t["cancelled"] == 0);
        CHECK(t["sent"] == 3);
        CHECK(t["sent"].get<std::uint64_t>() ==
              t["received"].get<std::uint64_t>() + t["lost"].get<std::uint64_t>() +
                  t["icmp_errors"].get<std::uint64_t>() + t["send_errors"].get<std::uint64_t>());
        CHECK(t["rtts_ms"].size() == 3);
        by_address[t["address"]] = t;
    }
    const json& lo = by_address.at("127.0.0.1");
    CHECK(lo["target"] == "127.0.0.1");
    CHECK(lo["alive"] == true);
    CHECK(lo["received"] == 3);
    CHECK(lo["loss_percent"] == 0.0);
    CHECK(lo["rtt_min_ms"].get<double>() <= lo["rtt_avg_ms"].get<double>());
    CHECK(lo["rtt_avg_ms"].get<double>() <= lo["rtt_max_ms"].get<double>());
    CHECK(lo["rtt_stddev_ms"].get<double>() >= 0.0);
    CHECK(lo["rtt_stddev_ms"].get<double>() <= lo["rtt_stddev_sample_ms"].get<double>());
    for (const json& v : lo["rtts_ms"])
        CHECK(v.is_number());
    const json& dup = by_address.at("198.18.0.4");
    CHECK(dup["duplicates"] == 3);
    CHECK(dup["received"] == 3);
    const json& late = by_address.at("198.18.0.5");
    CHECK(late["alive"] == false);
    CHECK(late["lost"] == 3);
    CHECK(late["late"] == late_strays);
    CHECK(late["loss_percent"] == 100.0);
    CHECK(late["rtt_avg_ms"] == nullptr);
    CHECK(late["rtt_stddev_sample_ms"] == nullptr);
    CHECK(late["rtts_ms"] == json::array({nullptr, nullptr, nullptr}));
    const json& err = by_address.at("198.18.0.6");
    CHECK(err["icmp_errors"] == 3);
    CHECK(err["received"] == 0);

    const auto summary = events(lines, "summary");
    REQUIRE(summary.size() == 1);
    CHECK(lines.back() == summary[0]);
    const json& s = summary[0];
    CHECK(s["final"] == true);
    CHECK(s["interrupted"] == false);
    CHECK(s["targets"] == 5);
    CHECK(s["alive"] == 3);
    CHECK(s["unreachable"] == 2);
    CHECK(s["unresolved"] == 1);
    CHECK(s["sent"] == 15);
    CHECK(s["received"] == 9);
    CHECK(s["lost"] == 3);
    CHECK(s["icmp_errors"] == 3);
    CHECK(s["duplicates"] == 3);
    CHECK(s["late"] == late_strays);
    CHECK(s["loss_percent"].get<double>() == Approx(100.0 * 6 / 15));
    CHECK(s["exit_code"] == 2);
    CHECK(s["elapsed_s"].get<double>() >= 0.9);

    SECTION("-q: summaries only") {
        const cli_result q = run_cli({"--json-lines", "-q", "-c", "1", "::1"});
        const auto qlines = json_lines(q, checker);
        REQUIRE(qlines.size() == 3);
        CHECK(qlines[0]["event"] == "start");
        CHECK(qlines[1]["event"] == "target");
        CHECK_FALSE(qlines[1].contains("rtts_ms"));
        CHECK(qlines[2]["event"] == "summary");
        CHECK(qlines[2]["exit_code"] == 0);
        CHECK(q.status == 0);
    }
    SECTION("single-shot mode and a file's line numbers") {
        temp_file list("::1\nno-such-host.invalid\n");
        const cli_result single =
            run_cli(cli_run{.args = {"--json-lines", "-f", list.path}, .hosts_file = hosts.path});
        const auto slines = json_lines(single, checker);
        const auto serr = events(slines, "error");
        REQUIRE(serr.size() == 1);
        CHECK(serr[0]["file"] == list.path);
        CHECK(serr[0]["line"] == 2);
        CHECK(events(slines, "start").at(0)["mode"] == "single");
        CHECK(events(slines, "start").at(0)["retries"] == 3);
        CHECK(events(slines, "start").at(0)["period_ms"] == nullptr);
    }
}

// ======================================================================
// Scale

TEST_CASE("-g 127.1.0.0/16 -c 1: 65,534 targets, every one alive", "[cli][scale]") {
    const cli_result r = run_cli({"-g", "127.1.0.0/16", "-c", "1", "-q", "-i", "0"});
    std::printf("icmpengine -g 127.1.0.0/16 -c 1 -q -i 0: %.0f ms\n", ms(r.took).count());
    CHECK(r.status == 0);
    CHECK(r.out.empty());
    const auto lines = r.err_lines();
    CHECK(lines.size() == 65534);
    const auto ok = count_of(lines, " : xmt/rcv/%loss = 1/1/0%, min/avg/max = ");
    CHECK(ok == 65534);
    CHECK_THAT(r.err, Catch::StartsWith("127.1.0.1     : xmt/rcv/%loss = 1/1/0%"));
    CHECK(lines.back().rfind("127.1.255.254 : ", 0) == 0);
}
