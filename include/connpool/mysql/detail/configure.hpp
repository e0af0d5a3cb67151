// connpool::mysql internals: how connect_options become settings on a fresh MYSQL handle,
// and how a failed connect becomes an error_info. No I/O here.
#ifndef CONNPOOL_MYSQL_DETAIL_CONFIGURE_HPP
#define CONNPOOL_MYSQL_DETAIL_CONFIGURE_HPP

#include <connpool/error.hpp>
#include <connpool/mysql/detail/library.hpp>
#include <connpool/mysql/error.hpp>
#include <connpool/mysql/options.hpp>

#include <mysql.h>

#include <chrono>
#include <string>

namespace connpool::mysql::detail {

// The flag type mysql_options() takes for boolean options.
#if CONNPOOL_MYSQL_MARIADB || (defined(MYSQL_VERSION_ID) && MYSQL_VERSION_ID < 80000)
using flag_type = my_bool;
#else
using flag_type = bool;
#endif

// Whole seconds, rounded up, at least 1: the unit of the library's timeout options.
inline unsigned whole_seconds(std::chrono::milliseconds ms) {
    const auto s = (ms.count() + 999) / 1000;
    return static_cast<unsigned>(s < 1 ? 1 : s);
}

inline const char* c_str_or_null(const std::string& s) { return s.empty() ? nullptr : s.c_str(); }

// "127.0.0.1:3306" or "/run/mysqld/mysqld.sock", for messages.
inline std::string target(const connect_options& o) {
    if (!o.unix_socket.empty()) return o.unix_socket;
    return o.host + ":" + std::to_string(o.port);
}

// Applies every connect option to a fresh handle. False (err filled) when the library
// rejects one.
inline bool configure(MYSQL* h, const connect_options& o, std::chrono::milliseconds connect_timeout,
                      error_info& err) {
    bool ok = true;
    auto set = [&](mysql_option opt, const void* value) {
        if (ok && mysql_options(h, opt, value) != 0) ok = false;
    };

    if (connect_timeout.count() > 0) {
        // Covers the TCP connect and each read of the handshake.
        const unsigned s = whole_seconds(connect_timeout);
        set(MYSQL_OPT_CONNECT_TIMEOUT, &s);
    }
    // Read/write timeouts are fixed into the socket at connect time; they bound queries.
    if (o.read_timeout.count() > 0) {
        const unsigned s = whole_seconds(o.read_timeout);
        set(MYSQL_OPT_READ_TIMEOUT, &s);
    }
    if (o.write_timeout.count() > 0) {
        const unsigned s = whole_seconds(o.write_timeout);
        set(MYSQL_OPT_WRITE_TIMEOUT, &s);
    }

    // Auto-reconnect stays OFF. A silent reconnect opens a brand-new session under the
    // caller's feet: its open transaction is rolled back, temporary tables, user variables,
    // prepared statements and locks vanish, and the next statement runs outside the
    // transaction the caller believes it is in. A lost connection must surface as an error
    // (and be discarded by the pool), never be papered over.
    const flag_type no_reconnect = 0;
    set(MYSQL_OPT_RECONNECT, &no_reconnect);

    if (!o.charset.empty()) set(MYSQL_SET_CHARSET_NAME, o.charset.c_str());
    const unsigned protocol = o.unix_socket.empty() ? MYSQL_PROTOCOL_TCP : MYSQL_PROTOCOL_SOCKET;
    set(MYSQL_OPT_PROTOCOL, &protocol);
    for (const auto& cmd : o.init_commands) set(MYSQL_INIT_COMMAND, cmd.c_str());

    if (o.tls.enabled()) {
        if (!o.tls.key.empty()) set(MYSQL_OPT_SSL_KEY, o.tls.key.c_str());
        if (!o.tls.cert.empty()) set(MYSQL_OPT_SSL_CERT, o.tls.cert.c_str());
        if (!o.tls.ca.empty()) set(MYSQL_OPT_SSL_CA, o.tls.ca.c_str());
        if (!o.tls.capath.empty()) set(MYSQL_OPT_SSL_CAPATH, o.tls.capath.c_str());
        if (!o.tls.cipher.empty()) set(MYSQL_OPT_SSL_CIPHER, o.tls.cipher.c_str());
#if CONNPOOL_MYSQL_MARIADB || !defined(MYSQL_VERSION_ID) || MYSQL_VERSION_ID < 80000
        // Connector/C: ENFORCE turns TLS on and refuses a server without it; without
        // require, mysql_ssl_set's flag turns TLS on whenever any TLS file is given.
        if (ok) mysql_ssl_set(h, c_str_or_null(o.tls.key), c_str_or_null(o.tls.cert), c_str_or_null(o.tls.ca),
                              c_str_or_null(o.tls.capath), c_str_or_null(o.tls.cipher));
        const flag_type enforce = (o.tls.require || o.tls.verify_server_cert) ? 1 : 0;
        if (enforce) set(MYSQL_OPT_SSL_ENFORCE, &enforce);
        const flag_type verify = o.tls.verify_server_cert ? 1 : 0;
        set(MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
#else
        // libmysqlclient 8: one mode option replaces ENFORCE and VERIFY_SERVER_CERT.
        const unsigned mode = o.tls.verify_server_cert ? SSL_MODE_VERIFY_IDENTITY
                              : o.tls.require         ? SSL_MODE_REQUIRED
                                                      : SSL_MODE_PREFERRED;
        set(MYSQL_OPT_SSL_MODE, &mode);
#endif
    }

#if CONNPOOL_MYSQL_NONBLOCKING
    // Gives every handle the context that the *_start/*_cont calls need (async_connect, and
    // ping() on a blocking-connected handle too); blocking calls are unaffected.
    set(MYSQL_OPT_NONBLOCK, nullptr);
#endif

    if (!ok) {
        err.code = make_error_code(errc::connect_failed);
        err.message = detail::describe("connect failed: invalid option", mysql_errno(h), mysql_error(h), o.password);
    }
    return ok;
}

// The error of a failed connect on handle h: errc::connect_timeout when the time ran out,
// errc::connect_failed otherwise; the message carries the server's number and text.
inline error_info connect_error(MYSQL* h, const connect_options& o, bool timed_out) {
    error_info e;
    const unsigned n = mysql_errno(h);
    e.code = make_error_code(timed_out ? errc::connect_timeout : errc::connect_failed);
    e.message = describe(timed_out ? "connect timed out" : "connect failed", n == 0 ? 2000u : n, mysql_error(h),
                         o.password);
    return e;
}

inline bool network_level(unsigned n) { return n == 2002 || n == 2003 || n == 2013 || n == 2006; }

inline unsigned long client_flags() {
    // Multi-results so that CALL of a procedure works; multi-statements stay off (they turn
    // an SQL injection into arbitrary statements).
    return CLIENT_MULTI_RESULTS;
}

}  // namespace connpool::mysql::detail

#endif  // CONNPOOL_MYSQL_DETAIL_CONFIGURE_HPP
