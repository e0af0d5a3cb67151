// connpool::mysql: labels (connpool/label.hpp) as MySQL/MariaDB session settings, for the
// factory's apply(). Only the settings that differ are sent, in at most three round trips
// (multi-statements stay off): the default schema, the role, then one SET for every
// session variable.
//
// Setting names: "database" (also "schema"; mysql_select_db), "role" (SET ROLE / SET ROLE
// NONE), "time_zone" (also "TimeZone", the PostgreSQL spelling, so one label can serve
// both), and any other name as a session variable (SET SESSION `name` = value; dropped:
// = DEFAULT, the global value). Names are quoted as identifiers (backticks doubled); a
// value is sent as a number when it is one (integer variables refuse strings) and
// otherwise as a string literal through mysql_real_escape_string, so a label's text can
// never end the statement it is in.
#ifndef CONNPOOL_MYSQL_LABELS_HPP
#define CONNPOOL_MYSQL_LABELS_HPP

#include <connpool/label.hpp>

#include <mysql.h>

#include <optional>
#include <string>
#include <string_view>

namespace connpool::mysql::detail {

inline bool is_schema_setting(std::string_view name) noexcept { return name == "database" || name == "schema"; }

inline std::string_view variable_name(std::string_view name) noexcept {
    return name == "TimeZone" || name == "timezone" ? std::string_view("time_zone") : name;
}

// `name`, or nullopt for a name the protocol cannot carry (a NUL byte).
inline std::optional<std::string> quoted_identifier(std::string_view name) {
    if (name.empty() || name.find('\0') != std::string_view::npos) return std::nullopt;
    std::string out = "`";
    for (char ch : name) {
        if (ch == '`') out += '`';
        out += ch;
    }
    return out + "`";
}

// -?digits[.digits]: sent bare, since a string is refused by integer variables (1232).
inline bool is_number(std::string_view v) noexcept {
    if (!v.empty() && v.front() == '-') v.remove_prefix(1);
    bool digits = false, dot = false;
    for (char ch : v) {
        if (ch >= '0' && ch <= '9') {
            digits = true;
        } else if (ch == '.' && digits && !dot) {
            dot = true;
            digits = false;
        } else {
            return false;
        }
    }
    return digits;
}

inline std::string value_sql(MYSQL* h, std::string_view v) {
    if (is_number(v)) return std::string(v);
    std::string out(v.size() * 2 + 1, '\0');
    out.resize(mysql_real_escape_string(h, out.data(), v.data(), static_cast<unsigned long>(v.size())));
    return "'" + out + "'";
}

// What apply() sends to move a session between two labels. A field left empty sends nothing.
struct label_statements {
    std::optional<std::string> schema;  // mysql_select_db's argument
    std::string role;                   // SET ROLE ...
    std::string variables;              // SET SESSION a = 1, SESSION b = DEFAULT
    std::string bad_setting;            // non-empty: that setting's name cannot be sent
};

// configured_schema: connect_options::database, where a dropped "database" setting goes
// back to. There is no way back to "no schema" short of a new session, so dropping it with
// none configured is refused (bad_setting), and the pool closes the connection.
inline label_statements statements_for(MYSQL* h, const label& from, const label& to,
                                       const std::string& configured_schema) {
    label_statements out;
    const label_change change = changes(from, to);
    auto add_variable = [&](const std::string& name, const std::string* value) {
        auto ident = quoted_identifier(variable_name(name));
        if (!ident) return false;
        out.variables += (out.variables.empty() ? "SET SESSION " : ", SESSION ") + *ident + " = " +
                         (value == nullptr ? std::string("DEFAULT") : value_sql(h, *value));
        return true;
    };
    auto one = [&](const std::string& name, const std::string* value) {
        if (is_schema_setting(name)) {
            if (value == nullptr && configured_schema.empty()) return false;
            out.schema = value == nullptr ? configured_schema : *value;
            return out.schema->find('\0') == std::string::npos;
        }
        if (name == "role") {
            if (value == nullptr) {
                out.role = "SET ROLE NONE";
                return true;
            }
            auto ident = quoted_identifier(*value);
            if (!ident) return false;
            out.role = "SET ROLE " + *ident;
            return true;
        }
        return add_variable(name, value);
    };
    for (const auto& name : change.reset) {
        if (!one(name, nullptr)) {
            out.bad_setting = name;
            return out;
        }
    }
    for (const auto& [name, value] : change.set) {
        if (!one(name, &value)) {
            out.bad_setting = name;
            return out;
        }
    }
    return out;
}

}  // namespace connpool::mysql::detail

#endif  // CONNPOOL_MYSQL_LABELS_HPP
