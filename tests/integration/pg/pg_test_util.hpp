// Shared bits of the PostgreSQL integration tests.
#ifndef CONNPOOL_TESTS_INTEGRATION_PG_TEST_UTIL_HPP
#define CONNPOOL_TESTS_INTEGRATION_PG_TEST_UTIL_HPP

#include "pg/pg_env.hpp"

#include <connpool/pg/connection.hpp>
#include <connpool/pg/factory.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace connpool_test::pg {

using namespace std::chrono_literals;

// A unique application_name, so that a test finds (and kills) only its own backends even when
// CTest runs tests in parallel against the same server.
inline std::string unique_app(const std::string& what) {
    static std::atomic<unsigned> n{0};
    std::random_device rd;
    return "cpt_" + what + "_" + std::to_string(::getpid()) + "_" + std::to_string(n++) + "_" +
           std::to_string(rd() % 100000);
}

// The first column of the first row of sql run on c (throws sql_error on failure).
inline std::string scalar(connpool::pg::connection& c, const std::string& sql) {
    auto r = c.exec(sql);
    if (PQntuples(r.get()) < 1) throw std::runtime_error("no rows from: " + sql);
    return PQgetvalue(r.get(), 0, 0);
}

// factory_options with the given fields (g++ 12's -Wextra warns on designated initializers that
// leave fields out).
inline connpool::pg::factory_options fopts(connpool::pg::reset_policy policy, std::string sql = {},
                                           bool transaction_pooling = false) {
    connpool::pg::factory_options o;
    o.reset = policy;
    o.reset_sql = std::move(sql);
    o.transaction_pooling = transaction_pooling;
    return o;
}

// A TCP listener on 127.0.0.1 that completes handshakes (through the kernel backlog) and never
// reads or answers: a server that hangs.
class silent_listener {
public:
    silent_listener() {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        if (fd_ < 0) throw std::runtime_error("socket() failed");
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = 0;
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 64) != 0) {
            ::close(fd_);
            throw std::runtime_error("bind/listen failed");
        }
        socklen_t len = sizeof a;
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
    }
    ~silent_listener() { ::close(fd_); }
    silent_listener(const silent_listener&) = delete;
    silent_listener& operator=(const silent_listener&) = delete;
    unsigned short port() const noexcept { return port_; }

private:
    int fd_ = -1;
    unsigned short port_ = 0;
};

// A fake PostgreSQL server on 127.0.0.1 that accepts the startup packet, authenticates anybody, and
// reports a read-only session (a hot standby, as far as libpq can tell). With
// target_session_attrs=read-write libpq then gives up on it and moves to the next host, on a new
// socket, after PQconnectPoll has already waited on this one: the case where a connect loop that
// does not re-read PQsocket() waits on a dead descriptor.
class read_only_server {
public:
    read_only_server() {
        listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listener_, 16) != 0) {
            throw std::runtime_error("bind/listen failed");
        }
        socklen_t len = sizeof a;
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len);
        port_ = ntohs(a.sin_port);
        thread_ = std::thread([this] { run(); });
    }
    ~read_only_server() {
        stop_ = true;
        thread_.join();
        ::close(listener_);
    }
    read_only_server(const read_only_server&) = delete;
    read_only_server& operator=(const read_only_server&) = delete;
    unsigned short port() const noexcept { return port_; }
    int sessions() const noexcept { return sessions_; }

private:
    static void put32(std::string& out, std::uint32_t v) {
        for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
    }
    static void message(std::string& out, char type, const std::string& body) {
        out.push_back(type);
        put32(out, static_cast<std::uint32_t>(body.size() + 4));
        out += body;
    }
    static std::string parameter(const std::string& name, const std::string& value) {
        return name + '\0' + value + '\0';
    }

    void run() {
        while (!stop_) {
            pollfd p{listener_, POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            int c = ::accept(listener_, nullptr, nullptr);
            if (c < 0) continue;
            ++sessions_;
            serve(c);
            ::close(c);
        }
    }

    void serve(int c) {
        // The startup packet: a 4-byte length, then the rest; its content does not matter here.
        unsigned char len_bytes[4];
        if (!read_all(c, len_bytes, 4)) return;
        const std::uint32_t len = (std::uint32_t(len_bytes[0]) << 24) | (std::uint32_t(len_bytes[1]) << 16) |
                                  (std::uint32_t(len_bytes[2]) << 8) | std::uint32_t(len_bytes[3]);
        if (len < 8 || len > 10000) return;
        std::vector<unsigned char> rest(len - 4);
        if (!read_all(c, rest.data(), rest.size())) return;
        std::string out;
        std::string ok;
        put32(ok, 0);
        message(out, 'R', ok);  // AuthenticationOk
        message(out, 'S', parameter("server_version", "15.0"));
        message(out, 'S', parameter("in_hot_standby", "on"));
        message(out, 'S', parameter("default_transaction_read_only", "on"));
        std::string key;
        put32(key, 4242);
        put32(key, 4242);
        message(out, 'K', key);  // BackendKeyData
        message(out, 'Z', "I");  // ReadyForQuery, idle
        (void)::send(c, out.data(), out.size(), MSG_NOSIGNAL);
        // Wait (bounded) for libpq to hang up.
        pollfd p{c, POLLIN, 0};
        char buf[256];
        for (int i = 0; i < 100 && !stop_; ++i) {
            if (::poll(&p, 1, 50) > 0 && ::recv(c, buf, sizeof buf, 0) <= 0) return;
        }
    }

    static bool read_all(int c, unsigned char* buf, std::size_t n) {
        std::size_t got = 0;
        while (got < n) {
            pollfd p{c, POLLIN, 0};
            if (::poll(&p, 1, 2000) <= 0) return false;
            const auto r = ::recv(c, buf + got, n - got, 0);
            if (r <= 0) return false;
            got += static_cast<std::size_t>(r);
        }
        return true;
    }

    int listener_ = -1;
    unsigned short port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> sessions_{0};
    std::thread thread_;
};

// A loopback port with nothing listening (bound once to get a number, then closed): connects to it
// are refused.
inline unsigned short closed_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

// Polls pred every 10 ms until it holds or limit passes; returns its last value. A bounded wait on
// state, not a timing assertion.
inline bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    for (;;) {
        if (pred()) return true;
        if (std::chrono::steady_clock::now() >= end) return pred();
        std::this_thread::sleep_for(10ms);
    }
}

}  // namespace connpool_test::pg

#endif  // CONNPOOL_TESTS_INTEGRATION_PG_TEST_UTIL_HPP
