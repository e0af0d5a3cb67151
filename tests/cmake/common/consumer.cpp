// A consumer of connpool::connpool: a pool over an in-memory factory. Exits 0 only when
// acquiring, holding two leases at once, returning them and closing the pool all work.
#include <connpool.hpp>

#include <atomic>
#include <cstdio>
#include <memory>
#include <optional>

namespace {

struct memory_connection {
    int id = 0;
};

struct memory_factory {
    using connection_type = memory_connection;

    // Shared, so the factory stays copyable and the pool's threads may connect at once.
    std::shared_ptr<std::atomic<int>> opened = std::make_shared<std::atomic<int>>(0);

    std::optional<memory_connection> connect(const connpool::connect_request&, connpool::error_info&) {
        return memory_connection{++*opened};
    }
};

static_assert(connpool::connection_factory<memory_factory>);

int fail(const char* what) {
    std::fprintf(stderr, "consumer: %s\n", what);
    return 1;
}

}  // namespace

int main() {
    connpool::options options;
    options.max_size = 2;
    memory_factory factory;
    auto opened = factory.opened;
    connpool::pool<memory_factory> pool(std::move(factory), options);

    {
        connpool::error_code ec;
        auto first = pool.acquire(ec);
        if (ec || !first) return fail("the first acquire failed");
        auto second = pool.acquire();
        if (!second) return fail("the second acquire failed");
        if (first->id == second->id) return fail("two leases share one connection");
        if (first->id < 1 || second->id < 1 || opened->load() < 2) return fail("the factory was not used");
    }  // both leases go back to the pool here

    pool.close();
    connpool::error_code ec;
    auto after_close = pool.acquire(ec);
    if (ec != connpool::errc::pool_closed || after_close) return fail("acquire after close() did not fail");

    std::puts("consumer: ok");
    return 0;
}
