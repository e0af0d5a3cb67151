// connpool's PostgreSQL adapter (libpq): connpool::pg::connection, connpool::pg::factory and the
// connpool::pg::pool alias, plus connpool::pg::async_exec. Link connpool::pg.
#ifndef CONNPOOL_PG_HPP
#define CONNPOOL_PG_HPP

#include <connpool/pg/async.hpp>
#include <connpool/pg/connection.hpp>
#include <connpool/pg/factory.hpp>
#include <connpool/pool.hpp>

namespace connpool::pg {

// A pool of PostgreSQL connections: connpool::pool over connpool::pg::factory.
using pool = connpool::pool<factory>;

}  // namespace connpool::pg

#endif  // CONNPOOL_PG_HPP
