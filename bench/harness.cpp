// SPDX-License-Identifier: MIT
// harness: runs the benchmark workloads of issue 4 and prints one table.
//
//     sudo bench/run [--reps 5] [--realtime]      (builds, then runs this)
//
// It first moves itself into a private network namespace (and exits 77 if
// it cannot: it never falls back to the host's), then builds the rest of
// the test network inside namespaces of its own:
//
//   W1 fleet   one ping each to 60,000 distinct targets 127.1.0.1 upward
//              (all of 127/8 is local), 1 s timeout
//   W2 host    60,000 pings to 127.0.0.1, and to ::1
//   W3 series  600 targets x 100 pings every 10 ms, 200 ms timeout
//   W4 LAN     W1 through a veth pair into a second namespace that answers
//              for 198.19.0.0/16 (ip route add local ... dev lo there);
//              RFC 2544's benchmarking range, used inside the namespaces only
//   W5 scale   100,000 and 1,000,000 pings all in flight at once, mixed
//              timeouts (3-6 s), to silent targets (198.18.128.0/17, routed
//              into the same peer namespace, which does not forward and so
//              drops them without an ICMP error): memory per ping
//
// Every workload runs as a child process: the engine through bench_workload,
// the kernel-limit reference through bench_kernel_loop, and fping and
// iputils ping on the same targets when installed. Each row is the median
// of --reps runs, interleaved so that background load hits every tool alike:
//   wall  fork to exit of the process (the same for every tool)
//   ping  the tool's own time for the pings (ours and the reference loop
//         time the fan-out; fping -s and ping report their elapsed time)
//   CPU   user + system time of the process (wait4 rusage)
//   RSS   peak resident set of the process: VmHWM, which our programs read
//         themselves as they exit, and which the harness reads for fping and
//         ping at a ptrace exit stop (getrusage's ru_maxrss would include the
//         harness's own pages, copied by fork, and LeakSanitizer cannot run
//         under ptrace, so our possibly sanitized programs are not traced)
// The figures that issue 4 sets targets for are checked at the end.
#include "private_netns.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <fstream>
#include <functional>
#include <linux/limits.h>
#include <map>
#include <optional>
#include <sched.h>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

namespace bench = icmpengine::bench;
using clock_type = std::chrono::steady_clock;

// ------------------------------------------------------------ settings

struct settings {
    int reps = 5;
    bool smoke = false;
    bool fping = true;
    bool realtime = false;
    std::vector<std::string> only; // workload names, empty = all
    std::size_t fleet = 60'000;
    std::size_t fleet_large = 250'000;
    std::size_t host = 60'000;
    std::size_t series_targets = 600;
    std::size_t series_pings = 100;
    std::size_t scale_small = 100'000;
    std::size_t scale_large = 1'000'000;
    int scale_timeout_min_ms = 3000;
    int scale_timeout_max_ms = 6000;
};

void usage() {
    std::puts("usage: harness [--reps N] [--only W1,W2,...] [--no-fping] [--smoke]\n"
              "  --reps N     runs per row; the table shows medians (default 5)\n"
              "  --only LIST  run only these workloads (W1..W5)\n"
              "  --no-fping   skip fping and ping even if installed\n"
              "  --smoke      tiny sizes, one run each: checks that everything runs\n"
              "  --realtime   run every tool under SCHED_FIFO priority 10, so that other\n"
              "               work on a shared machine gets less in the way\n"
              "Needs root (or CAP_SYS_ADMIN + CAP_NET_ADMIN) to create its namespaces.");
}

settings parse(int argc, char** argv) {
    settings s;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc)
                throw std::invalid_argument(std::string(arg) + " needs a value");
            return argv[++i];
        };
        if (arg == "--reps") {
            s.reps = std::max(1, std::stoi(value()));
        } else if (arg == "--only") {
            std::stringstream list(value());
            for (std::string w; std::getline(list, w, ',');)
                s.only.push_back(w);
        } else if (arg == "--realtime") {
            s.realtime = true;
        } else if (arg == "--no-fping") {
            s.fping = false;
        } else if (arg == "--smoke") {
            s.smoke = true;
            s.reps = 1;
            s.fleet = 600;
            s.fleet_large = 2500;
            s.host = 600;
            s.series_targets = 6;
            s.series_pings = 5;
            s.scale_small = 1000;
            s.scale_large = 4000;
            s.scale_timeout_min_ms = 200;
            s.scale_timeout_max_ms = 400;
        } else if (arg == "--help" || arg == "-h") {
            usage();
            std::exit(0);
        } else {
            throw std::invalid_argument("unknown argument " + std::string(arg));
        }
    }
    return s;
}

bool wanted(const settings& s, const std::string& workload) {
    return s.only.empty() || std::find(s.only.begin(), s.only.end(), workload) != s.only.end();
}

// --------------------------------------------------------- running tools

std::string self_directory() {
    char path[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0)
        throw std::runtime_error("readlink /proc/self/exe failed");
    std::string p(path, static_cast<std::size_t>(n));
    return p.substr(0, p.rfind('/'));
}

std::optional<std::string> find_program(const std::string& name) {
    for (const char* dir : {"/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"}) {
        const std::string p = std::string(dir) + "/" + name;
        if (::access(p.c_str(), X_OK) == 0)
            return p;
    }
    return std::nullopt;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

/// One run of one tool.
struct sample {
    bool ok = false;
    std::string failure;
    double wall_ms = 0;
    double cpu_ms = 0;
    double rss_kb = 0;
    double max_rss_kb = 0; // getrusage: includes what fork copied from the harness
    double ping_ms = 0;    // the tool's own figure; 0 if it gives none
    std::uint64_t sent = 0;
    std::uint64_t replies = 0;
    std::uint64_t peak_in_flight = 0;
    std::string out; // stdout + stderr
};

/// Peak RSS of a process stopped at its exit (its mm is still there).
double vm_hwm_kb(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("VmHWM:", 0) == 0)
            return std::strtod(line.c_str() + 6, nullptr);
    return 0;
}

/// Runs argv[0] with stdout and stderr in `scratch` files; measures it.
sample run_tool(const std::vector<std::string>& argv, const std::string& scratch, bool realtime,
                bool trace) {
    const std::string out_path = scratch + "/out.txt";
    sample s;
    const auto t0 = clock_type::now();
    const pid_t pid = ::fork();
    if (pid < 0)
        throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
        const int fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0)
            ::_exit(126);
        ::dup2(fd, 1);
        ::dup2(fd, 2);
        ::close(fd);
        // Stops at the exec and at the exit, where the parent reads VmHWM.
        if (trace)
            ::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr);
        if (realtime) {
            // Inherited by the tool's threads. Refused without
            // CAP_SYS_NICE: then the tool runs as usual.
            const sched_param p{10};
            (void)::sched_setscheduler(0, SCHED_FIFO, &p);
        }
        std::vector<char*> args;
        for (const std::string& a : argv)
            args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    int status = 0;
    rusage usage{};
    bool exec_stop = trace;
    for (;;) {
        const pid_t r = ::wait4(pid, &status, 0, &usage);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            throw std::runtime_error(std::string("wait4: ") + std::strerror(errno));
        if (WIFEXITED(status) || WIFSIGNALED(status))
            break;
        if (!WIFSTOPPED(status))
            continue;
        const int sig = WSTOPSIG(status);
        const int event = status >> 16;
        if (event == PTRACE_EVENT_EXIT) {
            s.rss_kb = vm_hwm_kb(pid);
            ::ptrace(PTRACE_CONT, pid, nullptr, nullptr);
        } else if (sig == SIGTRAP && exec_stop) {
            // The stop after execv: from now on, stop at the exit.
            exec_stop = false;
            ::ptrace(PTRACE_SETOPTIONS, pid, nullptr,
                     reinterpret_cast<void*>(static_cast<long>(PTRACE_O_TRACEEXIT)));
            ::ptrace(PTRACE_CONT, pid, nullptr, nullptr);
        } else {
            // Any other signal is the child's: deliver it.
            ::ptrace(PTRACE_CONT, pid, nullptr, reinterpret_cast<void*>(static_cast<long>(sig)));
        }
    }
    s.wall_ms = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
    s.cpu_ms = (static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e3 +
                static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e3);
    s.max_rss_kb = static_cast<double>(usage.ru_maxrss);
    s.out = read_file(out_path);
    if (WIFSIGNALED(status)) {
        s.failure = "killed by signal " + std::to_string(WTERMSIG(status));
    } else {
        s.ok = true;
        s.failure = "exit status " + std::to_string(WEXITSTATUS(status));
    }
    return s;
}

/// The value after `key=` in a RESULT line.
std::optional<double> result_field(const std::string& out, const std::string& key) {
    const std::size_t line = out.rfind("RESULT ");
    if (line == std::string::npos)
        return std::nullopt;
    const std::size_t at = out.find(" " + key + "=", line);
    if (at == std::string::npos)
        return std::nullopt;
    return std::strtod(out.c_str() + at + key.size() + 2, nullptr);
}

/// The number before `label` in fping -s output ("   60000 ICMP Echos sent").
std::optional<double> number_before(const std::string& out, const std::string& label) {
    const std::size_t at = out.find(label);
    if (at == std::string::npos)
        return std::nullopt;
    std::size_t begin = out.rfind('\n', at);
    begin = begin == std::string::npos ? 0 : begin + 1;
    return std::strtod(out.c_str() + begin, nullptr);
}

/// Kinds of output, to read sent / replies / the tool's own time.
enum class output_kind { result_line, fping, iputils_ping };

void interpret(sample& s, output_kind kind) {
    switch (kind) {
    case output_kind::result_line: {
        const auto ping_ms = result_field(s.out, "ping_ms");
        if (!s.ok || s.failure != "exit status 0" || !ping_ms) {
            s.ok = false;
            return;
        }
        s.ping_ms = *ping_ms;
        s.sent = static_cast<std::uint64_t>(result_field(s.out, "sent").value_or(0));
        s.replies = static_cast<std::uint64_t>(result_field(s.out, "replies").value_or(0));
        s.peak_in_flight =
            static_cast<std::uint64_t>(result_field(s.out, "peak_in_flight").value_or(0));
        s.rss_kb = result_field(s.out, "rss_kb").value_or(0);
        break;
    }
    case output_kind::fping: {
        // fping exits 1 when some target is unreachable: that is a loss,
        // not a failure to run.
        const auto sent = number_before(s.out, "ICMP Echos sent");
        const auto received = number_before(s.out, "ICMP Echo Replies received");
        const auto elapsed = number_before(s.out, "sec (elapsed real time)");
        if (!s.ok || !sent || !received) {
            s.ok = false;
            return;
        }
        s.sent = static_cast<std::uint64_t>(*sent);
        s.replies = static_cast<std::uint64_t>(*received);
        s.ping_ms = elapsed ? *elapsed * 1e3 : 0;
        break;
    }
    case output_kind::iputils_ping: {
        // "60000 packets transmitted, 60000 received, 0% packet loss, time 190ms"
        const std::size_t at = s.out.find(" packets transmitted, ");
        if (!s.ok || at == std::string::npos) {
            s.ok = false;
            return;
        }
        std::size_t begin = s.out.rfind('\n', at);
        begin = begin == std::string::npos ? 0 : begin + 1;
        s.sent = std::strtoull(s.out.c_str() + begin, nullptr, 10);
        s.replies = std::strtoull(s.out.c_str() + at + 22, nullptr, 10);
        const std::size_t time = s.out.find(", time ", at);
        s.ping_ms = time == std::string::npos ? 0 : std::strtod(s.out.c_str() + time + 7, nullptr);
        break;
    }
    }
    if (s.rss_kb == 0)
        s.rss_kb = s.max_rss_kb; // no VmHWM (no exit stop): an upper bound
    s.ok = true;
}

// ------------------------------------------------------------------ rows

struct row {
    std::string workload; // "W1"
    std::string label;    // what is measured
    std::string tool;     // who measures it
    std::vector<std::string> argv;
    output_kind kind = output_kind::result_line;
    bool silent = false; // W5: no target answers, every ping times out by design
    std::vector<sample> samples;
};

void add_row(std::vector<row>& rows, std::vector<std::string> head, std::vector<std::string> argv,
             output_kind kind = output_kind::result_line) {
    row r;
    r.workload = head.at(0);
    r.label = head.at(1);
    r.tool = head.at(2);
    r.argv = std::move(argv);
    r.kind = kind;
    rows.push_back(std::move(r));
}

double median(std::vector<double> v) {
    if (v.empty())
        return 0;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct summary {
    bool ok = false;
    int runs = 0;
    double wall_ms = 0, ping_ms = 0, cpu_ms = 0, rss_kb = 0;
    std::uint64_t sent = 0, replies = 0, lost = 0, peak_in_flight = 0;
};

summary summarise(const row& r) {
    summary m;
    std::vector<double> wall, ping, cpu, rss;
    for (const sample& s : r.samples) {
        if (!s.ok)
            continue;
        ++m.runs;
        wall.push_back(s.wall_ms);
        ping.push_back(s.ping_ms);
        cpu.push_back(s.cpu_ms);
        rss.push_back(s.rss_kb);
        m.sent = s.sent;
        m.replies = s.replies;
        m.peak_in_flight = s.peak_in_flight;
        // The worst run's losses: "zero lost" must hold in every run.
        m.lost = std::max(m.lost, s.sent - std::min(s.sent, s.replies));
    }
    m.ok = m.runs > 0 && m.runs == static_cast<int>(r.samples.size());
    m.wall_ms = median(wall);
    m.ping_ms = median(ping);
    m.cpu_ms = median(cpu);
    m.rss_kb = median(rss);
    return m;
}

std::string first_line_of_file(const std::string& path, const std::string& prefix) {
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);)
        if (line.rfind(prefix, 0) == 0)
            return line.substr(prefix.size());
    return {};
}

std::string trim(std::string s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == ':'))
        s.erase(s.begin());
    while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '"'))
        s.pop_back();
    return s;
}

std::string tool_version(const std::string& command) {
    FILE* p = ::popen(command.c_str(), "r");
    if (p == nullptr)
        return {};
    char buf[256] = {};
    std::string out = std::fgets(buf, sizeof buf, p) != nullptr ? buf : "";
    ::pclose(p);
    return trim(out);
}

void print_header(const settings& s, const std::optional<std::string>& fping,
                  const std::optional<std::string>& ping) {
    char date[64];
    const std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
    utsname u{};
    ::uname(&u);
    std::string os = trim(first_line_of_file("/etc/os-release", "PRETTY_NAME="));
    if (!os.empty() && os.front() == '"')
        os.erase(os.begin());
    const std::string cpu = trim(first_line_of_file("/proc/cpuinfo", "model name"));
    std::printf("icmpengine benchmark harness, %s\n", date);
    std::printf("machine: %s, %u CPUs, Linux %s, %s\n", cpu.c_str(),
                std::thread::hardware_concurrency(), u.release, os.c_str());
    if (fping || ping)
        std::printf("tools: %s%s%s\n", fping ? tool_version(*fping + " -v 2>&1").c_str() : "",
                    fping && ping ? "; " : "",
                    ping ? tool_version(*ping + " -V 2>&1").c_str() : "");
    std::printf("every row: median of %d run%s, interleaved%s; all traffic inside private "
                "network namespaces\n",
                s.reps, s.reps == 1 ? "" : "s", s.realtime ? ", tools at SCHED_FIFO 10" : "");
    double load[3] = {};
    if (::getloadavg(load, 3) == 3)
        std::printf("load average before the runs: %.2f %.2f %.2f (%u CPUs)\n", load[0], load[1],
                    load[2], std::thread::hardware_concurrency());
    std::puts("");
    std::fflush(stdout);
}

std::string megabytes(double kb) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", kb / 1024);
    return buf;
}

void print_table(const std::vector<row>& rows) {
    std::printf("%-4s %-24s %-26s %8s %8s %8s %7s %10s %8s %6s\n", "", "workload", "tool",
                "wall ms", "ping ms", "CPU ms", "RSS MB", "pings/s", "replies", "lost");
    std::string last;
    for (const row& r : rows) {
        const summary m = summarise(r);
        if (r.workload != last && !last.empty())
            std::puts("");
        last = r.workload;
        if (!m.ok) {
            std::printf("%-4s %-24s %-26s  FAILED: %s\n", r.workload.c_str(), r.label.c_str(),
                        r.tool.c_str(),
                        r.samples.empty() ? "not run" : r.samples.back().failure.c_str());
            continue;
        }
        // W5's pings all time out by design: its rate is pings per CPU
        // second, and "lost" says "silent".
        const double seconds =
            r.silent ? m.cpu_ms / 1e3 : (m.ping_ms > 0 ? m.ping_ms : m.wall_ms) / 1e3;
        const std::string lost = r.silent ? "silent" : std::to_string(m.lost);
        std::printf("%-4s %-24s %-26s %8.1f %8.1f %8.1f %7s %10.0f %8llu %6s\n", r.workload.c_str(),
                    r.label.c_str(), r.tool.c_str(), m.wall_ms, m.ping_ms, m.cpu_ms,
                    megabytes(m.rss_kb).c_str(),
                    seconds > 0 ? static_cast<double>(m.sent) / seconds : 0.0,
                    static_cast<unsigned long long>(m.replies), lost.c_str());
    }
}

// --------------------------------------------------------------- targets

struct checker {
    const std::vector<row>& rows;
    int met = 0, missed = 0, unknown = 0;

    std::optional<summary> find(const std::string& workload, const std::string& tool_prefix,
                                const std::string& label_prefix = "") const {
        for (const row& r : rows)
            if (r.workload == workload && r.tool.rfind(tool_prefix, 0) == 0 &&
                r.label.rfind(label_prefix, 0) == 0) {
                const summary m = summarise(r);
                if (m.ok)
                    return m;
            }
        return std::nullopt;
    }

    void check(const std::string& what, std::optional<double> value, double limit, bool at_most,
               const char* unit) {
        if (!value) {
            ++unknown;
            std::printf("  [ n/a  ] %s (not measured)\n", what.c_str());
            return;
        }
        const bool ok = at_most ? *value <= limit : *value >= limit;
        (ok ? met : missed)++;
        std::printf("  [%s] %-58s %9.2f%s (%s %.2f%s)\n", ok ? "  met " : "MISSED", what.c_str(),
                    *value, unit, at_most ? "<=" : ">=", limit, unit);
    }
};

std::optional<double> ratio(std::optional<double> a, std::optional<double> b) {
    if (!a || !b || *b <= 0)
        return std::nullopt;
    return *a / *b;
}

template <typename F>
std::optional<double> field(const std::optional<summary>& m, F f) {
    if (!m)
        return std::nullopt;
    return f(*m);
}

std::string count_label(std::size_t n);

void check_targets(const std::vector<row>& rows, const settings& s) {
    checker c{rows};
    auto ping = [](const summary& m) { return m.ping_ms; };
    auto wall = [](const summary& m) { return m.wall_ms; };
    auto cpu = [](const summary& m) { return m.cpu_ms; };
    auto rss_mb = [](const summary& m) { return m.rss_kb / 1024; };
    auto lost = [](const summary& m) { return static_cast<double>(m.lost); };

    const auto w1_kernel1 = c.find("W1", "kernel loop, 1");
    const auto w1_one = c.find("W1", "icmpengine, 1");
    const auto w1_two = c.find("W1", "icmpengine, 2");
    const auto w1_fping = c.find("W1", "fping");
    std::puts("\ntargets (issue 4), from the medians above:");
    c.check("W1 1 engine: ping time / kernel loop (1 thread)",
            ratio(field(w1_one, ping), field(w1_kernel1, ping)), 1.15, true, "x");
    c.check("W1 1 engine: ping time", field(w1_one, ping), 170, true, " ms");
    c.check("W1 1 engine: fping wall / our wall", ratio(field(w1_fping, wall), field(w1_one, wall)),
            2.0, false, "x");
    c.check("W1 2 engines: ping time", field(w1_two, ping), 100, true, " ms");
    c.check("W1 2 engines: speed-up over 1 engine (ping time)",
            ratio(field(w1_one, ping), field(w1_two, ping)), 1.7, false, "x");
    const auto w2_v4 = c.find("W2", "icmpengine", "127.0.0.1");
    const auto w2_ping4 = c.find("W2", "ping -f", "127.0.0.1");
    c.check("W2 127.0.0.1: ping time", field(w2_v4, ping), 150, true, " ms");
    c.check("W2 127.0.0.1: ping -f wall / our wall",
            ratio(field(w2_ping4, wall), field(w2_v4, wall)), 1.0, false, "x");
    const auto w2_v6 = c.find("W2", "icmpengine", "::1");
    const auto w2_ping6 = c.find("W2", "ping -f", "::1");
    c.check("W2 ::1: ping -f wall / our wall", ratio(field(w2_ping6, wall), field(w2_v6, wall)),
            1.0, false, "x");
    c.check("W3 CPU time / fping's",
            ratio(field(c.find("W3", "icmpengine"), cpu), field(c.find("W3", "fping"), cpu)), 0.6,
            true, "x");
    c.check("W1 1 engine: peak RSS", field(w1_one, rss_mb), 16, true, " MB");
    c.check("W1 2 engines: peak RSS", field(w1_two, rss_mb), 16, true, " MB");
    // W5: the RSS of the large run beyond the small one, per ping more in flight.
    auto rss_per_ping = [&](const char* tool) -> std::optional<double> {
        const auto small = c.find("W5", tool, "scale small");
        const auto large = c.find("W5", tool, "scale large");
        if (!small || !large || large->peak_in_flight <= small->peak_in_flight)
            return std::nullopt;
        return (large->rss_kb - small->rss_kb) * 1024 /
               static_cast<double>(large->peak_in_flight - small->peak_in_flight);
    };
    c.check("W5 RSS per ping in flight beyond the base", rss_per_ping("icmpengine, 1"), 200, true,
            " B");

    // Issue 13: the idiomatic shape, and all of it against the same run's
    // kernel loop. Time per ping at 250,000 targets against 60,000.
    std::puts("\ntargets (issue 13), from the medians above:");
    const std::string w1_small = "fleet " + count_label(s.fleet);
    const std::string w1_large = "fleet " + count_label(s.fleet_large);
    const auto idiomatic = c.find("W1", "when_all(ping()), all", w1_small);
    c.check("W1 when_all over ping(), all in flight: ping time / kernel loop",
            ratio(field(idiomatic, ping), field(w1_kernel1, ping)), 1.4, true, "x");
    c.check("W1 when_all over ping(), window 256: ping time / kernel loop",
            ratio(field(c.find("W1", "when_all(ping()), 256", w1_small), ping),
                  field(w1_kernel1, ping)),
            1.4, true, "x");
    c.check("W1 1 engine (ping_all, frame-free): ping time / kernel loop",
            ratio(field(w1_one, ping), field(w1_kernel1, ping)), 1.10, true, "x");
    c.check("W1 2 engines: ping time / kernel loop (1 thread)",
            ratio(field(w1_two, ping), field(w1_kernel1, ping)), 0.6, true, "x");
    // What the kernel loop costs with the engine's socket options and send
    // batch: targets below these are out of reach of any engine that keeps
    // receive timestamps and its RTT accuracy (bench/README.md, "Floors").
    const auto floor1 = c.find("W1", "kernel floor, 1", w1_small);
    const auto floor2 = c.find("W1", "kernel floor, 2", w1_small);
    const auto kernel2 = c.find("W1", "kernel loop, 2", w1_small);
    auto figure = [](const char* what, std::optional<double> value) {
        if (value)
            std::printf("  [figure] %-66s %5.2fx\n", what, *value);
    };
    figure("floor for 1 engine: kernel floor (1 thread) / kernel loop",
           ratio(field(floor1, ping), field(w1_kernel1, ping)));
    figure("floor for 2 engines: kernel floor (2 threads) / kernel loop",
           ratio(field(floor2, ping), field(w1_kernel1, ping)));
    figure("kernel loop, 2 threads / kernel loop, 1 thread",
           ratio(field(kernel2, ping), field(w1_kernel1, ping)));
    figure("1 engine (ping_all) / kernel floor (1 thread)",
           ratio(field(w1_one, ping), field(floor1, ping)));
    figure("2 engines / kernel floor (2 threads)", ratio(field(w1_two, ping), field(floor2, ping)));
    figure("when_all over ping(), all / kernel floor (1 thread)",
           ratio(field(idiomatic, ping), field(floor1, ping)));
    auto per_ping_growth = [&](const char* tool) {
        const auto small = c.find("W1", tool, w1_small);
        const auto large = c.find("W1", tool, w1_large);
        return ratio(ratio(field(large, ping), static_cast<double>(s.fleet_large)),
                     ratio(field(small, ping), static_cast<double>(s.fleet)));
    };
    c.check("W1 " + count_label(s.fleet_large) + ", 1 engine: time per ping / at " +
                count_label(s.fleet),
            per_ping_growth("icmpengine, 1"), 1.10, true, "x");
    c.check("W1 " + count_label(s.fleet_large) + ", when_all(ping()): time per ping / at " +
                count_label(s.fleet),
            per_ping_growth("when_all(ping()), all"), 1.10, true, "x");
    c.check("W1 " + count_label(s.fleet_large) + ", kernel loop: time per ping / at " +
                count_label(s.fleet),
            per_ping_growth("kernel loop, 1"), 1.10, true, "x");
    if (const std::optional<double> per_coroutine = rss_per_ping("icmpengine, ping()"))
        std::printf("  W5 RSS per ping() coroutine in flight beyond the base: %.0f B "
                    "(a figure, no target; the frame-free one is checked above)\n",
                    *per_coroutine);

    for (const char* w : {"W1", "W2", "W4"})
        for (const row& r : rows)
            if (r.workload == w &&
                (r.tool.rfind("icmpengine", 0) == 0 || r.tool.rfind("when_all", 0) == 0)) {
                const summary m = summarise(r);
                c.check(std::string(w) + " " + r.label + ", " + r.tool + ": replies lost",
                        field(m.ok ? std::optional<summary>(m) : std::nullopt, lost), 0, true, "");
            }
    std::printf("%d met, %d missed, %d not measured\n", c.met, c.missed, c.unknown);
}

// --------------------------------------------------------------- network

/// The namespaces behind W4 and W5: a veth pair into a peer namespace that
/// answers for 198.19.0.0/16 (W4) and silently drops what is sent to
/// 198.18.128.0/17 (W5): it does not forward (ip_forward=0), and a host
/// that does not forward drops such packets without an ICMP error.
struct test_network {
    std::optional<bench::peer_netns> peer;
    std::string error;

    explicit test_network(const settings& s) {
        if (!wanted(s, "W4") && !wanted(s, "W5"))
            return;
        try {
            peer.emplace();
            const std::string pid = std::to_string(peer->pid());
            bench::run_command("ip link add iebench0 type veth peer name iebench1");
            bench::run_command("ip link set iebench1 netns " + pid);
            // One next hop for both ranges: one neighbour entry, not one per
            // target (the table holds 1024 by default).
            bench::run_command("ip addr add 198.18.0.1/30 dev iebench0 && "
                               "ip link set iebench0 up && "
                               "ip route add 198.19.0.0/16 via 198.18.0.2 && "
                               "ip route add 198.18.128.0/17 via 198.18.0.2");
            peer->exec("ip addr add 198.18.0.2/30 dev iebench1 && ip link set iebench1 up && "
                       "ip route add local 198.19.0.0/16 dev lo && "
                       "sysctl -qw net.ipv4.ip_forward=0");
        } catch (const std::exception& e) {
            peer.reset();
            error = e.what();
        }
    }
};

void write_targets(const std::string& path, std::uint32_t first, std::size_t count) {
    std::ofstream out(path);
    for (std::size_t i = 0; i < count; ++i) {
        const std::uint32_t a = first + static_cast<std::uint32_t>(i);
        out << (a >> 24) << '.' << (a >> 16 & 255) << '.' << (a >> 8 & 255) << '.' << (a & 255)
            << '\n';
    }
    if (!out)
        throw std::runtime_error("writing " + path + " failed");
}

std::string str(std::size_t n) {
    return std::to_string(n);
}

std::string count_label(std::size_t n) {
    if (n >= 1'000'000 && n % 1'000'000 == 0)
        return str(n / 1'000'000) + "M";
    if (n >= 1000 && n % 1000 == 0)
        return str(n / 1000) + "k";
    return str(n);
}

} // namespace

int main(int argc, char** argv) {
    settings s;
    try {
        s = parse(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "harness: %s\n", e.what());
        usage();
        return 2;
    }
    if (const std::string why = bench::enter_private_netns(); !why.empty())
        bench::exit_without_netns("harness", why);

    try {
        const std::string dir = self_directory();
        const std::string workload = dir + "/bench_workload";
        const std::string kernel_loop = dir + "/bench_kernel_loop";
        for (const std::string& p : {workload, kernel_loop})
            if (::access(p.c_str(), X_OK) != 0)
                throw std::runtime_error(p + " is missing: build the bench targets first");
        const std::optional<std::string> fping = s.fping ? find_program("fping") : std::nullopt;
        const std::optional<std::string> ping = s.fping ? find_program("ping") : std::nullopt;

        char scratch_template[] = "/tmp/icmpengine-bench.XXXXXX";
        const char* scratch_dir = ::mkdtemp(scratch_template);
        if (scratch_dir == nullptr)
            throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
        const std::string scratch = scratch_dir;

        test_network net(s);
        print_header(s, fping, ping);
        if (!net.error.empty())
            std::printf("W4 and W5 not run: %s\n", net.error.c_str());
        if (!fping && s.fping)
            std::puts("fping is not installed: no fping rows");

        std::vector<row> rows;
        const std::string fleet = str(s.fleet);
        const std::string fleet_label = "fleet " + count_label(s.fleet) + " x 1";
        if (wanted(s, "W1")) {
            write_targets(scratch + "/w1.txt", 0x7f010001u, s.fleet);
            add_row(rows, {"W1", fleet_label, "kernel loop, 1 thread"},
                    {kernel_loop, "--first", "127.1.0.1", "--count", fleet});
            add_row(rows, {"W1", fleet_label, "kernel loop, 2 threads"},
                    {kernel_loop, "--first", "127.1.0.1", "--count", fleet, "--threads", "2"});
            // The floor under the engine: the kernel loop with what the
            // engine asks of the kernel per reply (receive timestamps, TTL,
            // TOS, error queue) and its send batch of 16 (the bound on the
            // RTT's over-estimate, engine_config::send_batch).
            for (const auto& [threads, tool] : {std::pair{"1", "kernel floor, 1 thread"},
                                                std::pair{"2", "kernel floor, 2 threads"}})
                add_row(rows, {"W1", fleet_label, tool},
                        {kernel_loop, "--first", "127.1.0.1", "--count", fleet, "--threads",
                         threads, "--engine-options", "--batch", "16"});
            add_row(rows, {"W1", fleet_label, "icmpengine, 1 engine"},
                    {workload, "fleet", "--first", "127.1.0.1", "--count", fleet});
            add_row(
                rows, {"W1", fleet_label, "icmpengine, 2 engines"},
                {workload, "fleet", "--first", "127.1.0.1", "--count", fleet, "--engines", "2"});
            add_row(rows, {"W1", fleet_label, "when_all(ping()), all"},
                    {workload, "fleet", "--first", "127.1.0.1", "--count", fleet, "--shape",
                     "when_all"});
            add_row(rows, {"W1", fleet_label, "when_all(ping()), 256"},
                    {workload, "fleet", "--first", "127.1.0.1", "--count", fleet, "--shape",
                     "when_all", "--window", "256"});
            if (fping)
                add_row(rows, {"W1", fleet_label, "fping -i0 -r0 -t1000"},
                        {*fping, "-i", "0", "-r", "0", "-t", "1000", "-q", "-s", "-f",
                         scratch + "/w1.txt"},
                        output_kind::fping);
            // The same at 250,000 targets (127.1.0.1 to 127.4.208.144): how
            // the time per ping grows with the fleet.
            const std::string large = str(s.fleet_large);
            const std::string large_label = "fleet " + count_label(s.fleet_large) + " x 1";
            add_row(rows, {"W1", large_label, "kernel loop, 1 thread"},
                    {kernel_loop, "--first", "127.1.0.1", "--count", large});
            add_row(rows, {"W1", large_label, "icmpengine, 1 engine"},
                    {workload, "fleet", "--first", "127.1.0.1", "--count", large});
            add_row(rows, {"W1", large_label, "when_all(ping()), all"},
                    {workload, "fleet", "--first", "127.1.0.1", "--count", large, "--shape",
                     "when_all"});
        }
        if (wanted(s, "W2")) {
            const std::string host = str(s.host);
            for (const char* target : {"127.0.0.1", "::1"}) {
                const std::string label = std::string(target) + " x " + count_label(s.host);
                add_row(rows, {"W2", label, "icmpengine, 1 engine"},
                        {workload, "fleet", "--first", target, "--same", "--count", host});
                if (ping)
                    add_row(rows, {"W2", label, "ping -f"},
                            {*ping, std::string(target) == "::1" ? "-6" : "-4", "-q", "-f", "-c",
                             host, target},
                            output_kind::iputils_ping);
            }
        }
        if (wanted(s, "W3")) {
            write_targets(scratch + "/w3.txt", 0x7f010001u, s.series_targets);
            const std::string label =
                str(s.series_targets) + " x " + str(s.series_pings) + " @10ms";
            add_row(rows, {"W3", label, "icmpengine (ping_fanout)"},
                    {workload, "series", "--first", "127.1.0.1", "--count", str(s.series_targets),
                     "--pings", str(s.series_pings), "--period-ms", "10", "--timeout-ms", "200"});
            if (fping)
                add_row(rows, {"W3", label, "fping -c100 -p10 -t200"},
                        {*fping, "-c", str(s.series_pings), "-p", "10", "-t", "200", "-i", "0",
                         "-q", "-s", "-f", scratch + "/w3.txt"},
                        output_kind::fping);
        }
        if (wanted(s, "W4") && net.peer) {
            write_targets(scratch + "/w4.txt", 0xc6130001u, s.fleet);
            const std::string label = "veth " + count_label(s.fleet) + " x 1";
            add_row(rows, {"W4", label, "kernel loop, 1 thread"},
                    {kernel_loop, "--first", "198.19.0.1", "--count", fleet});
            add_row(rows, {"W4", label, "icmpengine, 1 engine"},
                    {workload, "fleet", "--first", "198.19.0.1", "--count", fleet});
            add_row(
                rows, {"W4", label, "icmpengine, 2 engines"},
                {workload, "fleet", "--first", "198.19.0.1", "--count", fleet, "--engines", "2"});
            if (fping)
                add_row(rows, {"W4", label, "fping -i0 -r0 -t1000"},
                        {*fping, "-i", "0", "-r", "0", "-t", "1000", "-q", "-s", "-f",
                         scratch + "/w4.txt"},
                        output_kind::fping);
        }
        if (wanted(s, "W5") && net.peer) {
            for (const auto& [name, n] :
                 {std::pair<const char*, std::size_t>{"small", s.scale_small},
                  std::pair<const char*, std::size_t>{"large", s.scale_large}})
                for (const char* shape : {"frame-free", "coroutines"})
                    add_row(
                        rows,
                        {"W5", std::string("scale ") + name + " " + count_label(n) + " in flight",
                         std::string("icmpengine, ") + (shape == std::string_view("coroutines")
                                                            ? "ping() coroutines"
                                                            : "1 engine")},
                        {workload, "scale", "--first", "198.18.128.1", "--span", "32000", "--count",
                         str(n), "--timeout-min-ms",
                         str(static_cast<std::size_t>(s.scale_timeout_min_ms)), "--timeout-max-ms",
                         str(static_cast<std::size_t>(s.scale_timeout_max_ms)), "--shape", shape});
            for (row& r : rows)
                r.silent = r.workload == "W5";
        }

        // Interleaved: every row once per round, so that background load is
        // spread over all of them.
        bool failed = false;
        for (int rep = 0; rep < s.reps; ++rep) {
            for (row& r : rows) {
                sample x =
                    run_tool(r.argv, scratch, s.realtime, r.kind != output_kind::result_line);
                interpret(x, r.kind);
                if (!x.ok) {
                    failed = true;
                    std::fprintf(stderr,
                                 "harness: %s %s / %s failed "
                                 "(%s):\n%s\n",
                                 r.workload.c_str(), r.label.c_str(), r.tool.c_str(),
                                 x.failure.c_str(), x.out.c_str());
                }
                r.samples.push_back(std::move(x));
            }
            std::fprintf(stderr, "harness: round %d of %d done\n", rep + 1, s.reps);
        }
        print_table(rows);
        check_targets(rows, s);
        for (const char* f : {"/w1.txt", "/w3.txt", "/w4.txt", "/out.txt"})
            ::unlink((scratch + f).c_str());
        ::rmdir(scratch.c_str());
        return failed ? 1 : 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "harness: %s\n", e.what());
        return 1;
    }
}
