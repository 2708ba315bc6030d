// SPDX-License-Identifier: MIT
// engine_core's send side: starting pings (or queueing them beyond
// max_in_flight), building and submitting echo requests in batches, and
// what to do when a send fails.
#include "engine_core.hpp"

#include <icmpengine/errors.hpp>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <netinet/in.h>

namespace icmpengine::detail {
namespace {

socklen_t sockaddr_length(const ip_address& a) noexcept {
    return a.is_v4() ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
}

/// Writes `a` as a sockaddr_in or sockaddr_in6 (sockaddr_length(a) bytes).
void fill_sockaddr(const ip_address& a, std::byte* out) noexcept {
    if (a.is_v4()) {
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        std::memcpy(&sa.sin_addr, a.bytes().data(), 4);
        std::memcpy(out, &sa, sizeof sa);
        return;
    }
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    std::memcpy(&sa.sin6_addr, a.bytes().data(), 16);
    sa.sin6_scope_id = a.scope_id();
    std::memcpy(out, &sa, sizeof sa);
}

// Errors an ICMP error leaves in sk_err (icmp_err_convert[],
// icmpv6_err_convert()). With IP_RECVERR, ping_err() sets sk_err for every
// ICMP error, and the socket's next sendmsg() - to any target - fails with
// it (sock_alloc_send_pskb() checks sock_error()). Such a failure says
// nothing about this request: send it again.
bool maybe_stale_socket_error(int err) noexcept {
    switch (err) {
    case ENETUNREACH:
    case EHOSTUNREACH:
    case ENOPROTOOPT:
    case ECONNREFUSED:
    case EMSGSIZE:
    case EOPNOTSUPP:
    case EACCES:
    case EHOSTDOWN:
    case EPROTO:
        return true;
    default:
        return false;
    }
}

// Out of socket buffer or memory for the moment: worth another try.
bool transient_send_error(int err) noexcept {
    return err == EAGAIN || err == ENOBUFS || err == EINTR;
}

// A request whose sends fail for lack of buffers is given up after 4
// attempts. One whose send failed with an error that an ICMP error about
// another request may have left in sk_err is sent again as long as the kernel
// has a route to its target (check_route) and its deadline has not passed:
// during a burst of ICMP errors (a fleet with many unreachable targets) every
// error poisons one send, and a healthy request can be hit many times. The
// cap only stops a loop if the route check and the sends ever disagreed.
constexpr std::uint8_t max_transient_attempts = 4;
constexpr std::uint8_t max_stale_attempts = 100;

} // namespace

// ---------------------------------------------------------------- ping_op

ping_op::~ping_op() {
    if (m_resume_queued)
        m_inputs.core->drop_resume(*this);
    else if (!m_done && m_slot != no_slot)
        m_inputs.core->abandon(*this);
}

bool ping_op::await_suspend(std::coroutine_handle<promise_type> h) {
    m_waiter = h;
    return m_inputs.core->start(*this);
}

void ping_op::on_ping_result(std::uint64_t /*cookie*/, const ping_result& result) {
    set_result(result);
    // Resumed here, not queued: between a delivery and a later resumption
    // the task could be destroyed, leaving a handle to a freed frame.
    m_waiter.resume();
}

task<ping_result> engine_core::ping(ip_address to, std::chrono::nanoseconds timeout,
                                    ping_options options) {
    return ping_in(*m_frames, ping_inputs{this, to, timeout.count(), options.payload_size});
}

task<ping_result> engine_core::ping_in(frame_pool& /*frames: the frame's allocator*/,
                                       ping_inputs inputs) {
    // The frame holds the inputs, the op and the promise, and nothing
    // else that lives across the suspension: the result goes straight
    // into the promise (bench/README.md, issue 13).
    ping_op op(inputs);
    co_await op;
    co_return detail::result_in_place{};
}

// ------------------------------------------------------------- starting

std::optional<ping_result> engine_core::refusal(const ip_address& target) {
    auto refused = [&](ping_status status, std::error_code error) {
        ping_result r;
        r.from = target;
        r.status = status;
        r.error = error;
        ++m_stats.sent;
        ++(status == ping_status::cancelled ? m_stats.cancelled : m_stats.send_errors);
        return r;
    };
    if (m_stopping)
        return refused(ping_status::cancelled, make_error_code(errc::stopped));
    if (!ensure_ring())
        return refused(ping_status::send_error, m_ring_error);
    const family_state* fs = ensure_family(target.family());
    if (fs->socket.fd < 0)
        return refused(ping_status::send_error, fs->open_error);
    return std::nullopt;
}

bool engine_core::start(ping_op& op) {
    if (std::optional<ping_result> r = refusal(op.m_inputs.target)) {
        op.set_result(*r);
        return false; // do not suspend: the result is ready
    }
    work_queued_outside();
    if (m_slots.full() || !m_waiting.empty())
        enqueue(op.request(), false);
    else
        launch(op.request());
    return true;
}

ping_ticket engine_core::start(const ping_request& request) {
    work_queued_outside();
    ping_ticket ticket{request.handler, request.cookie};
    if (std::optional<ping_result> r = refusal(request.target)) {
        deliver(request.handler, request.cookie, *r); // delivered from run(), never from here
        return ticket;
    }
    if (m_slots.full() || !m_waiting.empty()) {
        enqueue(request, false);
        return ticket;
    }
    std::uint32_t index = no_slot;
    ping_request launched = request;
    launched.slot_out = &index;
    launch(launched);
    if (index < m_slots.size()) {
        ticket.slot = index;
        ticket.generation = m_slots[index].generation;
    }
    return ticket;
}

bool engine_core::cancel(const ping_ticket& ticket) {
    // A cancelled ping's result is delivered by the next turn: an embedded
    // engine's descriptor must say so (called from the host loop).
    work_queued_outside();
    auto ours = [&](const slot& s) {
        return s.state == slot_state::in_flight && s.handler == ticket.handler &&
               s.cookie == ticket.cookie;
    };
    if (ticket.slot < m_slots.size() && m_slots[ticket.slot].generation == ticket.generation) {
        if (!ours(m_slots[ticket.slot]))
            return false; // ended (or abandoned) already
        ping_result r = result_for(ticket.slot);
        r.error = std::make_error_code(std::errc::operation_canceled);
        end(ticket.slot, ping_status::cancelled, std::move(r));
        return true;
    }
    // It waited for a slot: still waiting, or launched since.
    const auto waiting = std::find_if(m_waiting.begin(), m_waiting.end(), [&](const auto& r) {
        return r.handler == ticket.handler && r.cookie == ticket.cookie;
    });
    if (waiting != m_waiting.end()) {
        ping_result r;
        r.from = waiting->target;
        r.status = ping_status::cancelled;
        r.error = std::make_error_code(std::errc::operation_canceled);
        m_waiting.erase(waiting);
        --m_stats.waiting;
        ++m_stats.sent;
        ++m_stats.cancelled;
        deliver(ticket.handler, ticket.cookie, r);
        return true;
    }
    for (std::uint32_t i = 0; i < m_slots.size(); ++i)
        if (ours(m_slots[i])) {
            ping_result r = result_for(i);
            r.error = std::make_error_code(std::errc::operation_canceled);
            end(i, ping_status::cancelled, std::move(r));
            return true;
        }
    return false;
}

void engine_core::enqueue(const ping_request& request, bool front) {
    if (front)
        m_waiting.push_front(request);
    else
        m_waiting.push_back(request);
    if (request.slot_out != nullptr)
        *request.slot_out = queued_slot;
    ++m_stats.waiting;
}

void engine_core::admit_waiting() {
    while (!m_waiting.empty() && !m_slots.full() && !m_stopping) {
        const ping_request request = m_waiting.front();
        m_waiting.pop_front();
        --m_stats.waiting;
        const std::size_t before = m_waiting.size();
        launch(request, true);
        if (m_waiting.size() > before)
            break; // it went back to waiting: no usable slot yet
    }
}

void engine_core::launch(const ping_request& request, bool front) {
    const bool has_token = request.payload_size >= token_size;
    const std::uint32_t index = m_slots.alloc(request.target, has_token);
    if (index == no_slot) {
        // Only for token-less pings whose every free sequence number is taken
        // by another ping to the same host: wait like any backpressure.
        enqueue(request, front);
        return;
    }
    // Room in the heap for every slot, so that a push never allocates: for
    // every slot the table has room for (it jumps to its reuse size early),
    // and geometrically beyond. Reserving a fixed step ahead reallocated
    // the heap for every new slot while it was empty (on loopback, most of
    // a fan-out) and copied O(n^2) entries on the way to a million slots.
    if (index + 1 == m_slots.size() &&
        (index == 0 || (index >= 4096 && std::has_single_bit(index))))
        m_heap.reserve(std::max<std::size_t>({2 * std::size_t{index}, 8192, m_slots.capacity()}));
    slot& s = m_slots.begin_use(index, request.target, request.payload_size);
    s.handler = request.handler;
    s.awaiter = request.awaiter;
    s.cookie = request.cookie;
    if (request.slot_out != nullptr)
        *request.slot_out = index;
    ++m_stats.sent;
    ++m_stats.in_flight;

    if (m_config.fake_drop_probability > 0.0 && m_drop(m_drop_rng)) {
        s.fake_dropped = true;
        ++m_stats.fake_dropped;
        ICMPENGINE_LOG(matching, trace, "fake-dropped ping slot {} to {}", index,
                       request.target.to_string());
    } else {
        build_request(index, m_families[family_index(request.target.family())]);
        prep_send(index);
    }
    queue_send(index, request.timeout_ns);
}

void engine_core::build_request(std::uint32_t index, const family_state& fs) {
    slot& s = m_slots[index];
    const bool raw = fs.socket.kind == socket_mode::raw;
    const auto sequence = static_cast<std::uint16_t>(index & 0xffffu);
    const std::size_t packet_size = icmp_header_size + s.payload_size;
    std::byte* buffer = m_send_buffers.get(send_buffer_size(s.payload_size));
    fill_sockaddr(s.target, buffer);
    const echo_token token{index, s.generation,
                           m_matcher.tag(index, s.generation, sequence, s.target, s.payload_size)};
    build_echo_request(std::span<std::byte>(buffer + sockaddr_room, packet_size), s.target.family(),
                       raw ? m_raw_identifier : 0, sequence, s.payload_size,
                       s.has_token() ? &token : nullptr, raw && s.target.is_v4(),
                       m_config.random_payload ? &token.tag : nullptr);
    s.send_buffer = buffer;
    s.send_pending = true;
    s.send_attempts = 1;
    ++m_sends_in_kernel;
}

void engine_core::queue_send(std::uint32_t index, std::int64_t timeout_ns) {
    m_pending_sends.push_back({index, timeout_ns});
    if (m_pending_sends.size() >= m_config.send_batch)
        flush_sends(true);
}

void engine_core::prep_send(std::uint32_t index) {
    const slot& s = m_slots[index];
    const std::size_t f = family_index(s.target.family());
    const family_state& fs = m_families[f];
    io_uring_sqe* sqe = get_sqe();
    m_ring.prep_send(sqe, fs.fixed_file ? static_cast<int>(f) : fs.socket.fd, fs.fixed_file,
                     s.send_buffer + sockaddr_room, icmp_header_size + s.payload_size,
                     s.send_buffer, sockaddr_length(s.target), encode(op_kind::send, index));
}

void engine_core::resend(std::uint32_t index) {
    const slot& s = m_slots[index];
    ICMPENGINE_LOG(sockets, debug, "resending to {} (attempt {}): the socket held an error",
                   s.target.to_string(), s.send_attempts);
    prep_send(index);
    // Its send time is taken again at the flush; its deadline stays.
    m_pending_sends.push_back({index, -1});
}

void engine_core::send_deferred() {
    for (const std::uint32_t index : std::exchange(m_deferred_resends, {})) {
        if (m_slots[index].state == slot_state::in_flight)
            resend(index);
        else
            handle_send(index, -ECANCELED); // ended meanwhile: nothing to send
    }
}

void engine_core::flush_sends(bool submit_now) {
    if (!m_pending_sends.empty()) {
        // The send time of every request in this batch: taken as late as
        // possible, just before the io_uring_enter that submits them. The
        // kernel sends them in SQ order within that enter, so a request's RTT
        // is over-estimated by the time the kernel spent on the requests
        // before it in the batch (bounded by send_batch).
        const std::int64_t now = now_mono();
        for (const pending_send& p : m_pending_sends) {
            slot& s = m_slots[p.slot];
            s.tx_mono = now;
            if (p.timeout_ns < 0)
                continue; // a resend: its deadline is in the heap already
            m_heap.push(p.slot, now + p.timeout_ns);
        }
        m_pending_sends.clear();
    }
    if (submit_now) {
        reconcile_timer();
        submit(false);
        // Long bursts of pings are started without returning to the loop:
        // reap here too, so that receive buffers go back to the kernel and a
        // receive that ran out of them is re-armed before replies pile up in
        // the socket (and before the CQ overflows).
        harvest(true);
        rearm_receives();
    }
}

bool engine_core::retry_send(std::uint32_t index, std::int32_t& res) {
    slot& s = m_slots[index];
    family_state& fs = m_families[family_index(s.target.family())];
    bool stale = fs.socket.kind == socket_mode::datagram && maybe_stale_socket_error(-res);
    if (stale) {
        // Genuine (no route: fail with the route lookup's own error) or
        // left behind by an ICMP error about another request (send again)?
        if (const int route = check_route(fs.route_probe_fd, s.target, m_config); route != 0) {
            res = -route;
            stale = false;
        }
    }
    const bool transient = transient_send_error(-res);
    if (!(stale && s.send_attempts < max_stale_attempts) &&
        !(transient && s.send_attempts < max_transient_attempts))
        return false;
    ++s.send_attempts;
    ++m_recoveries.send_retries;
    if (stale)
        fs.err_again = true; // the error that poisoned it is in the error queue
    // Sent again next turn, after the error queue was read.
    m_deferred_resends.push_back(index);
    return true;
}

void engine_core::handle_send(std::uint32_t index, std::int32_t res) {
    slot& s = m_slots[index];
    if (res < 0 && s.state == slot_state::in_flight && retry_send(index, res))
        return;
    s.send_pending = false;
    --m_sends_in_kernel;
    m_send_buffers.put(s.send_buffer, send_buffer_size(s.payload_size));
    s.send_buffer = nullptr;
    if (res < 0) {
        ICMPENGINE_LOG(sockets, debug, "send to {} failed: {}", s.target.to_string(),
                       std::strerror(-res));
        family_state& fs = m_families[family_index(s.target.family())];
        if (fs.socket.kind == socket_mode::datagram)
            fs.err_again = true; // a local error may also sit in the error queue
        if (s.state == slot_state::in_flight) {
            ping_result r = result_for(index);
            r.error = std::error_code(-res, std::system_category());
            end(index, ping_status::send_error, std::move(r));
            return;
        }
    }
    if (s.state == slot_state::ended)
        finish(index);
}

// ------------------------------------------------- handlers going away

void engine_core::abandon(ping_op& op) noexcept {
    // The coroutine frame holding `op` is being destroyed while its ping is
    // still pending: the ping ends normally, with no one to tell.
    if (op.m_slot == queued_slot) {
        auto it = std::find_if(m_waiting.begin(), m_waiting.end(),
                               [&](const ping_request& r) { return r.handler == &op; });
        if (it != m_waiting.end()) {
            m_waiting.erase(it);
            --m_stats.waiting;
            return;
        }
    } else if (op.m_slot < m_slots.size() && m_slots[op.m_slot].handler == &op) {
        m_slots[op.m_slot].handler = nullptr;
        return;
    }
    // Ended (in flight, or cancelled while queued), its result not yet
    // delivered.
    drop_deliveries(op);
}

void engine_core::forget(const ping_handler& handler) noexcept {
    for (slot& s : m_slots.all())
        if (s.handler == &handler)
            s.handler = nullptr;
    const auto withdrawn =
        std::erase_if(m_waiting, [&](const ping_request& r) { return r.handler == &handler; });
    m_stats.waiting -= withdrawn;
    drop_deliveries(handler);
}

} // namespace icmpengine::detail
