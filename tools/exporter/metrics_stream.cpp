// SPDX-License-Identifier: MIT
// A scrape, in order (metrics_stream.hpp says why):
//  1. for each per-target family, for each source (prober), batches of
//     targets: on the source's thread, the family's head if no rows came
//     before it, then the batch's rows, appended to the connection's chunk
//     (the HTTP coroutine is suspended meanwhile: one writer at a time);
//     a batch is sized from the previous one's bytes per target so that a
//     chunk stays near chunk_bytes;
//  2. the chunk goes out whenever it holds chunk_bytes;
//  3. last, the prober-wide families of every source summed (one series
//     per engine label set, not one per thread), and the exporter's own,
//     in the last chunk.
#include "metrics_stream.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <utility>

namespace icmpengine_exporter {

namespace {

constexpr std::size_t first_batch = 32; ///< targets, before any estimate
constexpr std::size_t min_batch = 16;

} // namespace

metrics_stream::metrics_stream(std::vector<metrics_source> sources,
                               std::function<void(exposition&)> own, std::function<bool()> stopping)
    : m_sources(std::move(sources)), m_own(std::move(own)), m_stopping(std::move(stopping)) {}

boost::asio::awaitable<bool> metrics_stream::next(std::string& chunk) {
    while (!m_done && m_family < continuous_prober::family_count() && chunk.size() < chunk_bytes)
        co_await batch(chunk);
    if (m_done || m_family < continuous_prober::family_count())
        co_return !m_done;
    co_await tail(chunk);
    m_done = true;
    co_return false;
}

template <typename F>
boost::asio::awaitable<void> metrics_stream::on_source(metrics_source& s, F&& f) {
    if (!s.executor) {
        f(s.prober());
        co_return;
    }
    if (m_stopping && m_stopping()) {
        f(nullptr);
        co_return;
    }
    co_await boost::asio::co_spawn(
        s.executor,
        [&s, &f]() -> boost::asio::awaitable<void> {
            f(s.prober());
            co_return;
        },
        boost::asio::use_awaitable);
}

void metrics_stream::advance_source() {
    m_first = 0;
    m_begun = false;
    if (++m_source < m_sources.size())
        return;
    m_source = 0;
    ++m_family;
    m_head_written = false;
    m_bytes_per_target = 0;
}

boost::asio::awaitable<void> metrics_stream::batch(std::string& chunk) {
    if (m_source >= m_sources.size()) { // no sources at all
        advance_source();
        co_return;
    }
    const std::size_t budget = chunk_bytes - std::min(chunk.size(), chunk_bytes);
    const std::size_t count =
        m_bytes_per_target == 0 ? first_batch
                                : std::clamp(budget / m_bytes_per_target + 1, min_batch, max_batch);
    bool finished = false;
    std::size_t rendered = 0;
    std::size_t bytes = 0;
    co_await on_source(m_sources[m_source], [&](const continuous_prober* p) {
        // A new target set since this family's rows of `p` began: the
        // indexes name other targets now, leave the rest out.
        if (p == nullptr || (m_begun && p->generation() != m_generation) || m_first >= p->size()) {
            finished = true;
            return;
        }
        if (!m_begun) {
            m_begun = true;
            m_generation = p->generation();
        }
        const std::size_t mark = chunk.size();
        if (!m_head_written)
            continuous_prober::render_family_head(chunk, m_family);
        const std::size_t rows = chunk.size();
        p->render_family_rows(chunk, m_family, m_first, count);
        bytes = chunk.size() - rows;
        if (bytes == 0)
            chunk.resize(mark); // no head for a family without rows (yet)
        else
            m_head_written = true;
        rendered = std::min(count, p->size() - m_first);
        m_first += rendered;
        finished = m_first >= p->size();
    });
    if (rendered > 0)
        m_bytes_per_target = std::max<std::size_t>(1, bytes / rendered);
    if (finished)
        advance_source();
}

boost::asio::awaitable<void> metrics_stream::tail(std::string& chunk) {
    prober_totals totals;
    for (metrics_source& s : m_sources)
        co_await on_source(s, [&totals](const continuous_prober* p) {
            if (p != nullptr)
                p->add_totals(totals);
        });
    exposition page;
    render_prober_totals(page, totals);
    if (m_own)
        m_own(page);
    page.write(chunk);
}

} // namespace icmpengine_exporter
