// SPDX-License-Identifier: MIT
// The exporter's resolver (tools/exporter/resolver.hpp): getaddrinfo on its
// own thread, results on the executor, the newest request winning. A
// system test: it runs in a private network namespace with only lo (DNS
// has no route there, so a name that is not in /etc/hosts fails at once)
// and, where it can, with an /etc/hosts of its own (a private mount
// namespace), so that what "localhost" is does not depend on the machine.
#include <catch2/catch.hpp>

#include "resolver.hpp"

#include <boost/asio/io_context.hpp>

#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>

using namespace icmpengine_exporter;

namespace {

ie::ip_address ip(const char* text) {
    return ie::ip_address::parse(text);
}

bool contains(const std::vector<ie::ip_address>& v, const ie::ip_address& a) {
    return std::find(v.begin(), v.end(), a) != v.end();
}

// Binds a file of ours over /etc/hosts in a private mount namespace; ""
// on success, else why not (the tests that need it then say so and check
// less). Called first by every test case, while the process has one thread
// (unshare(CLONE_NEWNS) refuses a multi-threaded process).
std::string private_hosts_file() {
    static const std::string why = [] {
        const std::string path = std::filesystem::temp_directory_path() /
                                 ("exporter_resolver_hosts_" + std::to_string(::getpid()));
        {
            std::ofstream out(path);
            out << "127.0.0.1 localhost\n::1 localhost\n"
                << "192.0.2.5 dual.test\n2001:db8::5 dual.test\n";
        }
        std::string reason;
        if (::unshare(CLONE_NEWNS) != 0)
            reason = std::string("unshare(CLONE_NEWNS): ") + std::strerror(errno);
        else if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
            reason = std::string("mount(/, MS_PRIVATE): ") + std::strerror(errno);
        else if (::mount(path.c_str(), "/etc/hosts", nullptr, MS_BIND, nullptr) != 0)
            reason = std::string("mount(--bind, /etc/hosts): ") + std::strerror(errno);
        std::filesystem::remove(path); // the bind mount keeps it
        if (!reason.empty())
            std::fprintf(stderr, "NOTE: the machine's /etc/hosts is used: %s\n", reason.c_str());
        return reason;
    }();
    return why;
}

exporter_config config_of(std::vector<std::string> hosts) {
    exporter_config c;
    c.groups.emplace_back();
    c.groups.back().hosts = std::move(hosts);
    return c;
}

} // namespace

TEST_CASE("system_resolve: literals, localhost, a name that does not exist", "[resolver]") {
    const bool own_hosts = private_hosts_file().empty();
    const resolve_function resolve = system_resolve();
    CHECK(resolve("127.0.0.1", network_kind::ip) == std::vector{ip("127.0.0.1")});
    CHECK(resolve("127.0.0.1", network_kind::ip4) == std::vector{ip("127.0.0.1")});
    CHECK(resolve("::1", network_kind::ip6) == std::vector{ip("::1")});
    CHECK(resolve("::1", network_kind::ip4).empty());
    CHECK(resolve("127.0.0.1", network_kind::ip6).empty());
    // Without AI_ADDRCONFIG, in a namespace with only lo.
    CHECK(resolve("localhost", network_kind::ip4) == std::vector{ip("127.0.0.1")});
    CHECK(contains(resolve("localhost", network_kind::ip), ip("127.0.0.1")));
    if (own_hosts) {
        CHECK(resolve("localhost", network_kind::ip6) == std::vector{ip("::1")});
        const std::vector<ie::ip_address> both = resolve("localhost", network_kind::ip);
        CHECK(both.size() == 2);
        CHECK(contains(both, ip("::1")));
        CHECK(resolve("dual.test", network_kind::ip4) == std::vector{ip("192.0.2.5")});
        CHECK(resolve("dual.test", network_kind::ip6) == std::vector{ip("2001:db8::5")});
        CHECK(resolve("dual.test", network_kind::ip).size() == 2);
    } else {
        WARN("localhost as ::1 not checked: no private /etc/hosts");
    }
    // RFC 6761: .invalid never resolves; without a route, DNS fails at once.
    CHECK(resolve("nonexistent.invalid", network_kind::ip).empty());
}

TEST_CASE("resolver: the result arrives on the executor's thread", "[resolver]") {
    const bool own_hosts = private_hosts_file().empty();
    boost::asio::io_context ctx{1};
    resolver names(ctx.get_executor());
    exporter_config config = config_of({"localhost", "nonexistent.invalid", "::1"});
    if (own_hosts)
        config.groups.back().hosts.push_back("dual.test");
    int calls = 0;
    std::thread::id where;
    expanded_targets got;
    names.resolve(config, {}, [&](expanded_targets t) {
        ++calls;
        where = std::this_thread::get_id();
        got = std::move(t);
    });
    ctx.run(); // returns once the result is delivered: the request is work
    CHECK(calls == 1);
    CHECK(where == std::this_thread::get_id());
    REQUIRE(got.targets.size() >= 2);
    CHECK(got.targets[0].host == "localhost");
    CHECK(got.targets[0].ip == ip("127.0.0.1")); // network ip prefers IPv4, as Go does
    CHECK(got.targets[1].ip == ip("::1"));
    if (own_hosts) {
        REQUIRE(got.targets.size() == 3);
        CHECK(got.targets[2].ip == ip("192.0.2.5"));
    }
    CHECK(got.unresolved == std::vector<std::string>{"nonexistent.invalid"});
}

namespace {

// A resolve function whose first call waits until the test lets it go:
// what the test does meanwhile happens while a request is running.
struct gated_resolver {
    std::promise<void> entered;
    std::promise<void> gate;
    std::shared_future<void> opened{gate.get_future().share()};
    std::atomic<bool> first{true};
    std::mutex mutex;
    std::vector<std::string> calls;

    resolve_function function() {
        return [this](const std::string& host, network_kind) {
            {
                std::lock_guard lock(mutex);
                calls.push_back(host);
            }
            if (first.exchange(false)) {
                entered.set_value();
                opened.wait();
            }
            return std::vector<ie::ip_address>{ip("192.0.2.1")};
        };
    }
};

} // namespace

TEST_CASE("resolver: a newer request wins; the older one stops and is never delivered",
          "[resolver]") {
    private_hosts_file();
    boost::asio::io_context ctx{1};
    gated_resolver fake;
    resolver names(ctx.get_executor(), fake.function());
    std::vector<std::string> delivered;
    names.resolve(config_of({"a1", "a2", "a3"}), {}, [&](expanded_targets t) {
        delivered.push_back("a:" + std::to_string(t.targets.size()));
    });
    fake.entered.get_future().wait(); // the worker is inside a1's lookup
    names.resolve(config_of({"b1", "b2"}), {}, [&](expanded_targets t) {
        delivered.push_back("b:" + std::to_string(t.targets.size()));
    });
    fake.gate.set_value();
    ctx.run();
    CHECK(delivered == std::vector<std::string>{"b:2"});
    std::lock_guard lock(fake.mutex);
    CHECK(fake.calls == std::vector<std::string>{"a1", "b1", "b2"}); // a2, a3 never asked
}

TEST_CASE("resolver: of requests made before the result is delivered, only the last counts",
          "[resolver]") {
    private_hosts_file();
    boost::asio::io_context ctx{1};
    resolver names(ctx.get_executor(), [](const std::string&, network_kind) {
        return std::vector<ie::ip_address>{ip("192.0.2.1")};
    });
    std::vector<int> delivered;
    for (int i = 1; i <= 50; ++i) {
        std::vector<std::string> hosts;
        for (int h = 0; h < i; ++h)
            hosts.push_back("h" + std::to_string(h));
        names.resolve(config_of(hosts), {}, [&delivered, i](expanded_targets t) {
            CHECK(t.targets.size() == static_cast<std::size_t>(i));
            delivered.push_back(i);
        });
    }
    ctx.run();
    CHECK(delivered == std::vector<int>{50});
}

TEST_CASE("resolver: the shard filter is applied", "[resolver]") {
    private_hosts_file();
    boost::asio::io_context ctx{1};
    resolver names(ctx.get_executor());
    std::vector<std::string> hosts;
    for (int i = 1; i <= 40; ++i)
        hosts.push_back("127.0.0." + std::to_string(i));
    std::size_t n = 0;
    names.resolve(config_of(hosts), {1, 4}, [&](expanded_targets t) {
        for (const target_spec& s : t.targets)
            CHECK(shard_of(s.host, 4) == 1);
        n = t.targets.size();
    });
    ctx.run();
    CHECK(n == static_cast<std::size_t>(
                   std::count_if(hosts.begin(), hosts.end(),
                                 [](const std::string& h) { return shard_of(h, 4) == 1; })));
}

TEST_CASE("resolver: destroyed mid-request, it joins and delivers nothing", "[resolver]") {
    private_hosts_file();
    boost::asio::io_context ctx{1};
    gated_resolver fake;
    bool delivered = false;
    {
        resolver names(ctx.get_executor(), fake.function());
        names.resolve(config_of({"a1", "a2"}), {}, [&](expanded_targets) { delivered = true; });
        fake.entered.get_future().wait();
        fake.gate.set_value(); // a1 returns; the destructor may already be waiting
    }
    std::size_t calls_at_destruction = 0;
    {
        std::lock_guard lock(fake.mutex);
        calls_at_destruction = fake.calls.size();
    }
    ctx.run(); // anything already posted runs, and must not deliver
    CHECK_FALSE(delivered);
    std::lock_guard lock(fake.mutex);
    CHECK(fake.calls.size() == calls_at_destruction); // nothing after the join
    CHECK(fake.calls.size() <= 2);
}

TEST_CASE("resolver: an exception from the resolve function leaves through run()", "[resolver]") {
    private_hosts_file();
    boost::asio::io_context ctx{1};
    resolver names(ctx.get_executor(),
                   [](const std::string& host, network_kind) -> std::vector<ie::ip_address> {
                       throw std::runtime_error("resolver broke on " + host);
                   });
    bool delivered = false;
    names.resolve(config_of({"x"}), {}, [&](expanded_targets) { delivered = true; });
    CHECK_THROWS_WITH(ctx.run(), "resolver broke on x");
    CHECK_FALSE(delivered);
}
