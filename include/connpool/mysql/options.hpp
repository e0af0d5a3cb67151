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
    // mysql_reset_connection (COM_RESET_CONNECTION): rolls back an open transaction, drops
    // temporary tables, clears user variables, deallocates prepared statements, releases
    // locks and resets session variables. One round trip, but only when the lease
    // touched the connection.
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
    unsigned port = 3306;
    std::string user;
    // Never appears in an error message, log line or statistic.
    std::string password;
    // Default schema; empty = none.
    std::string database;
    // Connection character set (MYSQL_SET_CHARSET_NAME).
    std::string charset = "utf8mb4";
    tls_options tls;
    // Socket read/write timeouts for queries after the connect (MYSQL_OPT_READ_TIMEOUT /
    // MYSQL_OPT_WRITE_TIMEOUT), rounded up to whole seconds; zero = the library default
    // (no timeout). A statement running longer than read_timeout fails with error 2013 and
    // the connection is discarded, so keep it above your slowest query.
    std::chrono::milliseconds read_timeout{0};
    std::chrono::milliseconds write_timeout{0};
    // Statements run right after each connect (MYSQL_INIT_COMMAND), e.g. "SET time_zone='+00:00'".
    // reset_policy::reset_connection resets session variables, so the factory runs them again
    // after each reset.
    std::vector<std::string> init_commands;
};

}  // namespace connpool::mysql

#endif  // CONNPOOL_MYSQL_OPTIONS_HPP
