// SPDX-License-Identifier: MIT
// /metrics streamed in bounded chunks: the page of every continuous prober
// (the main thread's and each --engines worker's, each rendered on its own
// thread) and the exporter's own families, made ~256 KB at a time into the
// one buffer the HTTP connection reuses (http_response::stream), so that a
// scrape of 10,000 targets (~40 MB of text) needs no page-sized memory.
//
// With one prober the page is render()'s, byte for byte, then the own
// families. Per family its head once, then the rows of each prober's
// targets (families stay contiguous across probers, as the text format
// requires), then the prober-wide families of all probers summed
// (prober_totals: exposition::merge() of per-thread pages, as before,
// repeated smokeping_receive_errors_total, icmpengine_exporter_targets and
// each engine series once per --engines thread), then the own ones.
//
// A target set that changes during a scrape (SIGHUP, re-resolution): a
// family whose rows of one prober were begun under one generation of its
// target set (continuous_prober::generation) and that finds another at its
// next batch leaves out that prober's remaining rows of that family; the
// next family starts over from the new set. So a scrape never holds a
// series twice; a scrape that races a reload may miss some rows of one
// family (Prometheus sees them again at the next scrape).
#pragma once

#include "continuous.hpp"
#include "exposition.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace icmpengine_exporter {

/// One prober and the thread it lives on.
struct metrics_source {
    /// Where the prober may be touched; empty: the stream's own executor
    /// (called directly), otherwise co_spawn onto it and await.
    boost::asio::any_io_executor executor;
    /// The prober, read on `executor`'s thread; null: none (shut down).
    std::function<const continuous_prober*()> prober;
};

class metrics_stream {
  public:
    /// About how much a chunk holds before it is sent.
    static constexpr std::size_t chunk_bytes = 256 * 1024;
    /// Targets rendered per batch, at most (one round trip to a worker).
    static constexpr std::size_t max_batch = 4096;

    /// `own` appends the exporter's own families (last on the page);
    /// `stopping`, if it says true, makes the stream leave out the sources
    /// with an executor (a worker whose io_context may no longer run).
    metrics_stream(std::vector<metrics_source> sources, std::function<void(exposition&)> own,
                   std::function<bool()> stopping = {});

    /// The producer's step (http_response::stream): appends the next
    /// ~chunk_bytes of the page to `chunk`; false once the page is done.
    boost::asio::awaitable<bool> next(std::string& chunk);

  private:
    boost::asio::awaitable<void> batch(std::string& chunk);
    boost::asio::awaitable<void> tail(std::string& chunk);
    template <typename F>
    boost::asio::awaitable<void> on_source(metrics_source& s, F&& f);
    void advance_source();

    std::vector<metrics_source> m_sources;
    std::function<void(exposition&)> m_own;
    std::function<bool()> m_stopping;
    std::size_t m_family = 0;
    std::size_t m_source = 0;
    std::size_t m_first = 0;            ///< next target of m_source in m_family
    bool m_begun = false;               ///< m_generation holds m_source's generation
    std::uint64_t m_generation = 0;     ///< of m_source's set when its rows began
    bool m_head_written = false;        ///< m_family's head is on the page
    std::size_t m_bytes_per_target = 0; ///< of m_family's last batch; 0: unknown
    bool m_done = false;
};

} // namespace icmpengine_exporter
