// connpool: labels: a small set of session settings a caller wants its connection to
// carry (search_path=tenant_42, role=reporting, ...), for settings-aware reuse.
//
// The pool remembers each connection's label. An acquire that asks for a label prefers an
// idle connection that already carries it, then a clean one, then one with other settings,
// and has the factory's apply() move the connection from its label to the one asked for.
// An acquire without a label asks for the empty label: a connection with settings is
// moved back to clean before such a caller sees it.
#ifndef CONNPOOL_LABEL_HPP
#define CONNPOOL_LABEL_HPP

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

// Test builds only: the label hash truncated to this many bits, so that tests meet hash
// collisions and can check that a label's identity never rests on its hash.
#ifndef CONNPOOL_LABEL_HASH_BITS
#define CONNPOOL_LABEL_HASH_BITS 64
#endif

namespace connpool {

// A set of session settings (name, value), sorted by name, that a connection carries;
// acquire(label) hands out a connection that already carries it when one is idle.
class label {
public:
    using setting = std::pair<std::string, std::string>;  // name, value

    label() = default;  // clean: the server's defaults

    // Throws std::invalid_argument naming the setting when a name is empty or repeated.
    label(std::initializer_list<setting> settings) {
        for (const auto& s : settings) set(s.first, s.second);
    }

    // Adds a setting. Throws std::invalid_argument when the name is empty or already set.
    label& set(std::string name, std::string value) {
        if (name.empty()) throw std::invalid_argument("label: a setting's name must not be empty");
        auto it = std::lower_bound(settings_.begin(), settings_.end(), name,
                                   [](const setting& s, const std::string& n) { return s.first < n; });
        if (it != settings_.end() && it->first == name)
            throw std::invalid_argument("label: setting \"" + name + "\" given twice");
        settings_.insert(it, setting{std::move(name), std::move(value)});
        hash_ = compute_hash();
        return *this;
    }

    // True for the clean label: no settings, the server's defaults.
    bool empty() const noexcept { return settings_.empty(); }
    const std::vector<setting>& settings() const noexcept { return settings_; }  // sorted by name

    // 0 only for the empty label; equal labels have equal hashes. Different labels may
    // share one: the pool uses it to find candidates and compares labels exactly (==)
    // before it decides that a connection carries a label.
    std::uint64_t hash() const noexcept { return hash_; }

    // The value of the setting called name, or nullptr when the label has none.
    const std::string* find(std::string_view name) const noexcept {
        for (const auto& s : settings_) {
            if (s.first == name) return &s.second;
        }
        return nullptr;
    }

    // Labels are equal when they hold the same settings.
    friend bool operator==(const label& a, const label& b) noexcept {
        return a.hash_ == b.hash_ && a.settings_ == b.settings_;
    }

private:
    // FNV-1a over each name and value, each preceded by its length: a value may contain
    // any byte, so no separator could tell {a=b, c=d} from {a="b<sep>c<sep>d"}.
    std::uint64_t compute_hash() const noexcept {
        std::uint64_t h = 1469598103934665603ull;
        auto byte = [&](unsigned char c) { h = (h ^ c) * 1099511628211ull; };
        auto mix = [&](std::string_view s) {
            for (std::size_t n = s.size(), i = 0; i < sizeof(std::uint64_t); ++i, n >>= 8) byte(static_cast<unsigned char>(n));
            for (unsigned char c : s) byte(c);
        };
        for (const auto& s : settings_) {
            mix(s.first);
            mix(s.second);
        }
        if constexpr (CONNPOOL_LABEL_HASH_BITS < 64) h &= (std::uint64_t{1} << CONNPOOL_LABEL_HASH_BITS) - 1;
        return h == 0 ? 1 : h;
    }

    std::vector<setting> settings_;
    std::uint64_t hash_ = 0;
};

// What apply() must do to move a connection from one label to another: the settings to
// set (new or changed) and the names to reset to the server's default (dropped).
struct label_change {
    // The settings to set (new or changed).
    std::vector<label::setting> set;
    // The names to reset to the server's default (dropped).
    std::vector<std::string> reset;
};

inline label_change changes(const label& from, const label& to) {
    label_change c;
    for (const auto& s : to.settings()) {
        const std::string* old = from.find(s.first);
        if (old == nullptr || *old != s.second) c.set.push_back(s);
    }
    for (const auto& s : from.settings()) {
        if (to.find(s.first) == nullptr) c.reset.push_back(s.first);
    }
    return c;
}

}  // namespace connpool

#endif  // CONNPOOL_LABEL_HPP
