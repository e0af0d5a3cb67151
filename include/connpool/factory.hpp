// connpool: the Factory concept, i.e. what a pool needs from a connection type's maker.
#ifndef CONNPOOL_FACTORY_HPP
#define CONNPOOL_FACTORY_HPP

#include <connpool/connect_request.hpp>
#include <connpool/error.hpp>
#include <connpool/label.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <concepts>
#include <optional>

namespace connpool {

namespace asio = boost::asio;

// The completion handler of an optional async_connect: the error (empty on success)
// and the connection (engaged on success).
template <class Connection>
using connect_handler = asio::any_completion_handler<void(error_info, std::optional<Connection>)>;

// A Factory opens connections for a pool. The only required members are:
//
//   using connection_type = ...;   // a movable handle whose destructor closes the connection
//   std::optional<connection_type> connect(const connect_request&, error_info&);
//       // Blocking. On failure it returns nullopt and fills error_info with a code and a
//       // message that names the cause (never a password). It may also throw.
//
// Optional members, detected at compile time; a factory with only connect() works in every
// mode, because the pool runs blocking calls on its own worker threads:
//
//   void async_connect(const connect_request&, asio::any_io_executor, connect_handler<connection_type>);
//       // Non-blocking connect driven by the executor. Calls the handler exactly once.
//   bool ping(connection_type&, std::chrono::milliseconds timeout, error_info&);
//       // Blocking round trip; false means the connection is dead.
//   bool reset(connection_type&, error_info&);
//       // Blocking; makes the connection clean for the next user. false means close it.
//   bool needs_reset(const connection_type&) const;
//       // No I/O. false lets a returned connection skip the reset and go straight to idle.
//   bool is_broken(const connection_type&) const;
//       // No I/O. true closes the connection on return instead of reusing it.
//   bool probe(connection_type&);
//       // Never waits: a non-blocking look at an idle connection, e.g. whether its socket
//       // became readable with an EOF or an error the server sent before going away.
//       // false closes it. Housekeeping probes idle connections, so that a server restart
//       // or a killed session is noticed, and replaced, before anyone acquires it.
//   bool apply(connection_type&, const label& from, const label& to, error_info&);
//       // Blocking: moves the connection's session settings from one label to another
//       // (label.hpp: changes(from, to) lists what to set and what to reset), running
//       // only the statements needed. false closes the connection. Needed for acquires
//       // that ask for a label.
//   bool reset_clears_labels(const connection_type&) const;
//       // No I/O, asked right after a successful reset() of that connection. true: that
//       // reset returned every session setting to the server's default (DISCARD ALL,
//       // mysql_reset_connection), so the pool forgets the connection's label. Absent or
//       // false: labels survive resets.
//
// Thread-safety: the pool may call the factory's members from several threads at once,
// but never two members on the same connection at once.
template <class F>
concept connection_factory = requires(F& f, const connect_request& r, error_info& e) {
    typename F::connection_type;
    requires std::movable<typename F::connection_type>;
    { f.connect(r, e) } -> std::same_as<std::optional<typename F::connection_type>>;
};

namespace detail {

template <class F>
concept has_async_connect =
    requires(F& f, const connect_request& r, asio::any_io_executor ex,
             connect_handler<typename F::connection_type> h) { f.async_connect(r, ex, std::move(h)); };

template <class F>
concept has_ping = requires(F& f, typename F::connection_type& c, std::chrono::milliseconds t, error_info& e) {
    { f.ping(c, t, e) } -> std::convertible_to<bool>;
};

template <class F>
concept has_reset = requires(F& f, typename F::connection_type& c, error_info& e) {
    { f.reset(c, e) } -> std::convertible_to<bool>;
};

template <class F>
concept has_needs_reset = requires(const F& f, const typename F::connection_type& c) {
    { f.needs_reset(c) } -> std::convertible_to<bool>;
};

template <class F>
concept has_is_broken = requires(const F& f, const typename F::connection_type& c) {
    { f.is_broken(c) } -> std::convertible_to<bool>;
};

template <class F>
concept has_apply = requires(F& f, typename F::connection_type& c, const label& l, error_info& e) {
    { f.apply(c, l, l, e) } -> std::convertible_to<bool>;
};

template <class F>
concept has_reset_clears_labels = requires(const F& f, const typename F::connection_type& c) {
    { f.reset_clears_labels(c) } -> std::convertible_to<bool>;
};

template <class F>
concept has_probe = requires(F& f, typename F::connection_type& c) {
    { f.probe(c) } -> std::convertible_to<bool>;
};

}  // namespace detail
}  // namespace connpool

#endif  // CONNPOOL_FACTORY_HPP
