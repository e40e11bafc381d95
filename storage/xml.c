/* storage/xml.c: see storage/xml.h (being written). */
#include "storage/xml.h"
