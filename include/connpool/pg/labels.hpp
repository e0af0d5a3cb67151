// connpool::pg: labels (connpool/label.hpp) as PostgreSQL session settings, for the
// factory's apply(). One round trip moves a connection from one label to another, and
// only the settings that differ are sent.
//
// Setting names: "search_path" (a comma-separated list of schemas, each quoted as an
// identifier), "role" (SET ROLE / RESET ROLE), "TimeZone" (also "time_zone"), and any other
// name as a run-time parameter (SET "name" TO 'value'). Every identifier goes through
// PQescapeIdentifier and every value through PQescapeLiteral, so a label's text can never
// end the statement it is in.
#ifndef CONNPOOL_PG_LABELS_HPP
#define CONNPOOL_PG_LABELS_HPP

#include <connpool/error.hpp>
#include <connpool/label.hpp>
#include <connpool/pg/connection.hpp>
#include <connpool/pg/detail/round_trip.hpp>

#include <libpq-fe.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace connpool::pg {

namespace detail {

// PQescapeIdentifier / PQescapeLiteral with the memory freed; nullopt when libpq refuses
// (an invalid multibyte sequence, say).
inline std::optional<std::string> quoted(PGconn* n, std::string_view s, bool identifier) {
    char* q = identifier ? PQescapeIdentifier(n, s.data(), s.size()) : PQescapeLiteral(n, s.data(), s.size());
    if (q == nullptr) return std::nullopt;
    std::string out(q);
    PQfreemem(q);
    return out;
}

inline bool is_timezone(std::string_view name) noexcept {
    return name == "TimeZone" || name == "timezone" || name == "time_zone";
}

// The statement that sets one setting (value engaged) or resets it; nullopt on bad input.
inline std::optional<std::string> setting_sql(PGconn* n, const std::string& name, const std::string* value) {
    if (name == "role") {
        if (value == nullptr) return std::string("RESET ROLE");
        auto r = quoted(n, *value, true);
        if (!r) return std::nullopt;
        return "SET ROLE " + *r;
    }
    if (name == "search_path" && value != nullptr) {
        std::string list;
        std::string_view rest = *value;
        while (!rest.empty()) {
            const auto comma = rest.find(',');
            std::string_view item = rest.substr(0, comma);
            while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
            while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
            if (!item.empty()) {
                auto q = quoted(n, item, true);
                if (!q) return std::nullopt;
                list += (list.empty() ? "" : ", ") + *q;
            }
            rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
        }
        if (list.empty()) return std::nullopt;
        return "SET search_path TO " + list;
    }
    auto ident = quoted(n, is_timezone(name) ? std::string_view("TimeZone") : std::string_view(name), true);
    if (!ident) return std::nullopt;
    if (value == nullptr) return "RESET " + *ident;
    auto lit = quoted(n, *value, false);
    if (!lit) return std::nullopt;
    return "SET " + *ident + " TO " + *lit;
}

}  // namespace detail

// Moves c's session from `from` to `to` in one round trip (nothing to send: none). false:
// err says why: the setting a value could not be quoted for (by name, never its value), or
// the server's error, which may quote the value it refused; the pool then closes the
// connection, as its settings are unknown.
inline bool apply_label(connection& c, const label& from, const label& to, error_info& err,
                        std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    PGconn* n = c.native_handle();
    auto fail = [&](std::string why) {
        err.code = make_error_code(errc::reset_failed);
        err.message = "apply label failed: " + why;
        return false;
    };
    if (n == nullptr || c.is_broken()) return fail("connection is broken");
    const label_change change = changes(from, to);
    std::string sql;
    for (const auto& name : change.reset) {
        auto s = detail::setting_sql(n, name, nullptr);
        if (!s) return fail("cannot quote setting " + name);
        sql += *s + ";";
    }
    for (const auto& [name, value] : change.set) {
        auto s = detail::setting_sql(n, name, &value);
        if (!s) return fail("cannot quote setting " + name);
        sql += *s + ";";
    }
    if (sql.empty()) return true;
    auto out = detail::round_trip(c, sql.c_str(), detail::clock::now() + timeout);
    if (out.ok) return true;
    return fail(out.error);
}

}  // namespace connpool::pg

#endif  // CONNPOOL_PG_LABELS_HPP
