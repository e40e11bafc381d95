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
last_error(const char *zMsg, int64_t at_ms)
{
    json_t *e;
    int bad = 0;
    if (!zMsg)
        return json_null();
    if (!(e = json_object()))
        return NULL;
    ls_json_set(e, "message", ls_json_text(zMsg), &bad);
    ls_json_set(e, "at", json_integer(at_ms), &bad);
    if (bad) {
        json_decref(e);
        return NULL;
    }
    return e;
}

/* The request counters (of every replica when tg is NULL).  Caller holds
 * r->mu. */
static json_t *
counters(const replicator *r, const rep_target *tg)
{
    backend_counters c = {0};
    for (int i = 0; i < r->ntg; i++) {
        const backend_counters *x = &r->tg[i].counters;
        if (tg && tg != &r->tg[i])
            continue;
        c.n_put += x->n_put;
        c.n_get += x->n_get;
        c.n_list += x->n_list;
        c.n_delete += x->n_delete;
        c.bytes_up += x->bytes_up;
        c.bytes_down += x->bytes_down;
    }
    json_t *o = json_object();
    int bad = 0;
    ls_json_set(o, "put", ls_json_u64(c.n_put), &bad);
    ls_json_set(o, "get", ls_json_u64(c.n_get), &bad);
    ls_json_set(o, "list", ls_json_u64(c.n_list), &bad);
    ls_json_set(o, "delete", ls_json_u64(c.n_delete), &bad);
    ls_json_set(o, "bytes_up", ls_json_u64(c.bytes_up), &bad);
    ls_json_set(o, "bytes_down", ls_json_u64(c.bytes_down), &bad);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* How far behind a replica at `rep` is (pending TXIDs, lag). */
static void
lag_of(replicator *r, int n, uint64_t txid, uint64_t *pending, int64_t *lag)
{
    uint64_t rep = sidecar_replicated_n(r->sc, n);
    int64_t rep_ms = sidecar_replicated_at_n(r->sc, n);
    *pending = txid > rep ? txid - rep : 0;
    *lag = txid > rep && rep_ms ? rep_now_ms() - rep_ms : 0;
}

/* One element of "replicas": a replica of the URL list. */
static json_t *
replica_json(replicator *r, rep_target *tg, uint64_t txid)
{
    int bad = 0;
    uint64_t pending;
    int64_t lag;
    json_t *o = json_object();
    const char *zCred = backend_credential(tg->be);
    lag_of(r, tg->idx, txid, &pending, &lag);
    ls_json_set(o, "url", ls_json_text(tg->url->redacted), &bad);
    ls_json_set(o, "credential", zCred ? ls_json_text(zCred) : json_null(),
                &bad);
    ls_json_set(o, "replicated_txid",
                txid_text(sidecar_replicated_n(r->sc, tg->idx)), &bad);
    ls_json_set(o, "pending_txns", ls_json_u64(pending), &bad);
    ls_json_set(o, "lag_ms", json_integer(lag), &bad);
    pthread_mutex_lock(&r->mu);
    ls_json_set(o, "uploads", ls_json_u64(tg->n_uploads), &bad);
    ls_json_set(o, "full_images", ls_json_u64(tg->n_full_images), &bad);
    ls_json_set(o, "errors", ls_json_u64(tg->n_errors), &bad);
    ls_json_set(
        o, "backoff_ms",
        json_integer(__atomic_load_n(&tg->backoff_ms, __ATOMIC_RELAXED)), &bad);
    ls_json_set(o, "released",
                json_boolean(__atomic_load_n(&tg->released, __ATOMIC_ACQUIRE)),
                &bad);
    ls_json_set(o, "counters", counters(r, tg), &bad);
    ls_json_set(o, "last_upload", json_integer(tg->last_upload_ms), &bad);
    ls_json_set(o, "last_error", last_error(tg->last_error, tg->last_error_ms),
                &bad);
    pthread_mutex_unlock(&r->mu);
    if (lease_status(tg->lease, o) != SQLITE_OK)
        bad = 1;
    if (tg->cp && compactor_status(tg->cp, o) != SQLITE_OK)
        bad = 1;
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The top level: the first replica's credential, lease and compaction;
 * the lowest replicated TXID and the largest lag; sums of the counts. */
int
replicator_status(replicator *r, json_t *o)
{
    ls_cap cap;
    int have = sidecar_cap_read(r->sc, &cap);
    uint64_t txid = have ? cap.txid : 0, pending = 0, p;
    int64_t lag = 0, l;
    uint64_t n_up = 0, n_full = 0, n_err = 0;
    int bad = 0;

    for (int i = 0; i < r->ntg; i++) {
        lag_of(r, i, txid, &p, &l);
        pending = p > pending ? p : pending;
        lag = l > lag ? l : lag;
    }
    const char *zCred = backend_credential(r->tg[0].be);
    ls_json_set(o, "url", ls_json_text(r->zUrlRedacted), &bad);
    ls_json_set(o, "credential", zCred ? ls_json_text(zCred) : json_null(),
                &bad);
    ls_json_set(o, "txid", txid_text(txid), &bad);
    ls_json_set(o, "spooled_txid", txid_text(sidecar_spooled(r->sc)), &bad);
    ls_json_set(o, "replicated_txid", txid_text(rep_min_replicated(r)), &bad);
    ls_json_set(o, "pending_txns", ls_json_u64(pending), &bad);
    ls_json_set(o, "lag_ms", json_integer(lag), &bad);
    pthread_mutex_lock(&r->mu);
    int leased = 0; /* ships to a replica whose writer lease it holds */
    for (int i = 0; i < r->ntg; i++) {
        n_up += r->tg[i].n_uploads;
        n_full += r->tg[i].n_full_images;
        n_err += r->tg[i].n_errors;
        leased |= r->tg[i].leased;
    }
    ls_json_set(o, "sync_interval_ms", json_integer(r->opts.sync_interval_ms),
                &bad);
    ls_json_set(o, "spool_bytes", ls_json_u64(spool_bytes(r->sp)), &bad);
    ls_json_set(o, "queued_bytes", ls_json_u64(r->queued_bytes), &bad);
    ls_json_set(o, "spool_full", json_boolean(r->spool_full), &bad);
    ls_json_set(o, "shipping", json_boolean(r->shipping && leased), &bad);
    ls_json_set(o, "uploads", ls_json_u64(n_up), &bad);
    ls_json_set(o, "full_images", ls_json_u64(n_full), &bad);
    ls_json_set(o, "errors", ls_json_u64(n_err + r->n_errors), &bad);
    ls_json_set(o, "counters", counters(r, NULL), &bad);
    ls_json_set(o, "last_upload", json_integer(r->last_upload_ms), &bad);
    ls_json_set(o, "last_error", last_error(r->last_error, r->last_error_ms),
                &bad);
    pthread_mutex_unlock(&r->mu);
    json_t *a = json_array();
    for (int i = 0; a && i < r->ntg; i++)
        if (json_array_append_new(a, replica_json(r, &r->tg[i], txid)) != 0)
            bad = 1;
    ls_json_set(o, "replicas", a, &bad);
    if (lease_status(r->tg[0].lease, o) != SQLITE_OK)
        bad = 1;
    if (r->tg[0].cp && compactor_status(r->tg[0].cp, o) != SQLITE_OK)
        bad = 1;
    return bad ? SQLITE_NOMEM : SQLITE_OK;
}
