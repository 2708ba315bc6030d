// SPDX-License-Identifier: MIT
// Continuous mode's private parts (continuous.cpp, continuous_engine.cpp):
// one target's state, and one engine with its scheduler. Not part of the
// exporter's interface.
#pragma once

#include "continuous_metrics.hpp"
#include "history.hpp"
#include "target.hpp"

#include <icmpengine/boost_asio.hpp>
#include <icmpengine/engine.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <compare>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace icmpengine_exporter {

using prober_clock = std::chrono::steady_clock;

class continuous_engine;

/// One target of the prober: fixed size, apart from its strings and its
/// history ring (both fixed once the target is added).
struct continuous_target {
    target_spec spec;
    target_metrics metrics;
    std::optional<history_ring> history; ///< none when history_bins == 0
    continuous_engine* engine = nullptr;
    ie::ping_ticket last_ticket{};        ///< to cancel its last ping when it is removed
    prober_clock::time_point next_send{}; ///< the next send's due time
    std::uint32_t slot = 0;
    std::uint32_t generation = 0;
    std::size_t index = 0; ///< in set_targets order

    /// What start_ping carries: slot and generation, so that a result for
    /// a removed target (whose slot may have been given to another) is
    /// recognised as stale.
    std::uint64_t cookie() const noexcept { return std::uint64_t{generation} << 32 | slot; }
};

/// Which engine a target uses: one per (source, tos).
struct engine_key {
    std::string source;
    std::uint8_t tos = 0;
    auto operator<=>(const engine_key&) const = default;
    bool operator==(const engine_key&) const = default;
};

/// What an engine needs from its prober (continuous_prober::impl).
class prober_core {
  public:
    virtual continuous_target* find(std::uint64_t cookie) const noexcept = 0;
    virtual void send(continuous_target& t, prober_clock::time_point due,
                      prober_clock::time_point now) = 0;
    virtual void on_result(std::uint64_t cookie, const ie::ping_result& r) = 0;
    virtual bool is_stopped() const noexcept = 0;

  protected:
    prober_core() = default;
    prober_core(const prober_core&) = default;
    prober_core& operator=(const prober_core&) = default;
    ~prober_core() = default;
};

/// One engine (its config: the prober's engine_config with this key's
/// DSCP and source), driven from the executor, with the scheduler of its
/// targets: a min-heap of due sends and one steady_timer. Owned through a
/// shared_ptr: the timer's handler holds a weak_ptr, so that a wake-up
/// queued before the engine was retired finds it gone.
class continuous_engine final : public ie::ping_handler,
                                public std::enable_shared_from_this<continuous_engine> {
  public:
    /// Creates the engine and its driver (the io_uring ring): throws what
    /// they throw (std::system_error if io_uring is unavailable).
    continuous_engine(prober_core& owner, const boost::asio::any_io_executor& executor,
                      const engine_key& key, const ie::engine_config& base);
    /// Stops the engine (its pings in flight end as cancelled, delivered
    /// nowhere once owner_gone()), then the driver, then the engine.
    ~continuous_engine();
    continuous_engine(const continuous_engine&) = delete;
    continuous_engine& operator=(const continuous_engine&) = delete;

    ie::engine& engine() noexcept { return m_engine; }
    const ie::engine& engine() const noexcept { return m_engine; }
    const engine_key& key() const noexcept { return m_key; }
    /// `{source="...",tos="..."}`
    const std::string& label_set() const noexcept { return m_label_set; }

    /// Queues `t`'s next send (at t.next_send); arm() makes the timer see it.
    void schedule(const continuous_target& t);
    /// Sets the timer for the earliest due send (no earlier than one tick
    /// after the last wake-up), if it is not set for that or earlier.
    void arm();
    /// No more sends; the engine stops (pings in flight end cancelled).
    void stop();
    /// stop(), and results and strays go nowhere from now on.
    void owner_gone();

    /// The targets of this engine by address (sorted, stable: the first
    /// target of an address gets its strays). Rebuilt by the prober.
    std::vector<std::pair<ie::ip_address, continuous_target*>> by_address;

    void on_ping_result(std::uint64_t cookie, const ie::ping_result& result) override;

  private:
    struct due_send {
        prober_clock::time_point due;
        std::uint64_t cookie;
    };
    /// The heap's order (a type, not a function pointer: inlined).
    struct later {
        bool operator()(const due_send& a, const due_send& b) const noexcept {
            return a.due > b.due;
        }
    };
    static ie::engine_config make_config(const ie::engine_config& base, const engine_key& key,
                                         continuous_engine* self);

    void on_stray(const ie::stray_reply& stray);
    void on_timer();

    prober_core* m_owner;
    engine_key m_key;
    std::string m_label_set;
    ie::engine m_engine;
    std::optional<ie::boost_asio::driver> m_driver; // destroyed before m_engine
    boost::asio::steady_timer m_timer;
    prober_clock::time_point m_armed_for = prober_clock::time_point::max();
    prober_clock::time_point m_last_wake{};
    std::vector<due_send> m_heap; ///< min-heap on due
};

} // namespace icmpengine_exporter
