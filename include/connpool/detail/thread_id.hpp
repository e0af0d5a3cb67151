// connpool internals: the type that names a caller's thread in the state machine and in
// stats() (a lease's holder). The state machine only stores and compares it; the shell
// (pool_core and the faces) is what reads std::this_thread, so a build without threads
// (wasm32-wasi, the browser simulator) can compile the sans-I/O core.
#ifndef CONNPOOL_DETAIL_THREAD_ID_HPP
#define CONNPOOL_DETAIL_THREAD_ID_HPP

// wasm32-wasi without -pthread has no <thread>; CONNPOOL_NO_THREADS forces the same anywhere.
#if !defined(CONNPOOL_NO_THREADS) && defined(__wasi__) && !defined(_REENTRANT)
#define CONNPOOL_NO_THREADS 1
#endif

#if defined(CONNPOOL_NO_THREADS)
#include <cstdint>
#else
#include <thread>
#endif

namespace connpool {

#if defined(CONNPOOL_NO_THREADS)
// A caller the shell numbers itself; 0, the default, is "no thread", as std::thread::id{} is.
using thread_id = std::uint64_t;
#else
// Natively the standard's own id: what the shell gets from std::this_thread::get_id(), at
// no cost, and what lease_info has always printed.
using thread_id = std::thread::id;
#endif

}  // namespace connpool

#endif  // CONNPOOL_DETAIL_THREAD_ID_HPP
