// connpool::mysql: what a connect needs (connect_options) and how a returned connection
// is cleaned for the next user (reset_policy).
#ifndef CONNPOOL_MYSQL_OPTIONS_HPP
#define CONNPOOL_MYSQL_OPTIONS_HPP

#include <chrono>
#include <string>
#include <vector>

namespace connpool::mysql {

// What the pool does to a connection that comes back from a lease, on its own worker
// (the returning caller never waits for it).
enum class reset_policy {
    // The default: clean only what the lease dirtied, judged from the server's own reply
    // flags, so that a clean return costs no round trip at all. The factory turns on
    // session_track_state_change at connect; the helpers collect SERVER_SESSION_STATE_CHANGED
    // from every reply, and flag the state the server does not (LOCK TABLES, GET_LOCK, ...;
    // see connection::session_changed()). A changed session gets the full
    // reset_connection treatment; a session whose only dirt is an open transaction gets a
    // ROLLBACK; a clean one nothing. Work done through native_handle() counts as a change.
    // Not detected: session state that a stored function changes inside a plain SELECT;
    // use reset_connection if your functions do that.
    reset_if_dirty,
    // mysql_reset_connection (COM_RESET_CONNECTION): rolls back an open transaction, drops
    // temporary tables, clears user variables, deallocates prepared statements, releases
    // locks and resets session variables, then runs the init commands again. It keeps the
    // current role and schema, so the factory also sends SET ROLE NONE when a role may have
    // been set, and selects the configured schema when a lease or a label changed it. Two
    // or more round trips, whenever the lease touched the connection at all.
    reset_connection,
    // ROLLBACK, and only when the server's last status says a transaction is open. Keeps
    // user variables, temporary tables, prepared statements and session settings: cheaper,
    // for applications that never leave session state behind.
    rollback_only,
    // Nothing: the next user sees whatever the last one left.
    none,
};

// TLS settings. TLS is off unless one of these is set.
struct tls_options {
    std::string ca;      // PEM file of the CA(s) that signed the server certificate
    std::string capath;  // directory of PEM CA files
    std::string cert;    // PEM client certificate, for servers that ask for one
    std::string key;     // PEM private key of cert
    std::string cipher;  // allowed cipher list; empty = library default
    // Check the server certificate against ca/capath and the host name. Without it,
    // TLS encrypts but does not authenticate the server.
    bool verify_server_cert = false;
    // Fail the connect when the server does not offer TLS (no silent plaintext fallback).
    bool require = false;

    // True when any TLS option is set, which turns TLS on.
    bool enabled() const noexcept {
        return require || verify_server_cert || !ca.empty() || !capath.empty() || !cert.empty() ||
               !key.empty() || !cipher.empty();
    }
};

// Where and how to connect. A factory takes these once, or asks a callable for them on
// every connect (rotated credentials).
struct connect_options {
    // TCP host name or address. Always TCP, also for "localhost": set unix_socket to use
    // a socket file (libmysqlclient's "localhost means socket" rule is not applied).
    std::string host = "127.0.0.1";
    // Path of the server's Unix socket; when set, host and port are ignored.
    std::string unix_socket;
    // TCP port, when unix_socket is empty.
    unsigned port = 3306;
    // User name.
    std::string user;
    // Never appears in an error message, log line or statistic.
    std::string password;
    // Default schema; empty = none.
    std::string database;
    // Connection character set (MYSQL_SET_CHARSET_NAME).
    std::string charset = "utf8mb4";
    // TLS: certificates, verification, requirement (see tls_options).
    tls_options tls;
    // Socket read/write timeouts for queries after the connect (MYSQL_OPT_READ_TIMEOUT /
    // MYSQL_OPT_WRITE_TIMEOUT), rounded up to whole seconds; zero = the library default
    // (no timeout). A statement running longer than read_timeout fails with error 2013 and
    // the connection is discarded, so keep it above your slowest query.
    std::chrono::milliseconds read_timeout{0};
    // The same for writes.
    std::chrono::milliseconds write_timeout{0};
    // Upper bound on each step of a reset (COM_RESET_CONNECTION, ROLLBACK, each init command,
    // selecting the schema again) and of a label's apply(). A step that runs out of time fails
    // the reset or apply, and the pool closes the connection. Must be positive. With Oracle's libmysqlclient (no non-blocking
    // API) read_timeout bounds the steps instead.
    std::chrono::milliseconds reset_timeout{5000};
    // Statements run right after each connect (MYSQL_INIT_COMMAND), e.g. "SET time_zone='+00:00'".
    // A full reset (reset_connection, or reset_if_dirty on a changed session) resets session
    // variables, so the factory runs them again after it.
    std::vector<std::string> init_commands;
    // Prepared statements each connection keeps for connection::query_cached, the least
    // recently used closed first; 0 turns the cache off. At most 65536.
    std::size_t statement_cache_capacity = 128;
};

}  // namespace connpool::mysql

#endif  // CONNPOOL_MYSQL_OPTIONS_HPP
