// connpool::pg: the adapter's own error codes, for failures that are neither the server's
// (those carry a SQLSTATE, see sql_error) nor the pool's (connpool::errc). Named
// statement_errc, not errc, so that unqualified errc inside connpool::pg stays the pool's.
#ifndef CONNPOOL_PG_ERROR_HPP
#define CONNPOOL_PG_ERROR_HPP

#include <connpool/error.hpp>

#include <boost/system/error_code.hpp>

#include <string>

namespace connpool::pg {

enum class statement_errc {
    // factory_options::transaction_pooling is set: the server session behind this connection
    // changes between transactions, and the PgBouncer this adapter is tested with (Debian 12's
    // 1.18) does not carry protocol-level prepared statements across (that came with PgBouncer
    // 1.21's max_prepared_statements). The statement cache stays off.
    prepared_statements_unsupported = 1,
    // factory_options::statement_cache_capacity is 0: the statement cache is off.
    statement_cache_disabled,
};

namespace detail {

class error_category_impl final : public boost::system::error_category {
public:
    // A fixed id keeps comparisons true across shared-library boundaries ("connpgpg").
    constexpr error_category_impl() noexcept : boost::system::error_category(0x636f6e6e70677067ULL) {}

    const char* name() const noexcept override { return "connpool.pg"; }

    std::string message(int ev) const override {
        switch (static_cast<statement_errc>(ev)) {
        case statement_errc::prepared_statements_unsupported:
            return "prepared statements are not supported through a transaction-mode pooler";
        case statement_errc::statement_cache_disabled: return "the statement cache is disabled";
        }
        return "unknown connpool.pg error";
    }
};

}  // namespace detail

inline const boost::system::error_category& category() noexcept {
    static const detail::error_category_impl instance;
    return instance;
}

inline error_code make_error_code(statement_errc e) noexcept { return error_code(static_cast<int>(e), category()); }

}  // namespace connpool::pg

#endif  // CONNPOOL_PG_ERROR_HPP
