// The facts tests/support/mysql/start.sh wrote about a throwaway MariaDB, plus helpers that
// talk to it with the plain C API as root (never through the code under test): KILL, counts.
#ifndef CONNPOOL_TESTS_SUPPORT_MYSQL_ENV_HPP
#define CONNPOOL_TESTS_SUPPORT_MYSQL_ENV_HPP

#include <connpool/mysql/options.hpp>

#include <mysql.h>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iterator>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace connpool_test::mysql {

// KEY=VALUE facts of one server. A missing file is an error, never a skip: a test that
// cannot reach its server must fail.
class server_facts {
public:
    explicit server_facts(std::string path) : path_(std::move(path)) {
        std::ifstream in(path_);
        if (!in) throw std::runtime_error("mysql test env: cannot read " + path_ + " (did the fixture run?)");
        for (std::string line; std::getline(in, line);) {
            const auto eq = line.find('=');
            if (eq != std::string::npos) facts_[line.substr(0, eq)] = line.substr(eq + 1);
        }
    }

    const std::string& operator[](const std::string& key) const {
        auto it = facts_.find(key);
        if (it == facts_.end()) throw std::runtime_error("mysql test env: no " + key + " in " + path_);
        return it->second;
    }

    const std::string& path() const { return path_; }
    const std::string& password() const { return (*this)["CONNPOOL_MYSQL_PASSWORD"]; }
    unsigned port() const { return static_cast<unsigned>(std::stoul((*this)["CONNPOOL_MYSQL_PORT"])); }
    int pid() const { return std::stoi((*this)["CONNPOOL_MYSQL_PID"]); }

    // The password user over TCP.
    connpool::mysql::connect_options tcp() const {
        connpool::mysql::connect_options o;
        o.host = (*this)["CONNPOOL_MYSQL_HOST"];
        o.port = port();
        o.user = (*this)["CONNPOOL_MYSQL_USER"];
        o.password = password();
        o.database = (*this)["CONNPOOL_MYSQL_DATABASE"];
        return o;
    }

    // The same user over the Unix socket.
    connpool::mysql::connect_options socket() const {
        auto o = tcp();
        o.unix_socket = (*this)["CONNPOOL_MYSQL_SOCKET"];
        return o;
    }

    // The user the server refuses without TLS, with the harness CA, verified.
    connpool::mysql::connect_options tls() const {
        auto o = tcp();
        o.user = (*this)["CONNPOOL_MYSQL_TLS_USER"];
        o.tls.ca = (*this)["CONNPOOL_MYSQL_SSL_CA"];
        o.tls.require = true;
        o.tls.verify_server_cert = true;
        return o;
    }

    // Runs sql as root over the socket on a fresh connection; returns the first column of the
    // first row ("" when none). Throws on failure.
    std::string admin(const std::string& sql) const {
        std::unique_ptr<MYSQL, decltype(&mysql_close)> h(mysql_init(nullptr), &mysql_close);
        const unsigned timeout = 10;
        mysql_options(h.get(), MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
        if (!mysql_real_connect(h.get(), "localhost", "root", nullptr, nullptr, 0,
                                (*this)["CONNPOOL_MYSQL_SOCKET"].c_str(), 0)) {
            throw std::runtime_error("admin connect failed: " + std::string(mysql_error(h.get())));
        }
        if (mysql_real_query(h.get(), sql.data(), sql.size()) != 0) {
            throw std::runtime_error("admin query failed: " + sql + ": " + mysql_error(h.get()));
        }
        std::string out;
        if (MYSQL_RES* r = mysql_store_result(h.get())) {
            if (MYSQL_ROW row = mysql_fetch_row(r); row && mysql_num_fields(r) > 0 && row[0]) out = row[0];
            mysql_free_result(r);
        }
        return out;
    }

private:
    std::string path_;
    std::map<std::string, std::string> facts_;
};

// Polls pred until it holds or `limit` passes: for states the pool reaches on its own
// (refills, replacements). The limit only bounds a failing test; nothing asserts speed.
inline bool eventually(const std::function<bool()>& pred, std::chrono::seconds limit = std::chrono::seconds(30)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (pred()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return pred();
}

inline std::string support_dir() {
#ifdef CONNPOOL_MYSQL_SUPPORT_DIR
    return CONNPOOL_MYSQL_SUPPORT_DIR;
#else
    throw std::runtime_error("CONNPOOL_MYSQL_SUPPORT_DIR is not defined");
#endif
}

// The server the CTest fixture (mysql_server) started. Named by the environment variable
// CONNPOOL_MYSQL_ENV_FILE, or else by the macro of the same name that the build defines.
inline const server_facts& shared_server() {
    static const server_facts facts = [] {
        const char* from_env = std::getenv("CONNPOOL_MYSQL_ENV_FILE");
#ifdef CONNPOOL_MYSQL_ENV_FILE
        return server_facts(from_env ? from_env : CONNPOOL_MYSQL_ENV_FILE);
#else
        if (from_env == nullptr) throw std::runtime_error("CONNPOOL_MYSQL_ENV_FILE is not set");
        return server_facts(from_env);
#endif
    }();
    return facts;
}

inline void run_script(const std::string& command) {
    if (std::system(command.c_str()) != 0) throw std::runtime_error("failed: " + command);
}

// A server of one's own, for tests that stop, restart or freeze it: the shared one must stay
// up for the test cases CTest runs next to this one.
class private_server {
public:
    private_server() {
        char tmpl[] = "/tmp/connpool-mysql-env.XXXXXX";
        const int fd = ::mkstemp(tmpl);
        if (fd < 0) throw std::runtime_error("mkstemp failed");
        ::close(fd);
        env_file_ = tmpl;
        run_script("'" + support_dir() + "/start.sh' '" + env_file_ + "' >/dev/null");
        facts_ = std::make_unique<server_facts>(env_file_);
    }
    ~private_server() {
        if (frozen_) ::kill(facts_->pid(), SIGCONT);
        (void)std::system(("'" + support_dir() + "/stop.sh' '" + env_file_ + "'").c_str());
    }
    private_server(const private_server&) = delete;
    private_server& operator=(const private_server&) = delete;

    const server_facts& facts() const { return *facts_; }

    // Clean shutdown (clients see their connections close), down for `down`, then up again
    // on the same port and socket.
    void restart(std::chrono::seconds down) {
        run_script("'" + support_dir() + "/restart.sh' '" + env_file_ + "' " + std::to_string(down.count()));
        facts_ = std::make_unique<server_facts>(env_file_);
    }

    // SIGSTOP / SIGCONT: the server keeps its sockets open and answers nothing. The stop
    // reaches each thread asynchronously, so wait until every thread is stopped: a thread
    // still running could answer one more request.
    void freeze() {
        ::kill(facts_->pid(), SIGSTOP);
        frozen_ = true;
        const auto task_dir = std::filesystem::path("/proc") / std::to_string(facts_->pid()) / "task";
        const bool stopped = eventually([&] {
            for (const auto& task : std::filesystem::directory_iterator(task_dir)) {
                std::ifstream stat(task.path() / "stat");
                std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
                // "pid (comm) S ...": the state follows the last ')'.
                const auto paren = text.rfind(')');
                if (paren == std::string::npos || paren + 2 >= text.size() || text[paren + 2] != 'T') return false;
            }
            return true;
        }, std::chrono::seconds(10));
        if (!stopped) throw std::runtime_error("private_server: the server did not stop on SIGSTOP");
    }
    void thaw() {
        ::kill(facts_->pid(), SIGCONT);
        frozen_ = false;
    }

private:
    std::string env_file_;
    std::unique_ptr<server_facts> facts_;
    bool frozen_ = false;
};

// A TCP listener on 127.0.0.1 that accepts connections (the kernel completes the handshake
// into the backlog) and never sends a byte: a server that hangs before its greeting.
class silent_listener {
public:
    silent_listener() {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 128) != 0 ||
            ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
            throw std::runtime_error("silent_listener: cannot listen");
        }
        port_ = ntohs(a.sin_port);
    }
    ~silent_listener() { ::close(fd_); }
    silent_listener(const silent_listener&) = delete;
    silent_listener& operator=(const silent_listener&) = delete;

    unsigned port() const { return port_; }

private:
    int fd_ = -1;
    unsigned port_ = 0;
};

// A MariaDB look-alike on 127.0.0.1 that sends a real protocol greeting offering TLS, reads
// the client's TLS request and ClientHello, and then never sends another byte: a server that
// hangs in the middle of the TLS handshake. Serves one client at a time on its own thread.
class tls_black_hole {
public:
    tls_black_hole() {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 16) != 0 ||
            ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
            throw std::runtime_error("tls_black_hole: cannot listen");
        }
        port_ = ntohs(a.sin_port);
        thread_ = std::thread([this] { serve(); });
    }
    ~tls_black_hole() {
        stop_ = true;
        ::shutdown(fd_, SHUT_RDWR);
        ::close(fd_);
        thread_.join();
        for (int c : clients_) ::close(c);
    }
    tls_black_hole(const tls_black_hole&) = delete;
    tls_black_hole& operator=(const tls_black_hole&) = delete;

    unsigned port() const { return port_; }
    // Clients that got as far as sending their TLS request.
    int tls_requests() const { return tls_requests_; }

private:
    // Protocol v10 handshake: CLIENT_SSL | PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH.
    static std::string greeting() {
        std::string p;
        p += '\x0a';
        p += std::string("5.5.5-10.11.0-MariaDB") + '\0';
        p += std::string("\x01\x00\x00\x00", 4);         // connection id
        p += std::string("abcdefgh") + '\0';               // auth data, part 1
        p += std::string("\x00\xaa", 2);                   // capabilities, low: ... SSL 0x0800, 41 0x0200, SECURE 0x8000
        p += '\x21';                                       // utf8 collation
        p += std::string("\x02\x00", 2);                   // status: autocommit
        p += std::string("\x08\x00", 2);                   // capabilities, high: PLUGIN_AUTH
        p += '\x15';                                       // auth data length (21)
        p += std::string(10, '\0');                        // reserved (6) + MariaDB capabilities (4)
        p += std::string("ijklmnopqrst") + '\0';           // auth data, part 2
        p += std::string("mysql_native_password") + '\0';
        std::string packet;
        packet += static_cast<char>(p.size() & 0xff);
        packet += static_cast<char>((p.size() >> 8) & 0xff);
        packet += static_cast<char>((p.size() >> 16) & 0xff);
        packet += '\0';  // sequence 0
        return packet + p;
    }

    void serve() {
        const std::string hello = greeting();
        while (!stop_) {
            const int c = ::accept(fd_, nullptr, nullptr);
            if (c < 0) return;
            clients_.push_back(c);
            if (::send(c, hello.data(), hello.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(hello.size())) continue;
            char buf[4096];
            // The TLS request (a 32-byte packet) comes first, then the ClientHello; read and drop.
            if (::recv(c, buf, sizeof buf, 0) > 0) ++tls_requests_;
        }
    }

    int fd_ = -1;
    unsigned port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> tls_requests_{0};
    std::vector<int> clients_;
    std::thread thread_;
};

}  // namespace connpool_test::mysql

#endif  // CONNPOOL_TESTS_SUPPORT_MYSQL_ENV_HPP
