/* storage/sigv4.c: see storage/sigv4.h (being written). */
#include "storage/sigv4.h"
