// connpool: an optional adaptive max_size, off unless you create one. Each window it
// reads the advisor's advice and says whether to call pool::set_max_size():
//
// - Overload (connect failures in the window: the server refuses or cannot keep up) cuts
//   the size multiplicatively, as AIMD congestion control does, and holds it there for a
//   few windows so that the server can recover before demand pushes it up again.
// - Otherwise it grows toward the recommendation, by at most max_step per window.
// - It shrinks only when the recommendation stays below the size by more than the dead
//   band for `settle` windows in a row, and then only by half the gap.
//
// Why it never oscillates: growth stops at the recommendation, and a shrink needs the
// recommendation below size x (1 - band), so a signal that wobbles inside the band moves
// nothing; and after a cut, growth waits `cooldown` windows.
#ifndef CONNPOOL_SIZING_ADAPTIVE_HPP
#define CONNPOOL_SIZING_ADAPTIVE_HPP

#include <connpool/advisor.hpp>

#include <algorithm>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>

namespace connpool::sizing {

// The bounds and the pace of adaptive_size.
struct adaptive_options {
    std::size_t floor = 1;       // at least min_idle
    std::size_t ceiling = 100;   // also capped by the advice's budget_per_instance, when known
    std::size_t max_step = 4;    // growth per window, at most
    double decrease = 0.7;       // the multiplicative cut on overload
    double band = 0.2;           // dead band below the size, as a fraction of it
    unsigned settle = 3;         // windows below the band before a shrink
    unsigned cooldown = 3;       // windows without growth after a cut
};

// Turns the advisor's recommendations into max_size changes, one window at a time, without
// oscillating: it grows toward the advice by at most max_step per window, cuts by decrease
// on overload (connect failures), and shrinks only after settle windows below the band.
class adaptive_size {
public:
    // Checks first: std::clamp with ceiling < floor is undefined.
    adaptive_size(const adaptive_options& o, std::size_t start) : o_(o) {
        if (o.floor == 0) throw std::invalid_argument("adaptive_options::floor = 0: must be at least 1");
        if (o.ceiling < o.floor)
            throw std::invalid_argument("adaptive_options::ceiling = " + std::to_string(o.ceiling) + ": must be at least floor");
        if (!(o.decrease > 0 && o.decrease < 1))
            throw std::invalid_argument("adaptive_options::decrease = " + std::to_string(o.decrease) + ": must be in (0, 1)");
        size_ = std::clamp(start, o.floor, o.ceiling);
    }

    // The size it last decided.
    std::size_t size() const noexcept { return size_; }

    // One window's advice and the pool's max_size now; the new size when it should change.
    std::optional<std::size_t> step(const advice& a, std::size_t current) {
        size_ = current;
        const std::size_t ceiling = a.budget_per_instance != 0 ? std::max(o_.floor, std::min(o_.ceiling, a.budget_per_instance))
                                                               : o_.ceiling;
        std::size_t next = size_;
        if (a.connect_failures > 0) {
            next = std::max(o_.floor, static_cast<std::size_t>(static_cast<double>(size_) * o_.decrease));
            cool_ = o_.cooldown;
            below_ = 0;
        } else if (cool_ > 0) {
            --cool_;
        } else if (a.measured) {
            const std::size_t want = std::clamp(a.max_size, o_.floor, ceiling);
            if (want > size_) {
                next = std::min(want, size_ + o_.max_step);
                below_ = 0;
            } else if (static_cast<double>(want) < static_cast<double>(size_) * (1.0 - o_.band)) {
                if (++below_ >= o_.settle) {
                    next = size_ - std::max<std::size_t>(1, (size_ - want) / 2);
                    below_ = 0;
                }
            } else {
                below_ = 0;
            }
        }
        next = std::clamp(next, o_.floor, ceiling);
        if (next == size_) return std::nullopt;
        size_ = next;
        return next;
    }

private:
    adaptive_options o_;
    std::size_t size_ = 0;
    unsigned cool_ = 0;
    unsigned below_ = 0;
};

}  // namespace connpool::sizing

#endif  // CONNPOOL_SIZING_ADAPTIVE_HPP
