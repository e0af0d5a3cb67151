// connpool::mysql internals: the session state a statement may leave behind that the server
// does not flag with SERVER_SESSION_STATE_CHANGED. Pure text checks, no I/O.
#ifndef CONNPOOL_MYSQL_DETAIL_DIRT_HPP
#define CONNPOOL_MYSQL_DETAIL_DIRT_HPP

#include <cctype>
#include <string_view>

namespace connpool::mysql::detail {

// True when sql may leave session state that the state-change tracker does not report.
// Measured on MariaDB 10.11 with session_track_state_change=ON: SET (session and user
// variables), temporary tables, PREPARE and USE are flagged; LOCK TABLES, GET_LOCK() and a
// variable assigned inside a SELECT (SELECT @v := 1, SELECT ... INTO @v) are not, and what a
// procedure does is not reported for CALL. So any word containing LOCK (LOCK TABLES,
// GET_LOCK, BACKUP LOCK, FLUSH ... WITH READ LOCK), CALL, HANDLER, XA, ":=", and INTO together
// with an '@' count as dirt.
//
// The word ROLE counts as dirt too, and is noted apart: COM_RESET_CONNECTION keeps the
// current role (measured on MariaDB 10.11), so the full reset then also sends SET ROLE NONE.
//
// Errs towards "dirty": a literal or a column named "blocked" costs one needless reset, never
// a leak. Comments and string literals are not skipped for the same reason.
inline bool ascii_iequal(std::string_view a, std::string_view upper) noexcept {
    if (a.size() != upper.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (std::toupper(static_cast<unsigned char>(a[i])) != upper[i]) return false;
    }
    return true;
}

inline bool ascii_icontains(std::string_view haystack, std::string_view upper) noexcept {
    for (std::size_t i = 0; i + upper.size() <= haystack.size(); ++i) {
        if (ascii_iequal(haystack.substr(i, upper.size()), upper)) return true;
    }
    return false;
}

struct untracked {
    bool state = false;  // untracked state, or a role: the return needs a full reset
    bool role = false;   // the full reset must also send SET ROLE NONE
};

// Runs on every helper statement, so it allocates nothing and reads the text once.
inline untracked untracked_state(std::string_view sql) noexcept {
    untracked out;
    bool into = false;
    bool at = false;
    std::size_t word_start = std::string_view::npos;
    auto word = [&](std::string_view w) {
        if (ascii_icontains(w, "LOCK")) out.state = true;
        if (ascii_iequal(w, "CALL") || ascii_iequal(w, "HANDLER") || ascii_iequal(w, "XA")) out.state = true;
        if (ascii_iequal(w, "ROLE")) out.state = out.role = true;
        if (ascii_iequal(w, "INTO")) into = true;
    };
    for (std::size_t i = 0; i <= sql.size(); ++i) {
        const unsigned char ch = i < sql.size() ? static_cast<unsigned char>(sql[i]) : ' ';
        if (std::isalnum(ch) || ch == '_' || ch == '$') {
            if (word_start == std::string_view::npos) word_start = i;
            continue;
        }
        if (word_start != std::string_view::npos) {
            word(sql.substr(word_start, i - word_start));
            word_start = std::string_view::npos;
        }
        if (ch == '@') at = true;
        if (ch == ':' && i + 1 < sql.size() && sql[i + 1] == '=') out.state = true;
    }
    if (into && at) out.state = true;
    return out;
}

inline bool leaves_untracked_state(std::string_view sql) noexcept { return untracked_state(sql).state; }

}  // namespace connpool::mysql::detail

#endif  // CONNPOOL_MYSQL_DETAIL_DIRT_HPP
