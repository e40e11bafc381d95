/*
 * storage/replicate/status.c: a replicator's part of litestream_status()
 * (replicator_status in replicator.h; the keys are documented in
 * docs/sql.md), written with jansson (storage/base/json.h).
 *
 * Threads: application threads (the SQL function); reads the replicator's
 * shared fields under its mutex, the sidecar's counters as atomics.
 */
#include "storage/base/json.h"
#include "storage/history/compactor.h"
#include "storage/replicate/lease.h"
#include "storage/replicate/replicator_int.h"

/* A TXID as the 16 hex digits the status shows. */
static json_t *
txid_text(uint64_t v)
{
    char z[17];
    static const char d[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--, v >>= 4)
        z[i] = d[v & 15];
    z[16] = 0;
    return json_string(z);
}

/* "last_error": {"message", "at"} or null.  Caller holds r->mu. */
static json_t *
last_error(const replicator *r)
{
    json_t *e;
    int bad = 0;
    if (!r->last_error)
        return json_null();
    if (!(e = json_object()))
        return NULL;
    ls_json_set(e, "message", ls_json_text(r->last_error), &bad);
    ls_json_set(e, "at", json_integer(r->last_error_ms), &bad);
    if (bad) {
        json_decref(e);
        return NULL;
    }
    return e;
}

/* The request counters.  Caller holds r->mu. */
static json_t *
counters(const replicator *r)
{
    const backend_counters *c = &r->counters;
    json_t *o = json_object();
    int bad = 0;
    ls_json_set(o, "put", ls_json_u64(c->n_put), &bad);
    ls_json_set(o, "get", ls_json_u64(c->n_get), &bad);
    ls_json_set(o, "list", ls_json_u64(c->n_list), &bad);
    ls_json_set(o, "delete", ls_json_u64(c->n_delete), &bad);
    ls_json_set(o, "bytes_up", ls_json_u64(c->bytes_up), &bad);
    ls_json_set(o, "bytes_down", ls_json_u64(c->bytes_down), &bad);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int
replicator_status(replicator *r, json_t *o)
{
    ls_cap cap;
    int have = sidecar_cap_read(r->sc, &cap);
    uint64_t rep = sidecar_replicated(r->sc);
    int64_t rep_ms = sidecar_replicated_at(r->sc);
    uint64_t txid = have ? cap.txid : 0;
    int bad = 0;

    const char *zCred = backend_credential(r->be);
    ls_json_set(o, "url", ls_json_text(r->url->redacted), &bad);
    ls_json_set(o, "credential", zCred ? ls_json_text(zCred) : json_null(),
                &bad);
    ls_json_set(o, "txid", txid_text(txid), &bad);
    ls_json_set(o, "spooled_txid", txid_text(sidecar_spooled(r->sc)), &bad);
    ls_json_set(o, "replicated_txid", txid_text(rep), &bad);
    ls_json_set(o, "pending_txns", json_integer(txid > rep ? txid - rep : 0),
                &bad);
    ls_json_set(o, "lag_ms",
                json_integer(txid > rep && rep_ms ? rep_now_ms() - rep_ms : 0),
                &bad);
    pthread_mutex_lock(&r->mu);
    ls_json_set(o, "sync_interval_ms", json_integer(r->opts.sync_interval_ms),
                &bad);
    ls_json_set(o, "spool_bytes", ls_json_u64(spool_bytes(r->sp)), &bad);
    ls_json_set(o, "queued_bytes", ls_json_u64(r->queued_bytes), &bad);
    ls_json_set(o, "spool_full", json_boolean(r->spool_full), &bad);
    ls_json_set(o, "shipping", json_boolean(r->shipping), &bad);
    ls_json_set(o, "uploads", ls_json_u64(r->n_uploads), &bad);
    ls_json_set(o, "full_images", ls_json_u64(r->n_full_images), &bad);
    ls_json_set(o, "errors", ls_json_u64(r->n_errors), &bad);
    ls_json_set(o, "counters", counters(r), &bad);
    ls_json_set(o, "last_upload", json_integer(r->last_upload_ms), &bad);
    ls_json_set(o, "last_error", last_error(r), &bad);
    pthread_mutex_unlock(&r->mu);
    if (lease_status(r->lease, o) != SQLITE_OK)
        bad = 1;
    if (r->cp && compactor_status(r->cp, o) != SQLITE_OK)
        bad = 1;
    return bad ? SQLITE_NOMEM : SQLITE_OK;
}
