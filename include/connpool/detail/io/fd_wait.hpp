// connpool internals shared by the adapters: wait for a socket with poll(2) under a deadline
// of our own (the client libraries' own timeouts count whole seconds, or do not exist).
#ifndef CONNPOOL_DETAIL_IO_FD_WAIT_HPP
#define CONNPOOL_DETAIL_IO_FD_WAIT_HPP

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

namespace connpool::detail::io {

// Waits until fd has one of `events` (POLLIN, POLLOUT, POLLPRI) or the deadline passes.
// Returns the revents seen (never 0: POLLERR/POLLHUP count as ready, so the caller's next
// socket call sees the failure), 0 when the deadline passed first, -1 when poll() failed.
// A deadline of time_point::max() waits forever, in slices that keep poll's int in range.
inline int wait_fd(int fd, short events, std::chrono::steady_clock::time_point deadline) {
    using namespace std::chrono;
    for (;;) {
        const auto now = steady_clock::now();
        if (now >= deadline) return 0;
        // Round up, so that a sub-millisecond remainder never becomes a busy 0 ms poll.
        const auto left = ceil<milliseconds>(deadline - now).count();
        pollfd p{};
        p.fd = fd;
        p.events = events;
        const int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 60'000)));
        if (n > 0) return p.revents != 0 ? p.revents : events;
        if (n < 0 && errno != EINTR) return -1;
    }
}

}  // namespace connpool::detail::io

#endif  // CONNPOOL_DETAIL_IO_FD_WAIT_HPP
