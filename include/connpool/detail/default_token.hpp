// connpool internals: the completion token an async operation uses when the caller names
// none. Boost 1.81's default_completion_token_t of an executor without a default is void,
// which no operation can take (and clang rejects as a default argument); asio::deferred
// stands in, so that `pool.async_acquire()` compiles and returns a deferred operation.
#ifndef CONNPOOL_DETAIL_DEFAULT_TOKEN_HPP
#define CONNPOOL_DETAIL_DEFAULT_TOKEN_HPP

#include <boost/asio/async_result.hpp>
#include <boost/asio/deferred.hpp>

#include <type_traits>

namespace connpool::detail {

template <class Executor>
using default_token_t = std::conditional_t<std::is_void_v<boost::asio::default_completion_token_t<Executor>>,
                                           boost::asio::deferred_t,
                                           boost::asio::default_completion_token_t<Executor>>;

}  // namespace connpool::detail

#endif  // CONNPOOL_DETAIL_DEFAULT_TOKEN_HPP
