// connpool::pg carries libpq: its header is found and the program links and runs.
#if __has_include(<connpool/pg.hpp>)
#include <connpool/pg.hpp>
#endif
#include <libpq-fe.h>

int main() { return PQlibVersion() > 0 ? 0 : 1; }
