// connpool::mysql internals: drive one non-blocking Connector/C call to its end on the
// calling thread with poll(), under a deadline of our own (millisecond precision, where the
// library's socket timeouts are whole seconds and fixed at connect time).
#ifndef CONNPOOL_MYSQL_DETAIL_WAIT_HPP
#define CONNPOOL_MYSQL_DETAIL_WAIT_HPP

#include <connpool/mysql/detail/library.hpp>

#include <mysql.h>

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

namespace connpool::mysql::detail {

#if CONNPOOL_MYSQL_NONBLOCKING

// Waits for what the library asked for (status: MYSQL_WAIT_* bits) and returns the bits that
// happened, for the *_cont call; or -1 once the deadline has passed (the call is then left
// half done, and the connection must be closed).
inline int wait_for_status(MYSQL* handle, int status, std::chrono::steady_clock::time_point deadline) {
    using namespace std::chrono;
    pollfd pfd{};
    pfd.fd = static_cast<int>(mysql_get_socket(handle));
    if (status & MYSQL_WAIT_READ) pfd.events |= POLLIN;
    if (status & MYSQL_WAIT_WRITE) pfd.events |= POLLOUT;
    if (status & MYSQL_WAIT_EXCEPT) pfd.events |= POLLPRI;
    const auto library_deadline =
        (status & MYSQL_WAIT_TIMEOUT) ? steady_clock::now() + milliseconds(mysql_get_timeout_value_ms(handle))
                                      : steady_clock::time_point::max();
    for (;;) {
        const auto now = steady_clock::now();
        if (now >= deadline) return -1;
        if (now >= library_deadline) return MYSQL_WAIT_TIMEOUT;
        const auto until = std::min(deadline, library_deadline);
        // Round up so that we never spin on a sub-millisecond remainder.
        const auto ms = duration_cast<milliseconds>(until - now + microseconds(999)).count();
        const int n = ::poll(&pfd, 1, static_cast<int>(std::min<long long>(ms, 60'000)));
        if (n < 0) {
            if (errno == EINTR) continue;
            // poll itself failed: let the library find out on the socket.
            return status & (MYSQL_WAIT_READ | MYSQL_WAIT_WRITE);
        }
        if (n == 0) continue;
        int ready = 0;
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) ready |= MYSQL_WAIT_READ;
        if (pfd.revents & (POLLOUT | POLLHUP | POLLERR)) ready |= MYSQL_WAIT_WRITE;
        if (pfd.revents & POLLPRI) ready |= MYSQL_WAIT_EXCEPT;
        // Report only what was asked for; an error or hang-up wakes every waiter, and the
        // library then sees the failure on its next socket call.
        ready &= status;
        return ready != 0 ? ready : (status & ~MYSQL_WAIT_TIMEOUT);
    }
}

#endif

}  // namespace connpool::mysql::detail

#endif  // CONNPOOL_MYSQL_DETAIL_WAIT_HPP
