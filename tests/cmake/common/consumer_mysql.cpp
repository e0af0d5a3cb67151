// connpool::mysql carries MariaDB Connector/C: its header is found and the program links and runs.
#if __has_include(<connpool/mysql.hpp>)
#include <connpool/mysql.hpp>
#endif
#include <mysql.h>

int main() { return mysql_get_client_version() > 0 ? 0 : 1; }
