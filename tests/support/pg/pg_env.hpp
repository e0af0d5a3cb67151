// The facts about the test servers that tests/support/pg/start-servers.sh wrote, and small helpers
// that talk to them with plain libpq (never through the code under test).
#ifndef CONNPOOL_TESTS_SUPPORT_PG_ENV_HPP
#define CONNPOOL_TESTS_SUPPORT_PG_ENV_HPP

#include <libpq-fe.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

namespace connpool_test::pg {

// Reads KEY='value' lines. The file is named by the environment variable CONNPOOL_PG_ENV_FILE, or
// else by the CONNPOOL_PG_ENV_FILE macro the build defines. A missing file is an error, never a skip:
// a test that cannot reach its server must fail.
class environment {
public:
    static const environment& get() {
        static const environment instance;
        return instance;
    }

    const std::string& operator[](const std::string& key) const {
        auto it = facts_.find(key);
        if (it == facts_.end()) throw std::runtime_error("pg test env: no " + key + " in " + path_);
        return it->second;
    }

    const std::string& conninfo() const { return (*this)["CONNPOOL_PG_CONNINFO"]; }
    const std::string& admin_conninfo() const { return (*this)["CONNPOOL_PG_ADMIN_CONNINFO"]; }
    const std::string& bouncer_conninfo() const { return (*this)["CONNPOOL_PG_BOUNCER_CONNINFO"]; }
    const std::string& password() const { return (*this)["CONNPOOL_PG_PASSWORD"]; }
    const std::string& port() const { return (*this)["CONNPOOL_PG_PORT"]; }

private:
    environment() {
        const char* from_env = std::getenv("CONNPOOL_PG_ENV_FILE");
#ifdef CONNPOOL_PG_ENV_FILE
        path_ = from_env ? from_env : CONNPOOL_PG_ENV_FILE;
#else
        if (from_env == nullptr) throw std::runtime_error("pg test env: CONNPOOL_PG_ENV_FILE is not set");
        path_ = from_env;
#endif
        std::ifstream in(path_);
        if (!in) throw std::runtime_error("pg test env: cannot read " + path_ + " (did the pg_server fixture run?)");
        for (std::string line; std::getline(in, line);) {
            auto eq = line.find('=');
            if (eq == std::string::npos) continue;
            std::string value = line.substr(eq + 1);
            if (value.size() >= 2 && value.front() == '\'' && value.back() == '\'') {
                value = value.substr(1, value.size() - 2);
            }
            facts_[line.substr(0, eq)] = value;
        }
    }

    std::string path_;
    std::map<std::string, std::string> facts_;
};

inline const environment& env() { return environment::get(); }

struct pgconn_closer {
    void operator()(PGconn* c) const noexcept { PQfinish(c); }
};
struct pgresult_closer {
    void operator()(PGresult* r) const noexcept { PQclear(r); }
};

// Runs sql as the superuser on a fresh connection and returns the first column of the first row
// ("" when there is none). Throws on any failure.
inline std::string admin_query(const std::string& sql) {
    std::unique_ptr<PGconn, pgconn_closer> c(PQconnectdb(env().admin_conninfo().c_str()));
    if (PQstatus(c.get()) != CONNECTION_OK) {
        throw std::runtime_error(std::string("admin connect failed: ") + PQerrorMessage(c.get()));
    }
    std::unique_ptr<PGresult, pgresult_closer> r(PQexec(c.get(), sql.c_str()));
    const auto st = PQresultStatus(r.get());
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        throw std::runtime_error("admin query failed: " + std::string(PQresultErrorMessage(r.get())));
    }
    if (st == PGRES_TUPLES_OK && PQntuples(r.get()) > 0) return PQgetvalue(r.get(), 0, 0);
    return {};
}

// Terminates every backend whose application_name is app; returns how many.
inline int terminate_backends(const std::string& app) {
    return std::stoi(admin_query(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '" + app + "'"));
}

// Backends of application_name app that the server has now.
inline int count_backends(const std::string& app) {
    return std::stoi(admin_query("SELECT count(*) FROM pg_stat_activity WHERE application_name = '" + app + "'"));
}

// The test conninfo with extra keywords appended (later keywords win in libpq).
inline std::string conninfo_with(const std::string& extra) { return env().conninfo() + " " + extra; }

}  // namespace connpool_test::pg

#endif  // CONNPOOL_TESTS_SUPPORT_PG_ENV_HPP
