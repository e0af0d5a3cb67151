// connpool::pg internals: a cancel request that cannot block past a deadline.
//
// libpq 15's PQcancel opens a blocking connection to the server, sends the request and waits
// for the server to close it, with no timeout: against a frozen server (SIGSTOP, a hung host
// whose kernel still answers) it never returns. libpq 17's PQcancelStart would do this
// non-blockingly, but Debian 12 ships libpq 15. So the request is sent here, from a
// non-blocking socket, and we do not wait for the server to hang up: the drain that follows
// sees whether the cancel worked.
//
// The request needs the backend's process id and secret key. libpq hands them out only inside
// the opaque PGcancel, whose layout has been the same since PostgreSQL 9 (libpq-int.h:
// struct pg_cancel { SockAddr raddr; int be_pid; int be_key; ... }, SockAddr being a
// sockaddr_storage and its length). The leading part is read with that layout and checked
// against what libpq states publicly (the pid against PQbackendPID, the address family and
// length for sanity). If any check fails, or libpq is 18 or newer (longer cancel keys), no
// cancel is sent, and a running query simply makes the reset run out of time and close the
// connection: slower, never blocking.
#ifndef CONNPOOL_PG_DETAIL_CANCEL_HPP
#define CONNPOOL_PG_DETAIL_CANCEL_HPP

#include <connpool/detail/io/fd_wait.hpp>

#include <libpq-fe.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>

namespace connpool::pg::detail {

// Where and with what to send a cancel request for one backend.
struct cancel_target {
    sockaddr_storage address{};
    socklen_t address_length = 0;
    std::uint32_t pid = 0;
    std::uint32_t key = 0;
    bool usable = false;
};

inline cancel_target cancel_target_of(PGconn* conn) {
    cancel_target t;
    if (conn == nullptr || PQlibVersion() >= 180000) return t;
    PGcancel* cancel = PQgetCancel(conn);
    if (cancel == nullptr) return t;
    // The leading fields of libpq's struct pg_cancel (see the top of this file). SockAddr is a
    // struct of its own, so its tail padding comes before be_pid, as here.
    struct sock_addr {
        sockaddr_storage addr;
        socklen_t salen;
    };
    struct leading_fields {
        sock_addr raddr;
        int be_pid;
        int be_key;
    };
    leading_fields f;
    std::memcpy(&f, cancel, sizeof f);
    PQfreeCancel(cancel);
    const int family = f.raddr.addr.ss_family;
    if (f.be_pid != PQbackendPID(conn) || f.be_pid <= 0 || f.raddr.salen == 0 ||
        f.raddr.salen > sizeof(sockaddr_storage) || (family != AF_INET && family != AF_INET6 && family != AF_UNIX))
        return t;
    t.address = f.raddr.addr;
    t.address_length = f.raddr.salen;
    t.pid = static_cast<std::uint32_t>(f.be_pid);
    t.key = static_cast<std::uint32_t>(f.be_key);
    t.usable = true;
    return t;
}

// Sends the 16-byte CancelRequest (length 16, code 80877102, pid, key) before the deadline.
// True when it was handed to the kernel; the server may still ignore it.
inline bool send_cancel(const cancel_target& t, std::chrono::steady_clock::time_point deadline) {
    if (!t.usable) return false;
    const int fd = ::socket(t.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    struct closer {
        int fd;
        ~closer() { ::close(fd); }
    } guard{fd};
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&t.address), t.address_length) != 0) {
        if (errno != EINPROGRESS && errno != EAGAIN) return false;
        if (connpool::detail::io::wait_fd(fd, POLLOUT, deadline) <= 0) return false;
        int error = 0;
        socklen_t length = sizeof error;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0 || error != 0) return false;
    }
    const std::uint32_t packet[4] = {htonl(16), htonl(80877102), htonl(t.pid), htonl(t.key)};
    // 16 bytes into an empty send buffer: one send, or nothing.
    return ::send(fd, packet, sizeof packet, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof packet);
}

}  // namespace connpool::pg::detail

#endif  // CONNPOOL_PG_DETAIL_CANCEL_HPP
