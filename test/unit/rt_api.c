/*
 * test/unit/rt_api.c: rt_api_init() for the replication-engine tests, in a
 * file of its own: it must see the real <sqlite3.h>, while the tests see
 * storage/base/sqlite.h (whose macros route every call through the API
 * table that this sets).
 */
#include "test/unit/api_init.h"

void rt_api_init(void);

void
rt_api_init(void)
{
    api_init();
}
