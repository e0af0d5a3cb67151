// connpool: error codes, the error_info a failure carries, and the exception the throwing calls raise.
#ifndef CONNPOOL_ERROR_HPP
#define CONNPOOL_ERROR_HPP

#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <string>
#include <string_view>
#include <type_traits>

namespace connpool {

// Boost.Asio's completion handlers take boost::system::error_code first, so that
// use_awaitable and use_future turn a failure into an exception.
using error_code = boost::system::error_code;

enum class errc {
    // close() or drain() ran, or the pool object is gone.
    pool_closed = 1,
    // No connection became free within acquire_timeout: the pool is exhausted.
    acquire_timeout,
    // The factory failed to open a connection; the message carries its cause.
    connect_failed,
    // Opening a connection took longer than connect_timeout.
    connect_timeout,
    // max_waiters callers were already waiting, so this one failed at once.
    too_many_waiters,
    // The caller cancelled the acquire (per-operation cancellation).
    cancelled,
    // Validation ping failed; the pool discards the connection and tries another.
    ping_failed,
    // Reset on return failed; the pool closes the connection.
    reset_failed,
    // A factory member threw; the message carries what().
    factory_exception,
    // The acquire's tenant holds its quota and is configured to fail rather than wait.
    tenant_quota_exceeded,
};

namespace detail {

class error_category_impl final : public boost::system::error_category {
public:
    // A fixed id keeps error_code comparisons true across shared-library boundaries.
    constexpr error_category_impl() noexcept : boost::system::error_category(0x636f6e6e706f6f6cULL) {}

    const char* name() const noexcept override { return "connpool"; }

    std::string message(int ev) const override { return describe(ev); }

    char const* message(int ev, char*, std::size_t) const noexcept override { return describe(ev); }

    static const char* describe(int ev) noexcept {
        switch (static_cast<errc>(ev)) {
        case errc::pool_closed: return "pool closed";
        case errc::acquire_timeout: return "acquire timed out: pool exhausted";
        case errc::connect_failed: return "connect failed";
        case errc::connect_timeout: return "connect timed out";
        case errc::too_many_waiters: return "too many waiters";
        case errc::cancelled: return "acquire cancelled";
        case errc::ping_failed: return "validation ping failed";
        case errc::reset_failed: return "reset on return failed";
        case errc::factory_exception: return "factory threw an exception";
        case errc::tenant_quota_exceeded: return "tenant quota exceeded";
        }
        return "unknown connpool error";
    }
};

}  // namespace detail

inline const boost::system::error_category& category() noexcept {
    static const detail::error_category_impl instance;
    return instance;
}

inline error_code make_error_code(errc e) noexcept { return error_code(static_cast<int>(e), category()); }

// What a failure carries: a code to branch on and a message for a person.
// The message names the cause and never contains a password.
struct error_info {
    // What to branch on: an errc, or an adapter's own code.
    error_code code;
    // For a person: names the cause; never contains a password.
    std::string message;

    // True when an error is set.
    explicit operator bool() const noexcept { return static_cast<bool>(code); }

    // Empties code and message.
    void clear() noexcept {
        code.clear();
        message.clear();
    }

    // The message, or the code's generic text when nobody wrote one.
    std::string what() const { return message.empty() ? code.message() : message; }
};

// Thrown by the throwing overloads. what() is the full message of the error_info.
class error : public boost::system::system_error {
public:
    // An error carrying info: code() is info.code, what() its full message.
    explicit error(error_info info)
        : boost::system::system_error(info.code, info.what()), info_(std::move(info)) {}

    // The full message (or the code's message when the info has none).
    const char* what() const noexcept override { return message_or_code().c_str(); }

    // The error_info the error was made from.
    const error_info& info() const noexcept { return info_; }

private:
    const std::string& message_or_code() const noexcept {
        return info_.message.empty() ? generic_ : info_.message;
    }

    error_info info_;
    std::string generic_ = info_.code.message();
};

// Replaces every occurrence of secret in text by "********". Adapters run their
// driver's messages through it, because some drivers echo the connection string.
inline std::string redact(std::string_view text, std::string_view secret) {
    std::string out(text);
    if (secret.empty()) return out;
    for (std::size_t pos = out.find(secret); pos != std::string::npos; pos = out.find(secret, pos + 8)) {
        out.replace(pos, secret.size(), "********");
    }
    return out;
}

}  // namespace connpool

namespace boost::system {
template <>
struct is_error_code_enum<connpool::errc> : std::true_type {};
}  // namespace boost::system

#endif  // CONNPOOL_ERROR_HPP
