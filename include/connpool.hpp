// connpool: the whole core in one include. The database adapters have their own:
// <connpool/pg.hpp> and <connpool/mysql.hpp>.
#ifndef CONNPOOL_HPP
#define CONNPOOL_HPP

#include <connpool/error.hpp>
#include <connpool/factory.hpp>
#include <connpool/hooks.hpp>
#include <connpool/lease.hpp>
#include <connpool/options.hpp>
#include <connpool/pool.hpp>
#include <connpool/stats.hpp>

#endif  // CONNPOOL_HPP
