#include "store.h"
#include "store_int.h"

#include "base/base.h"
#include "base/map.h"
#include "log/log.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Object plus what only the store sees: the cached API JSON. */
typedef struct entry {
    env_obj_t obj;
    char *json; /* cached API JSON, NULL when stale */
    size_t json_len;
} entry_t;

typedef struct ring_ev {
    uint64_t rv;
    store_event_type_t type;
    char id[SPEC_ID_MAX + 1];
    char *json;
    size_t json_len;
} ring_ev_t;

struct store_watcher {
    store_watch_fn fn;
    void *ud;
    int removed;
    store_watcher_t *next;
};

struct store {
    d8_map_t byid; /* id -> entry_t */
    /* Entries sorted by id, rebuilt lazily for listing. */
    entry_t **sorted;
    size_t nsorted;
    int sorted_valid;

    uint64_t rv;
    int synced;
    int in_sync; /* inside store_sync: its events are bulk */

    ring_ev_t *ring;
    size_t ring_size;
    size_t ring_len;  /* events in the ring */
    size_t ring_head; /* index of the oldest event */

    store_watcher_t *watchers;
    int delivering; /* >0 while watchers are being called */

    void (*desired_fn)(void *ud); /* store_on_desired_change */
    void *desired_ud;
    unsigned char *digest_key; /* store_set_digest_key; NULL = empty key */
    size_t digest_keylen;
};

static const char *const phase_names[PHASE__COUNT] = {
    "CREATING", "STARTING", "RUNNING", "STOPPING", "STOPPED", "ERROR", "DELETING",
};

const char *store_phase_name(env_phase_t p)
{
    return (unsigned)p < PHASE__COUNT ? phase_names[p] : "UNKNOWN";
}

int store_phase_parse(const char *name)
{
    for (int i = 0; i < PHASE__COUNT; i++)
        if (strcmp(name, phase_names[i]) == 0)
            return i;
    return -1;
}

const char *store_event_name(store_event_type_t t)
{
    switch (t) {
    case EV_ADDED:
        return "ADDED";
    case EV_MODIFIED:
        return "MODIFIED";
    case EV_DELETED:
        return "DELETED";
    }
    return "UNKNOWN";
}

store_t *store_new(size_t ring_size)
{
    store_t *st = d8_xcalloc(1, sizeof(*st));
    d8_map_init(&st->byid);
    st->ring_size = ring_size ? ring_size : 1;
    st->ring = d8_xcalloc(st->ring_size, sizeof(ring_ev_t));
    return st;
}

void store_begin_epoch(store_t *st, uint64_t base)
{
    if (base > st->rv)
        st->rv = base;
}

static void status_release(env_status_t *s)
{
    free(s->ready.message);
    free(s->synced.message);
    free(s->aci_container_group_id);
    free(s->aci_public_ip);
    free(s->azure_file_share_name);
    free(s->fqdn);
    free(s->vscode_url);
    free(s->last_error_code);
    free(s->last_error_message);
    memset(s, 0, sizeof(*s));
}

/* Drops what only a restored object holds. */
static void clear_restored(env_obj_t *o)
{
    if (o->secret_digests)
        OPENSSL_cleanse(o->secret_digests, o->spec.nsecret * sizeof(*o->secret_digests));
    free(o->secret_digests);
    o->secret_digests = NULL;
    o->restored = 0;
}

static void entry_free(entry_t *e)
{
    clear_restored(&e->obj);
    spec_release(&e->obj.spec);
    status_release(&e->obj.status);
    free(e->json);
    free(e);
}

void store_free(store_t *st)
{
    if (!st)
        return;
    size_t it = 0;
    entry_t *e;
    while ((e = d8_map_next(&st->byid, &it)))
        entry_free(e);
    d8_map_release(&st->byid);
    free(st->sorted);
    for (size_t i = 0; i < st->ring_size; i++)
        free(st->ring[i].json);
    free(st->ring);
    store_watcher_t *w = st->watchers;
    while (w) {
        store_watcher_t *next = w->next;
        free(w);
        w = next;
    }
    if (st->digest_key)
        OPENSSL_cleanse(st->digest_key, st->digest_keylen);
    free(st->digest_key);
    free(st);
}

uint64_t store_rv(const store_t *st)
{
    return st->rv;
}

size_t store_count(const store_t *st)
{
    return st->byid.count;
}

int store_synced(const store_t *st)
{
    return st->synced;
}

void store_phase_counts(const store_t *st, size_t out[PHASE__COUNT])
{
    memset(out, 0, sizeof(size_t) * PHASE__COUNT);
    size_t it = 0;
    const entry_t *e;
    while ((e = d8_map_next(&st->byid, &it)))
        out[e->obj.status.phase]++;
}

static entry_t *lookup(const store_t *st, const char *id)
{
    return d8_map_get(&st->byid, id);
}

const env_obj_t *store_get(const store_t *st, const char *id)
{
    entry_t *e = lookup(st, id);
    return e ? &e->obj : NULL;
}

int store_desired(const store_t *st, const char *id)
{
    const env_obj_t *obj = store_get(st, id);
    return obj && !obj->removed;
}

static void insert(store_t *st, entry_t *e)
{
    d8_map_put(&st->byid, e->obj.id, e);
    st->sorted_valid = 0;
}

static void unlink_entry(store_t *st, entry_t *e)
{
    d8_map_del(&st->byid, e->obj.id);
    st->sorted_valid = 0;
}

/* ---- JSON of an object ---------------------------------------------- */

static cJSON *opt_str(const char *s)
{
    return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

static cJSON *opt_time(int64_t ms)
{
    if (!ms)
        return cJSON_CreateNull();
    char ts[32];
    d8_rfc3339(ms, ts);
    return cJSON_CreateString(ts);
}

static const char *cond_status_name(cond_status_t s)
{
    return s == COND_TRUE ? "True" : s == COND_FALSE ? "False" : "Unknown";
}

static cJSON *condition_json(const char *type, const env_condition_t *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", type);
    cJSON_AddStringToObject(o, "status", cond_status_name(c->status));
    cJSON_AddStringToObject(o, "reason", c->reason);
    cJSON_AddStringToObject(o, "message", c->message ? c->message : "");
    cJSON_AddItemToObject(o, "lastTransitionTime", opt_time(c->last_transition_ms));
    return o;
}

/* The object as the API shows it: id, generation, spec (secrets
 * redacted by spec_to_json) and status with its conditions. */
static cJSON *obj_json(const env_obj_t *obj)
{
    const env_status_t *s = &obj->status;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", obj->id);
    cJSON_AddNumberToObject(o, "generation", (double)obj->generation);
    cJSON_AddItemToObject(o, "spec", obj->has_spec ? spec_to_json(&obj->spec) : cJSON_CreateNull());
    cJSON *st = cJSON_AddObjectToObject(o, "status");
    cJSON_AddStringToObject(st, "phase", store_phase_name(s->phase));
    cJSON_AddNumberToObject(st, "observedGeneration", (double)s->observed_generation);
    cJSON *conds = cJSON_AddArrayToObject(st, "conditions");
    cJSON_AddItemToArray(conds, condition_json("Ready", &s->ready));
    cJSON_AddItemToArray(conds, condition_json("Synced", &s->synced));
    cJSON_AddItemToObject(st, "aciContainerGroupId", opt_str(s->aci_container_group_id));
    cJSON_AddItemToObject(st, "aciPublicIp", opt_str(s->aci_public_ip));
    cJSON_AddItemToObject(st, "azureFileShareName", opt_str(s->azure_file_share_name));
    cJSON_AddItemToObject(st, "fqdn", opt_str(s->fqdn));
    cJSON_AddItemToObject(st, "vsCodeUrl", opt_str(s->vscode_url));
    cJSON_AddItemToObject(st, "lastActivityTime", opt_time(s->last_activity_ms));
    cJSON_AddItemToObject(st, "lastReconcileTime", opt_time(s->last_reconcile_ms));
    cJSON_AddItemToObject(st, "observedTime", opt_time(s->observed_ms));
    if (s->last_error_code) {
        cJSON *le = cJSON_AddObjectToObject(st, "lastError");
        cJSON_AddStringToObject(le, "code", s->last_error_code);
        cJSON_AddStringToObject(le, "message", s->last_error_message ? s->last_error_message : "");
    } else {
        cJSON_AddNullToObject(st, "lastError");
    }
    if (s->retry_attempts) {
        cJSON *r = cJSON_AddObjectToObject(st, "retry");
        cJSON_AddNumberToObject(r, "attempts", s->retry_attempts);
        cJSON_AddItemToObject(r, "nextAttemptTime", opt_time(s->next_retry_ms));
    } else {
        cJSON_AddNullToObject(st, "retry");
    }
    store_usage_json(&s->usage, st);
    store_containers_json(s, st);
    cJSON_AddItemToObject(o, "createdAt", opt_time(obj->created_ms));
    cJSON_AddItemToObject(o, "updatedAt", opt_time(obj->updated_ms));
    return o;
}

static entry_t *entry_of(const env_obj_t *obj)
{
    /* obj is the first member of entry_t. */
    return (entry_t *)(void *)obj;
}

/* A new rendering of the object's API JSON (caller frees). */
static char *render(const env_obj_t *obj, size_t *len)
{
    cJSON *j = obj_json(obj);
    char *json = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!json) {
        /* cJSON could not allocate: out of memory, handled as everywhere. */
        d8_die("out of memory");
    }
    *len = strlen(json);
    return json;
}

/*
 * Only objects read one by one (GET, PUT answers) keep their JSON: caching
 * every object's text (lists, watches, status updates) would double the
 * memory of a large desired set for little gain.
 */
const char *store_obj_json(store_t *st, const env_obj_t *obj, size_t *len)
{
    (void)st;
    entry_t *e = entry_of(obj);
    if (!e->json)
        e->json = render(obj, &e->json_len);
    if (len)
        *len = e->json_len;
    return e->json;
}

void store_obj_json_append(store_t *st, const env_obj_t *obj, d8_buf_t *out)
{
    (void)st;
    entry_t *e = entry_of(obj);
    if (e->json) {
        d8_buf_append(out, e->json, e->json_len);
        return;
    }
    size_t len;
    char *json = render(obj, &len);
    d8_buf_append(out, json, len);
    free(json);
}

/* ---- events ----------------------------------------------------------- */

static void deliver(store_t *st, const store_event_t *ev)
{
    st->delivering++;
    for (store_watcher_t *w = st->watchers; w; w = w->next)
        if (!w->removed)
            w->fn(w->ud, ev);
    st->delivering--;
    if (st->delivering == 0) {
        store_watcher_t **pp = &st->watchers;
        while (*pp) {
            if ((*pp)->removed) {
                store_watcher_t *dead = *pp;
                *pp = dead->next;
                free(dead);
            } else {
                pp = &(*pp)->next;
            }
        }
    }
}

/*
 * Records an event for e and notifies watchers. json (owned, moved into the
 * ring) is the object's rendering when the caller has it, else NULL.
 */
static void emit_json(store_t *st, entry_t *e, store_event_type_t type, char *json, size_t len,
                      int status_only)
{
    free(e->json);
    e->json = NULL;
    if (!json)
        json = render(&e->obj, &len);

    st->rv++;
    size_t idx;
    if (st->ring_len < st->ring_size) {
        idx = (st->ring_head + st->ring_len) % st->ring_size;
        st->ring_len++;
    } else {
        idx = st->ring_head;
        st->ring_head = (st->ring_head + 1) % st->ring_size;
    }
    ring_ev_t *r = &st->ring[idx];
    free(r->json);
    r->rv = st->rv;
    r->type = type;
    memcpy(r->id, e->obj.id, sizeof(r->id));
    r->json = json;
    r->json_len = len;

    store_event_t ev = {st->rv, type, r->id, r->json, r->json_len, status_only, st->in_sync};
    deliver(st, &ev);
}

static void emit(store_t *st, entry_t *e, store_event_type_t type)
{
    emit_json(st, e, type, NULL, 0, 0);
}

store_watcher_t *store_watch(store_t *st, store_watch_fn fn, void *ud)
{
    store_watcher_t *w = d8_xcalloc(1, sizeof(*w));
    w->fn = fn;
    w->ud = ud;
    w->next = st->watchers;
    st->watchers = w;
    return w;
}

void store_unwatch(store_t *st, store_watcher_t *w)
{
    if (!w)
        return;
    if (st->delivering) {
        w->removed = 1;
        return;
    }
    for (store_watcher_t **pp = &st->watchers; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            free(w);
            return;
        }
    }
}

int store_replay(const store_t *st, uint64_t since, store_watch_fn fn, void *ud)
{
    if (since >= st->rv)
        return D8_OK;
    /* The oldest event we still hold must directly follow `since`. */
    uint64_t oldest = st->ring_len ? st->ring[st->ring_head].rv : st->rv + 1;
    if (since + 1 < oldest)
        return D8_EGONE;
    if (!fn)
        return D8_OK;
    for (size_t i = 0; i < st->ring_len; i++) {
        const ring_ev_t *r = &st->ring[(st->ring_head + i) % st->ring_size];
        if (r->rv <= since)
            continue;
        store_event_t ev = {r->rv, r->type, r->id, r->json, r->json_len, 0, 0};
        fn(ud, &ev);
    }
    return D8_OK;
}

/* ---- desired-set listener and restore ----------------------------------- */

void store_on_desired_change(store_t *st, void (*fn)(void *ud), void *ud)
{
    st->desired_fn = fn;
    st->desired_ud = fn ? ud : NULL;
}

static void desired_changed(store_t *st)
{
    if (st->desired_fn)
        st->desired_fn(st->desired_ud);
}

void store_set_digest_key(store_t *st, const unsigned char *key, size_t keylen)
{
    if (st->digest_key)
        OPENSSL_cleanse(st->digest_key, st->digest_keylen);
    free(st->digest_key);
    st->digest_key = NULL;
    st->digest_keylen = 0;
    if (key && keylen) {
        st->digest_key = d8_xmalloc(keylen);
        memcpy(st->digest_key, key, keylen);
        st->digest_keylen = keylen;
    }
}

/*
 * 1 when spec equals the restored object's spec apart from secret values
 * and the digest of each secret value matches the saved one. The restored
 * spec holds NULL secret values, so spec_equal runs on a shallow copy of
 * spec whose secret entries carry the names only.
 */
static int matches_restored(const store_t *st, const env_obj_t *o, const env_spec_t *spec)
{
    if (spec->nsecret != o->spec.nsecret || !o->secret_digests)
        return 0;
    spec_kv_t *names = d8_xcalloc(spec->nsecret ? spec->nsecret : 1, sizeof(*names));
    for (size_t i = 0; i < spec->nsecret; i++)
        names[i].name = spec->secret_env[i].name;
    env_spec_t shallow = *spec;
    shallow.secret_env = names;
    int same = spec_equal(&o->spec, &shallow);
    free(names);
    for (size_t i = 0; same && i < spec->nsecret; i++) {
        char d[65];
        if (!spec->secret_env[i].value)
            return 0;
        spec_secret_digest(st->digest_key, st->digest_keylen, spec->secret_env[i].value, d);
        same = d8_consttime_eq(d, 64, o->secret_digests[i], strnlen(o->secret_digests[i], 65));
        OPENSSL_cleanse(d, sizeof(d));
    }
    return same;
}

/* ---- mutations -------------------------------------------------------- */

void store_set_phase(const char *id, env_status_t *s, env_phase_t to, const char *reason)
{
    if (s->phase == to)
        return;
    LOG(LOG_INFO, "phase", LF_S("env_id", id), LF_S("from", store_phase_name(s->phase)),
        LF_S("to", store_phase_name(to)), LF_S("reason", reason ? reason : ""));
    s->phase = to;
}

void store_set_condition(env_condition_t *c, cond_status_t status, const char *reason,
                         const char *message, int64_t now_ms)
{
    if (c->status != status || strcmp(c->reason, reason) != 0 || !c->last_transition_ms)
        c->last_transition_ms = now_ms;
    c->status = status;
    snprintf(c->reason, sizeof(c->reason), "%s", reason);
    free(c->message);
    c->message = message ? d8_xstrdup(message) : NULL;
}

static entry_t *new_entry(const char *id, int64_t now)
{
    entry_t *e = d8_xcalloc(1, sizeof(*e));
    snprintf(e->obj.id, sizeof(e->obj.id), "%s", id);
    e->obj.created_ms = now;
    e->obj.updated_ms = now;
    store_set_phase(e->obj.id, &e->obj.status, PHASE_CREATING, "Created");
    store_set_condition(&e->obj.status.ready, COND_UNKNOWN, "Creating",
                        "waiting for the controller to create the environment", now);
    store_set_condition(&e->obj.status.synced, COND_UNKNOWN, "Pending", "not reconciled yet", now);
    return e;
}

/*
 * Sticky fields: what the request left out keeps the stored value.
 * powerState keeps the current one (Next.js rows have no such column); an
 * omitted secretEnv keeps the stored secrets ({} clears them), less any
 * name the new spec now sets in env. Returns 1 when the inherited secret
 * values are unknown (a restored object), so it must stay restored.
 */
static int inherit_sticky(const env_obj_t *o, env_spec_t *spec)
{
    if (!spec->power_set)
        spec->power = o->spec.power;
    if (spec->secret_env_set || !o->has_spec)
        return 0;
    spec_kv_t *kv = d8_xcalloc(o->spec.nsecret + 1, sizeof(*kv));
    size_t n = 0;
    for (size_t i = 0; i < o->spec.nsecret; i++) {
        const spec_kv_t *sk = &o->spec.secret_env[i];
        int in_env = 0;
        for (size_t j = 0; j < spec->nenv && !in_env; j++)
            in_env = strcmp(spec->env[j].name, sk->name) == 0;
        if (in_env)
            continue;
        kv[n].name = d8_xstrdup(sk->name);
        kv[n].value = sk->value ? d8_xstrdup(sk->value) : NULL;
        n++;
    }
    free(spec->secret_env); /* an omitted secretEnv decoded to none */
    spec->secret_env = kv;
    spec->nsecret = n;
    return o->restored && n > 0;
}

/* A restored object keeps its unknown secrets under a new spec that may
 * hold fewer of them: its digests follow the new spec's order. */
static void realign_digests(env_obj_t *o, const env_spec_t *spec)
{
    char(*d)[65] = d8_xcalloc(spec->nsecret + 1, sizeof(*d));
    for (size_t i = 0; i < spec->nsecret; i++)
        for (size_t j = 0; j < o->spec.nsecret; j++)
            if (strcmp(o->spec.secret_env[j].name, spec->secret_env[i].name) == 0)
                memcpy(d[i], o->secret_digests[j], sizeof(d[i]));
    OPENSSL_cleanse(o->secret_digests, o->spec.nsecret * sizeof(*o->secret_digests));
    free(o->secret_digests);
    o->secret_digests = d;
}

/* A removed object is desired again: back to CREATING until the
 * reconciler says where it stands. */
static void revive(entry_t *e, int64_t now)
{
    e->obj.removed = 0;
    store_set_phase(e->obj.id, &e->obj.status, PHASE_CREATING, "DesiredAgain");
    store_set_condition(&e->obj.status.ready, COND_UNKNOWN, "Creating",
                        "desired again: waiting for the controller", now);
}

/* A full sync left e out: a visible deletion in progress whose resources
 * the reaper takes after their grace period. */
static void mark_removed(store_t *st, entry_t *e, int64_t now)
{
    e->obj.removed = 1;
    e->obj.updated_ms = now;
    store_set_phase(e->obj.id, &e->obj.status, PHASE_DELETING, "RemovedFromDesiredSet");
    store_set_condition(&e->obj.status.ready, COND_FALSE, "RemovedFromDesiredSet",
                        "removed from the desired set by a full sync: the reaper deletes its "
                        "resources after their grace period unless it is desired again",
                        now);
    emit(st, e, EV_MODIFIED);
    desired_changed(st);
}

int store_put(store_t *st, const char *id, env_spec_t *spec, int64_t if_match, int must_create,
              store_put_result_t *result, const env_obj_t **out)
{
    int unknown = 0;
    entry_t *e = lookup(st, id);
    int64_t now = d8_wall_ms();
    if (e && must_create)
        return D8_EEXIST;
    if (if_match >= 0 && (e ? e->obj.generation : 0) != if_match)
        return D8_ECONFLICT;
    if (e && e->obj.status.phase == PHASE_DELETING && !e->obj.removed)
        return D8_EGONE;
    int revived = e && e->obj.removed;
    if (revived)
        revive(e, now);
    if (!e) {
        e = new_entry(id, now);
        e->obj.generation = 1;
        e->obj.has_spec = 1;
        e->obj.spec = *spec;
        memset(spec, 0, sizeof(*spec));
        insert(st, e);
        *result = PUT_CREATED;
        emit(st, e, EV_ADDED);
        desired_changed(st);
    } else if ((unknown = inherit_sticky(&e->obj, spec)) && spec_equal(&e->obj.spec, spec)) {
        /* A restored object, its secrets left out: still unknown, nothing
         * changes. */
        spec_release(spec);
        *result = PUT_UNCHANGED;
        if (revived) {
            emit(st, e, EV_MODIFIED);
            desired_changed(st);
        }
    } else if (e->obj.restored && matches_restored(st, &e->obj, spec)) {
        /* The same spec as before the restart: adopt the secret values
         * without a new generation. */
        clear_restored(&e->obj);
        spec_release(&e->obj.spec);
        e->obj.spec = *spec;
        memset(spec, 0, sizeof(*spec));
        *result = PUT_UNCHANGED;
        emit(st, e, EV_MODIFIED);
        desired_changed(st);
    } else if (!e->obj.restored && spec_equal(&e->obj.spec, spec)) {
        spec_release(spec);
        *result = PUT_UNCHANGED;
        if (revived) {
            emit(st, e, EV_MODIFIED);
            desired_changed(st);
        }
    } else {
        /* Secrets left out of a restored object stay unknown: it stays
         * restored (observed only) until a request brings their values. */
        if (unknown)
            realign_digests(&e->obj, spec);
        else
            clear_restored(&e->obj);
        spec_release(&e->obj.spec);
        e->obj.spec = *spec;
        memset(spec, 0, sizeof(*spec));
        e->obj.generation++;
        e->obj.updated_ms = now;
        *result = PUT_UPDATED;
        emit(st, e, EV_MODIFIED);
        desired_changed(st);
    }
    if (out)
        *out = &e->obj;
    return D8_OK;
}

const env_obj_t *store_delete(store_t *st, const char *id)
{
    entry_t *e = lookup(st, id);
    int64_t now = d8_wall_ms();
    if (!e) {
        e = new_entry(id, now);
        store_set_phase(e->obj.id, &e->obj.status, PHASE_DELETING, "Deleting");
        store_set_condition(&e->obj.status.ready, COND_FALSE, "Deleting",
                            "deleting every Azure resource tagged with this id", now);
        insert(st, e);
        emit(st, e, EV_ADDED);
        desired_changed(st);
        return &e->obj;
    }
    if (e->obj.status.phase != PHASE_DELETING || e->obj.removed) {
        e->obj.removed = 0;
        store_set_phase(e->obj.id, &e->obj.status, PHASE_DELETING, "Deleting");
        e->obj.updated_ms = now;
        store_set_condition(&e->obj.status.ready, COND_FALSE, "Deleting",
                            "the environment is being deleted", now);
        emit(st, e, EV_MODIFIED);
        desired_changed(st);
    }
    return &e->obj;
}

static void remove_entry(store_t *st, entry_t *e)
{
    emit(st, e, EV_DELETED);
    unlink_entry(st, e);
    entry_free(e);
    desired_changed(st);
}

int store_remove(store_t *st, const char *id)
{
    entry_t *e = lookup(st, id);
    if (!e)
        return D8_ENOENT;
    remove_entry(st, e);
    return D8_OK;
}

int store_restart(store_t *st, const char *id, const env_obj_t **out)
{
    entry_t *e = lookup(st, id);
    if (!e)
        return D8_ENOENT;
    if (e->obj.status.phase == PHASE_DELETING || !e->obj.has_spec)
        return D8_EGONE;
    if (e->obj.apply_now_gen != e->obj.generation) {
        e->obj.apply_now_gen = e->obj.generation;
        emit(st, e, EV_MODIFIED);
    }
    if (out)
        *out = &e->obj;
    return D8_OK;
}

int store_set_power(store_t *st, const char *id, spec_power_t power, const env_obj_t **out)
{
    entry_t *e = lookup(st, id);
    if (!e)
        return D8_ENOENT;
    if (e->obj.status.phase == PHASE_DELETING || !e->obj.has_spec)
        return D8_EGONE;
    if (e->obj.spec.power != power) {
        e->obj.spec.power = power;
        e->obj.generation++;
        e->obj.updated_ms = d8_wall_ms();
        emit(st, e, EV_MODIFIED);
        desired_changed(st);
    }
    if (out)
        *out = &e->obj;
    return D8_OK;
}

int store_touch(store_t *st, const char *id, int64_t now_ms)
{
    entry_t *e = lookup(st, id);
    if (!e || !e->obj.has_spec)
        return D8_ENOENT;
    e->obj.status.last_activity_ms = now_ms;
    free(e->json);
    e->json = NULL;
    return D8_OK;
}

int store_touch_notify(store_t *st, const char *id, int64_t now_ms)
{
    int rc = store_touch(st, id, now_ms);
    if (rc == D8_OK)
        emit(st, lookup(st, id), EV_MODIFIED);
    return rc;
}

static int cmp_entry(const void *a, const void *b)
{
    const entry_t *x = *(entry_t *const *)a, *y = *(entry_t *const *)b;
    return strcmp(x->obj.id, y->obj.id);
}

static void ensure_sorted(store_t *st)
{
    if (st->sorted_valid)
        return;
    size_t count = st->byid.count;
    st->sorted = d8_xrealloc(st->sorted, (count ? count : 1) * sizeof(entry_t *));
    size_t n = 0, it = 0;
    entry_t *e;
    while ((e = d8_map_next(&st->byid, &it)))
        st->sorted[n++] = e;
    qsort(st->sorted, n, sizeof(entry_t *), cmp_entry);
    st->nsorted = n;
    st->sorted_valid = 1;
}

int store_restore(store_t *st, store_restore_item_t *item)
{
    if (lookup(st, item->id))
        return D8_EEXIST;
    if (!spec_id_valid(item->id) || (item->has_spec && item->generation < 1) ||
        (!item->has_spec && (!item->deleting || item->generation != 0)) ||
        (item->has_spec && item->spec.nsecret > 0 && !item->secret_digests))
        return D8_EINVAL;
    int64_t now = d8_wall_ms();
    entry_t *e = new_entry(item->id, now);
    env_obj_t *o = &e->obj;
    o->generation = item->generation;
    o->created_ms = item->created_ms ? item->created_ms : now;
    o->updated_ms = item->updated_ms ? item->updated_ms : now;
    if (item->has_spec) {
        o->has_spec = 1;
        o->spec = item->spec;
        memset(&item->spec, 0, sizeof(item->spec));
        /* Whatever the item held there, the values are unknown now. */
        for (size_t i = 0; i < o->spec.nsecret; i++) {
            char *v = o->spec.secret_env[i].value;
            if (v) {
                OPENSSL_cleanse(v, strlen(v));
                free(v);
                o->spec.secret_env[i].value = NULL;
            }
        }
        if (o->spec.nsecret > 0) {
            o->restored = 1;
            o->secret_digests = item->secret_digests;
            item->secret_digests = NULL;
        }
    } else {
        spec_release(&item->spec);
    }
    free(item->secret_digests);
    item->secret_digests = NULL;
    if (item->deleting) {
        store_set_phase(o->id, &o->status, PHASE_DELETING, "Restored");
        store_set_condition(&o->status.ready, COND_FALSE, "Deleting",
                            "the environment is being deleted (restored from the state file)", now);
    } else {
        store_set_condition(&o->status.synced, COND_UNKNOWN, "Pending",
                            o->restored ? "restored from the state file: waiting for a PUT or "
                                          "full sync to supply the secret values"
                                        : "restored from the state file; not reconciled yet",
                            now);
    }
    insert(st, e);
    return D8_OK;
}

void store_restore_finish(store_t *st, uint64_t saved_rv, int synced)
{
    if (saved_rv >= st->rv)
        st->rv = saved_rv + 1;
    if (synced)
        st->synced = 1;
}

int store_update_status(store_t *st, const char *id,
                        void (*fn)(void *ud, const env_obj_t *obj, env_status_t *status), void *ud)
{
    entry_t *e = lookup(st, id);
    if (!e)
        return D8_ENOENT;
    size_t before_len = e->json_len, after_len;
    char *before = e->json ? d8_xstrndup(e->json, e->json_len) : render(&e->obj, &before_len);
    fn(ud, &e->obj, &e->obj.status);
    char *after = render(&e->obj, &after_len);
    if (before_len != after_len || memcmp(before, after, after_len) != 0) {
        emit_json(st, e, EV_MODIFIED, after, after_len, 1);
    } else {
        free(after);
    }
    free(before);
    return D8_OK;
}

/* Whether o passes the filter (tombstones have no user or region). */
static int matches(const env_obj_t *o, const store_filter_t *f)
{
    if (!f)
        return 1;
    if (f->user_id && (!o->has_spec || strcmp(o->spec.user_id, f->user_id) != 0))
        return 0;
    if (f->cloud_region && (!o->has_spec || strcmp(o->spec.cloud_region, f->cloud_region) != 0))
        return 0;
    return f->phase < 0 || (int)o->status.phase == f->phase;
}

int store_list(store_t *st, const char *after, const store_filter_t *filter, size_t limit,
               void (*fn)(void *ud, const env_obj_t *obj), void *ud)
{
    ensure_sorted(st);
    size_t lo = 0, hi = st->nsorted;
    if (after && *after) {
        /* First index with id > after. */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (strcmp(st->sorted[mid]->obj.id, after) <= 0)
                lo = mid + 1;
            else
                hi = mid;
        }
    }
    size_t seen = 0;
    for (size_t i = lo; i < st->nsorted; i++) {
        const env_obj_t *o = &st->sorted[i]->obj;
        if (!matches(o, filter))
            continue;
        if (seen == limit)
            return 1;
        fn(ud, o);
        seen++;
    }
    return 0;
}

/* ---- for store_sync.c ------------------------------------------------------ */

void store__set_bulk(store_t *st, int on)
{
    st->in_sync = on;
}

int store__remove_from_set(store_t *st, const char *id)
{
    entry_t *e = lookup(st, id);
    /* Objects being deleted finish their deletion whatever the set says. */
    if (!e || e->obj.status.phase == PHASE_DELETING)
        return 0;
    mark_removed(st, e, d8_wall_ms());
    return 1;
}

void store__mark_synced(store_t *st)
{
    if (st->synced)
        return;
    /* A sync that changed nothing still makes the set authoritative. */
    st->synced = 1;
    desired_changed(st);
}
