// Test support: reads the facts start-prometheus.sh wrote and asks that Prometheus's HTTP API
// for instant queries. Every call is bounded by a timeout. The including translation unit
// also includes <boost/json/src.hpp> once (Boost.JSON header-only).
#ifndef CONNPOOL_TESTS_SUPPORT_METRICS_PROMETHEUS_API_HPP
#define CONNPOOL_TESTS_SUPPORT_METRICS_PROMETHEUS_API_HPP

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace connpool::test {

struct prometheus_server {
    std::string host = "127.0.0.1";
    unsigned short port = 0;
};

// From the env file whose path is $CONNPOOL_PROMETHEUS_ENV_FILE or the compiled-in default.
inline prometheus_server read_prometheus_env(const char* default_path) {
    const char* path = std::getenv("CONNPOOL_PROMETHEUS_ENV_FILE");
    if (!path || !*path) path = default_path;
    std::ifstream in(path);
    if (!in) throw std::runtime_error(std::string("no Prometheus env file at ") + path + " (start-prometheus.sh writes it)");
    prometheus_server s;
    const std::string key = "CONNPOOL_PROMETHEUS_PORT='";
    for (std::string line; std::getline(in, line);) {
        if (line.starts_with(key)) s.port = static_cast<unsigned short>(std::stoi(line.substr(key.size())));
    }
    if (s.port == 0) throw std::runtime_error(std::string("no CONNPOOL_PROMETHEUS_PORT in ") + path);
    return s;
}

inline std::string url_encode(std::string_view s) {
    std::string out;
    for (unsigned char c : s) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
            c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            char buf[4];
            std::snprintf(buf, sizeof buf, "%%%02X", c);
            out += buf;
        }
    }
    return out;
}

// GET target; throws on a network error, a timeout or a status other than 200.
inline std::string http_get(const prometheus_server& server, const std::string& target,
                            std::chrono::seconds timeout = std::chrono::seconds(5)) {
    namespace asio = boost::asio;
    namespace beast = boost::beast;
    namespace http = beast::http;
    asio::io_context io;
    beast::tcp_stream stream(io);
    http::request<http::empty_body> request(http::verb::get, target, 11);
    request.set(http::field::host, server.host);
    beast::flat_buffer buffer;
    http::response<http::string_body> response;
    beast::error_code result;
    // One deadline for connect, write and read: tcp_stream enforces it on async operations.
    stream.expires_after(timeout);
    stream.async_connect(asio::ip::tcp::endpoint(asio::ip::make_address(server.host), server.port),
                         [&](beast::error_code ec) {
                             if (ec) {
                                 result = ec;
                                 return;
                             }
                             http::async_write(stream, request, [&](beast::error_code wec, std::size_t) {
                                 if (wec) {
                                     result = wec;
                                     return;
                                 }
                                 http::async_read(stream, buffer, response,
                                                  [&](beast::error_code rec, std::size_t) { result = rec; });
                             });
                         });
    io.run();
    if (result) throw std::runtime_error("GET " + target + ": " + result.message());
    if (response.result() != http::status::ok) {
        throw std::runtime_error("GET " + target + ": HTTP " + std::to_string(response.result_int()) + ": " +
                                 response.body());
    }
    return response.body();
}

struct series {
    std::map<std::string, std::string> labels;
    double value = 0;
};

// An instant query (/api/v1/query); throws unless Prometheus answers "success" with a vector.
inline std::vector<series> query(const prometheus_server& server, const std::string& promql) {
    const std::string body = http_get(server, "/api/v1/query?query=" + url_encode(promql));
    const boost::json::value doc = boost::json::parse(body);
    const auto& root = doc.as_object();
    if (root.at("status").as_string() != "success") throw std::runtime_error("query " + promql + ": " + body);
    const auto& data = root.at("data").as_object();
    if (data.at("resultType").as_string() != "vector") throw std::runtime_error("query " + promql + ": not a vector");
    std::vector<series> out;
    for (const auto& r : data.at("result").as_array()) {
        series s;
        for (const auto& [k, v] : r.at("metric").as_object()) s.labels[std::string(k)] = std::string(v.as_string());
        // "value": [ <unix time>, "<value as a string>" ]
        s.value = std::stod(std::string(r.at("value").as_array().at(1).as_string()));
        out.push_back(std::move(s));
    }
    return out;
}

}  // namespace connpool::test

#endif  // CONNPOOL_TESTS_SUPPORT_METRICS_PROMETHEUS_API_HPP
