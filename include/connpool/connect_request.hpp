// connpool: what the pool tells a factory's connect. Its own header, without Asio, so that
// the sans-I/O state machine (detail::connector) can name it and still compile where Asio
// cannot (wasm32-wasi, the browser simulator).
#ifndef CONNPOOL_CONNECT_REQUEST_HPP
#define CONNPOOL_CONNECT_REQUEST_HPP

#include <chrono>

namespace connpool {

// What the pool asks of a connect.
struct connect_request {
    // The connect must give up after this long (options::connect_timeout).
    std::chrono::milliseconds timeout{};
    // Consecutive failed connects before this one: 0 on a healthy pool.
    unsigned attempt = 0;
};

}  // namespace connpool

#endif  // CONNPOOL_CONNECT_REQUEST_HPP
