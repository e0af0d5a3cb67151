// connpool::mysql internals: drive one non-blocking Connector/C call to its end on the
// calling thread with poll(), under a deadline of our own (millisecond precision, where the
// library's socket timeouts are whole seconds and fixed at connect time).
#ifndef CONNPOOL_MYSQL_DETAIL_WAIT_HPP
#define CONNPOOL_MYSQL_DETAIL_WAIT_HPP

#include <connpool/detail/io/fd_wait.hpp>
#include <connpool/mysql/detail/library.hpp>

#include <mysql.h>

#include <poll.h>

#include <algorithm>
#include <chrono>

namespace connpool::mysql::detail {

#if CONNPOOL_MYSQL_NONBLOCKING

// Waits for what the library asked for (status: MYSQL_WAIT_* bits) and returns the bits that
// happened, for the *_cont call; or -1 once the deadline has passed (the call is then left
// half done, and the connection must be closed).
inline int wait_for_status(MYSQL* handle, int status, std::chrono::steady_clock::time_point deadline) {
    using namespace std::chrono;
    const int fd = static_cast<int>(mysql_get_socket(handle));
    short events = 0;
    if (status & MYSQL_WAIT_READ) events |= POLLIN;
    if (status & MYSQL_WAIT_WRITE) events |= POLLOUT;
    if (status & MYSQL_WAIT_EXCEPT) events |= POLLPRI;
    const auto library_deadline =
        (status & MYSQL_WAIT_TIMEOUT) ? steady_clock::now() + milliseconds(mysql_get_timeout_value_ms(handle))
                                      : steady_clock::time_point::max();
    const int revents = connpool::detail::io::wait_fd(fd, events, std::min(deadline, library_deadline));
    if (revents == 0) return steady_clock::now() >= deadline ? -1 : MYSQL_WAIT_TIMEOUT;
    // poll itself failed: let the library find out on the socket.
    if (revents < 0) return status & (MYSQL_WAIT_READ | MYSQL_WAIT_WRITE);
    int ready = 0;
    if (revents & (POLLIN | POLLHUP | POLLERR)) ready |= MYSQL_WAIT_READ;
    if (revents & (POLLOUT | POLLHUP | POLLERR)) ready |= MYSQL_WAIT_WRITE;
    if (revents & POLLPRI) ready |= MYSQL_WAIT_EXCEPT;
    // Report only what was asked for; an error or hang-up wakes every waiter, and the
    // library then sees the failure on its next socket call.
    ready &= status;
    return ready != 0 ? ready : (status & ~MYSQL_WAIT_TIMEOUT);
}

#endif

}  // namespace connpool::mysql::detail

#endif  // CONNPOOL_MYSQL_DETAIL_WAIT_HPP
