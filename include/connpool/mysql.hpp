// connpool MySQL/MariaDB adapter: connpool::mysql::pool over the MySQL C API (MariaDB
// Connector/C, or Oracle's libmysqlclient where the C API allows). Link connpool::mysql.
#ifndef CONNPOOL_MYSQL_HPP
#define CONNPOOL_MYSQL_HPP

#include <connpool/lease.hpp>
#include <connpool/pool.hpp>

#include <connpool/mysql/connection.hpp>
#include <connpool/mysql/error.hpp>
#include <connpool/mysql/factory.hpp>
#include <connpool/mysql/options.hpp>

namespace connpool::mysql {

// A pool of MySQL/MariaDB connections; its leases hand out connpool::mysql::connection.
using pool = connpool::basic_pool<factory>;
using lease = connpool::lease<connection>;

}  // namespace connpool::mysql

#endif  // CONNPOOL_MYSQL_HPP
