/*
 * storage/base/killpoint.h: named points where a test-only build can kill
 * its own process (SIGKILL), for the model checker (test/model/model.py).
 *
 * In the shipped build KILLPOINT() is nothing.  The test build
 * (-DLITESTREAM_KILLPOINTS, test/killpoints/) reads LITESTREAM_KILLPOINT=
 * NAME:N once and dies at the N-th time the point NAME is passed.  The
 * points, each named where it is placed:
 *   capture-queued          a transaction captured and queued, not spooled
 *   spool-mid-write         a spool record written but for its checksum
 *   upload-before-position  an object acknowledged, the position not saved
 *   image-mid               a full image read, not yet encoded
 *   compaction-mid          a merged object uploaded, nothing else done
 */
#ifndef LITESTREAM_KILLPOINT_H
#define LITESTREAM_KILLPOINT_H

#ifdef LITESTREAM_KILLPOINTS
/* Dies if NAME is the configured point and this is its N-th pass. */
void killpoint(const char *zName);
#define KILLPOINT(name) killpoint(name)
#else
#define KILLPOINT(name) ((void)0)
#endif

#endif
