// SPDX-License-Identifier: MIT
// Host names to addresses without blocking the engine: expand() (config.hpp)
// runs on a thread of the resolver's own, with getaddrinfo(3) as its
// resolve_function, and its result is handed back on the executor that
// runs the engine and the HTTP server.
//
//     boost::asio::io_context ctx;
//     resolver names(ctx.get_executor());
//     names.resolve(config, shard, [&](expanded_targets t) {
//         // on ctx's thread
//         prober.set_targets(std::move(t.targets));
//     });
//     ctx.run();
//
// When to resolve again (the lead's main.cpp has the timer): smokeping_prober
// itself (0.9 and master) resolves each host once, when it starts and when
// its configuration is reloaded (SIGHUP, POST /-/reload); it has no
// re-resolution and no flag for it (its issues #15 and #159). An open pull
// request (#205, dns_resolver.go) adds per-group TTL-aware re-resolution:
// a check every 30 s, the record's TTL clamped to 30 s..24 h, with a
// per-group fixed interval overriding the TTL; it is not merged. getaddrinfo
// gives no TTL, so the exporter's choice is a fixed interval: the flag
// suggested is `--dns.interval` (a Go duration, default 5m; 0 = only at
// start and reload), with re-resolution keeping counters of hosts whose
// address did not change (continuous_prober::set_targets keeps identities).
#pragma once

#include "config.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <functional>
#include <memory>
#include <thread>

namespace icmpengine_exporter {

/// Blocking getaddrinfo(3): addresses in the resolver's order (for network
/// ip, RFC 6724's as glibc sorts them; expand() then prefers IPv4, as Go
/// does), each once; empty if the name does not resolve. Without
/// AI_ADDRCONFIG: in a namespace with only lo up, "localhost" is still
/// 127.0.0.1 and ::1 (as /etc/hosts says). Literals are returned as they are.
/// Thread-safe; may block for as long as resolv.conf's timeouts allow.
resolve_function system_resolve();

/// One background thread that runs expand() for the newest request and
/// posts the result to `executor`. Create, use and destroy it on the
/// executor's thread (the one thread that runs its io_context), and
/// destroy it before the io_context.
class resolver {
  public:
    using done_handler = std::function<void(expanded_targets)>;

    /// `resolve` is what the thread calls per name (tests pass a fake).
    explicit resolver(boost::asio::any_io_executor executor,
                      resolve_function resolve = system_resolve());
    /// Stops the thread and joins it: waits for the one lookup in progress,
    /// if any (bounded by resolv.conf's timeout and attempts), never for
    /// the rest of a request. A result not yet delivered is dropped.
    ~resolver();
    resolver(const resolver&) = delete;
    resolver& operator=(const resolver&) = delete;

    /// Resolves `config`'s hosts of `shard` (expand()) off this thread and
    /// calls `done` with the result on the executor. The newest request
    /// wins: one still waiting or running when resolve() is called again is
    /// abandoned at its next lookup and its `done` is never called. So
    /// `done` is called at most once, and not after the destructor. While a
    /// request is outstanding it counts as work of the executor's context
    /// (io_context::run() does not return before it is delivered). An
    /// exception from the resolve function propagates out of the context's
    /// run(), as an exception from a handler would.
    void resolve(exporter_config config, shard_spec shard, done_handler done);

  private:
    struct state;
    std::shared_ptr<state> m_state;
    std::thread m_thread;
};

} // namespace icmpengine_exporter
