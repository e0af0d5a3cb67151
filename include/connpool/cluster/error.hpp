// connpool: the errors a cluster adds to the pool's (no primary, no host for a read).
#ifndef CONNPOOL_CLUSTER_ERROR_HPP
#define CONNPOOL_CLUSTER_ERROR_HPP

#include <connpool/error.hpp>

#include <type_traits>

namespace connpool {

// Failures of routing itself. A host that was chosen and then failed reports the pool's own
// code (connect_failed, acquire_timeout, ...) with the host named in the message.
enum class cluster_errc {
    // A write found no primary: every host is a standby, down, or not probed yet, or two
    // hosts claim to be primary. Writes fail at once with this; they never wait for a
    // promotion.
    no_primary = 1,
    // A read found neither a usable standby nor a primary.
    no_host,
    // The cluster was closed.
    cluster_closed,
};

namespace detail {

class cluster_category_impl final : public boost::system::error_category {
public:
    // A fixed id keeps comparisons true across shared-library boundaries ("cpclustr").
    constexpr cluster_category_impl() noexcept : boost::system::error_category(0x6370636c75737472ULL) {}

    const char* name() const noexcept override { return "connpool.cluster"; }
    std::string message(int ev) const override { return describe(ev); }
    char const* message(int ev, char*, std::size_t) const noexcept override { return describe(ev); }

    static const char* describe(int ev) noexcept {
        switch (static_cast<cluster_errc>(ev)) {
        case cluster_errc::no_primary: return "no primary";
        case cluster_errc::no_host: return "no host can serve the read";
        case cluster_errc::cluster_closed: return "cluster closed";
        }
        return "unknown connpool.cluster error";
    }
};

}  // namespace detail

inline const boost::system::error_category& cluster_category() noexcept {
    static const detail::cluster_category_impl instance;
    return instance;
}

inline error_code make_error_code(cluster_errc e) noexcept {
    return error_code(static_cast<int>(e), cluster_category());
}

}  // namespace connpool

namespace boost::system {
template <>
struct is_error_code_enum<connpool::cluster_errc> : std::true_type {};
}  // namespace boost::system

#endif  // CONNPOOL_CLUSTER_ERROR_HPP
