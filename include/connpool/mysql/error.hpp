// connpool::mysql: how MySQL/MariaDB error numbers become connpool errors, and which of
// them mean that the connection itself is gone (so the pool must not reuse it).
#ifndef CONNPOOL_MYSQL_ERROR_HPP
#define CONNPOOL_MYSQL_ERROR_HPP

#include <connpool/error.hpp>

#include <mysql.h>

#include <string>
#include <string_view>

namespace connpool::mysql {

namespace detail {

// Values are the server's and the client library's own error numbers (ER_* 1000..,
// CR_* 2000..), so error_code::value() is what `mysql_errno()` returned.
class error_category_impl final : public boost::system::error_category {
public:
    // A fixed id keeps comparisons true across shared-library boundaries.
    constexpr error_category_impl() noexcept : boost::system::error_category(0x636f6e6e6d797371ULL) {}
    const char* name() const noexcept override { return "connpool.mysql"; }
    std::string message(int ev) const override { return "MySQL error " + std::to_string(ev); }
};

}  // namespace detail

// The category of errors whose value is a MySQL error number (mysql_errno()).
inline const boost::system::error_category& category() noexcept {
    static const detail::error_category_impl instance;
    return instance;
}

inline error_code make_error_code(unsigned mysql_errno_value) noexcept {
    return error_code(static_cast<int>(mysql_errno_value), category());
}

// True when the error number says the session is gone or its protocol state is unknown.
// Such a connection must be closed, never handed to another caller. Numbers are spelled
// out because Oracle's headers lack the MariaDB-only names (and the reverse).
inline bool is_connection_error(unsigned n) noexcept {
    switch (n) {
    case 2002:  // CR_CONNECTION_ERROR: cannot reach the server (socket)
    case 2003:  // CR_CONN_HOST_ERROR: cannot reach the server (TCP)
    case 2006:  // CR_SERVER_GONE_ERROR: the server closed the connection between commands
    case 2013:  // CR_SERVER_LOST: the connection broke during a command
    case 2014:  // CR_COMMANDS_OUT_OF_SYNC: unread results; the protocol state is unusable
    case 2020:  // CR_NET_PACKET_TOO_LARGE: the stream is cut mid-packet
    case 2026:  // CR_SSL_CONNECTION_ERROR: TLS layer failed
    case 2027:  // CR_MALFORMED_PACKET: the stream is out of step
    case 2048:  // CR_INVALID_CONN_HANDLE
    case 2055:  // CR_SERVER_LOST_EXTENDED
    case 5013:  // CR_ERR_NET_READ (Connector/C)
    case 5014:  // CR_ERR_NET_WRITE (Connector/C)
    case 1040:  // ER_CON_COUNT_ERROR: too many connections
    case 1053:  // ER_SERVER_SHUTDOWN: the server is going down
    case 1152:  // ER_ABORTING_CONNECTION
    case 1153:  // ER_NET_PACKET_TOO_LARGE: the server drops the connection after it
    case 1156:  // ER_NET_PACKETS_OUT_OF_ORDER
    case 1157:  // ER_NET_UNCOMPRESS_ERROR
    case 1158:  // ER_NET_READ_ERROR
    case 1159:  // ER_NET_READ_INTERRUPTED: net_read_timeout on the server
    case 1160:  // ER_NET_ERROR_ON_WRITE
    case 1161:  // ER_NET_WRITE_INTERRUPTED
    case 1927:  // ER_CONNECTION_KILLED (MariaDB): KILL <id> on this session
    case 4031:  // ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8): wait_timeout closed the session
        return true;
    default:
        return false;
    }
}

namespace detail {

// "<what>: [<errno>] <server message>", with the password (if any) blanked out. Some
// drivers and proxies echo connect parameters; the redaction holds even then.
inline std::string describe(std::string_view what, unsigned n, std::string_view text,
                            std::string_view password) {
    std::string out(what);
    out += ": [";
    out += std::to_string(n);
    out += "] ";
    out += text;
    return connpool::redact(out, password);
}

}  // namespace detail
}  // namespace connpool::mysql

#endif  // CONNPOOL_MYSQL_ERROR_HPP
