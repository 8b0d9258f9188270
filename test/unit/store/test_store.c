/* Unit tests of pkg/store: generations, tombstones, resourceVersion,
 * full sync counts, listing order and filters, the watch ring. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/base.h"
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static env_spec_t mkspec(const char *user, int cpu_halves)
{
    env_spec_t s;
    memset(&s, 0, sizeof(s));
    s.user_id = d8_xstrdup(user);
    s.name = d8_xstrdup("ws");
    s.cloud_region = d8_xstrdup("eastus");
    s.base_image = d8_xstrdup("node");
    s.cpu_halves = cpu_halves;
    s.memory_halves = 8;
    s.storage_gb = 20;
    /* A full spec, as a body naming every field decodes. */
    s.power_set = 1;
    s.secret_env_set = 1;
    return s;
}

static void put_ok(store_t *st, const char *id, const char *user, int cpu, store_put_result_t want)
{
    env_spec_t s = mkspec(user, cpu);
    store_put_result_t r;
    assert_int_equal(store_put(st, id, &s, -1, 0, &r, NULL), D8_OK);
    assert_int_equal(r, want);
    spec_release(&s);
}

static void count_bulk(void *ud, const store_event_t *ev)
{
    ((int *)ud)[ev->bulk ? 1 : 0]++;
}

/* The full sync in steps: the same outcome as store_sync, bulk events only
 * inside the steps, and an object a PUT creates between two steps is
 * ordered after the sync (not removed by it). */
static void test_full_sync_in_steps(void **state)
{
    (void)state;
    store_t *st = store_new(64);
    for (int i = 0; i < 10; i++) {
        char id[16];
        snprintf(id, sizeof(id), "old-%d", i);
        put_ok(st, id, "u", 4, PUT_CREATED);
    }
    enum { N = 25 };
    store_sync_item_t items[N];
    memset(items, 0, sizeof(items));
    for (int i = 0; i < N; i++) {
        /* old-0..old-4 stay (old-0 changes), old-5..old-9 leave. */
        if (i < 5)
            snprintf(items[i].id, sizeof(items[i].id), "old-%d", i);
        else
            snprintf(items[i].id, sizeof(items[i].id), "new-%02d", i);
        items[i].spec = mkspec("u", i == 0 ? 8 : 4);
    }
    store_sync_run_t *run = store_sync_begin(st, items, N);
    int steps = 0, bulk[2] = {0, 0};
    store_watcher_t *w = store_watch(st, count_bulk, bulk);
    while (!store_sync_step(st, run, 3)) {
        steps++;
        if (steps == 2)
            put_ok(st, "between", "u", 4, PUT_CREATED); /* not bulk */
        assert_false(store_synced(st));
    }
    store_unwatch(st, w);
    assert_true(steps >= (10 + N) / 3 - 1);
    assert_int_equal(bulk[0], 1);
    store_sync_counts_t n;
    store_sync_end(st, run, &n);
    assert_true(store_synced(st));
    assert_int_equal(n.created, 20);
    assert_int_equal(n.updated, 1);
    assert_int_equal(n.unchanged, 4);
    assert_int_equal(n.removed, 5);
    assert_true(store_desired(st, "between"));
    assert_true(store_desired(st, "old-4"));
    assert_false(store_desired(st, "old-5"));
    assert_true(store_desired(st, "new-24"));
    assert_int_equal(store_get(st, "old-0")->generation, 2);
    store_free(st);
}

static void test_generation_bumps_only_on_change(void **state)
{
    (void)state;
    store_t *st = store_new(16);
    put_ok(st, "env-a", "u1", 4, PUT_CREATED);
    assert_int_equal(store_get(st, "env-a")->generation, 1);
    assert_int_equal(store_rv(st), 1);
    put_ok(st, "env-a", "u1", 4, PUT_UNCHANGED);
    assert_int_equal(store_get(st, "env-a")->generation, 1);
    assert_int_equal(store_rv(st), 1);
    put_ok(st, "env-a", "u1", 6, PUT_UPDATED);
    assert_int_equal(store_get(st, "env-a")->generation, 2);
    assert_int_equal(store_rv(st), 2);
    assert_int_equal(store_get(st, "env-a")->status.phase, PHASE_CREATING);
    store_free(st);
}

static void test_if_match_and_create_only(void **state)
{
    (void)state;
    store_t *st = store_new(16);
    env_spec_t s = mkspec("u", 4);
    store_put_result_t r;
    /* If-Match 0: must not exist yet. */
    assert_int_equal(store_put(st, "x", &s, 0, 0, &r, NULL), D8_OK);
    s = mkspec("u", 6);
    assert_int_equal(store_put(st, "x", &s, 5, 0, &r, NULL), D8_ECONFLICT);
    assert_non_null(s.user_id); /* left with the caller on failure */
    assert_int_equal(store_put(st, "x", &s, 1, 1, &r, NULL), D8_EEXIST);
    assert_int_equal(store_put(st, "x", &s, 1, 0, &r, NULL), D8_OK);
    assert_int_equal(r, PUT_UPDATED);
    assert_int_equal(store_get(st, "x")->generation, 2);
    store_free(st);
}

static void test_delete_and_tombstone(void **state)
{
    (void)state;
    store_t *st = store_new(16);
    put_ok(st, "a", "u", 4, PUT_CREATED);
    const env_obj_t *o = store_delete(st, "a");
    assert_int_equal(o->status.phase, PHASE_DELETING);
    /* Deleting twice is idempotent: no new event. */
    uint64_t rv = store_rv(st);
    store_delete(st, "a");
    assert_int_equal(store_rv(st), rv);
    env_spec_t s = mkspec("u", 4);
    store_put_result_t r;
    assert_int_equal(store_put(st, "a", &s, -1, 0, &r, NULL), D8_EGONE);
    spec_release(&s);
    assert_int_equal(store_set_power(st, "a", SPEC_POWER_STOPPED, NULL), D8_EGONE);
    /* Unknown id: a tombstone without spec. */
    o = store_delete(st, "ghost");
    assert_int_equal(o->has_spec, 0);
    assert_int_equal(o->generation, 0);
    assert_int_equal(o->status.phase, PHASE_DELETING);
    assert_int_equal(store_count(st), 2);
    assert_int_equal(store_remove(st, "ghost"), D8_OK);
    assert_int_equal(store_remove(st, "ghost"), D8_ENOENT);
    assert_null(store_get(st, "ghost"));
    store_free(st);
}

static void test_power_and_touch(void **state)
{
    (void)state;
    store_t *st = store_new(16);
    put_ok(st, "a", "u", 4, PUT_CREATED);
    const env_obj_t *o;
    assert_int_equal(store_set_power(st, "a", SPEC_POWER_STOPPED, &o), D8_OK);
    assert_int_equal(o->generation, 2);
    assert_int_equal(store_set_power(st, "a", SPEC_POWER_STOPPED, &o), D8_OK);
    assert_int_equal(o->generation, 2);
    assert_int_equal(store_set_power(st, "zz", SPEC_POWER_STOPPED, &o), D8_ENOENT);
    uint64_t rv = store_rv(st);
    assert_int_equal(store_touch(st, "a", 1234000), D8_OK);
    assert_int_equal(store_rv(st), rv);
    assert_int_equal(store_get(st, "a")->status.last_activity_ms, 1234000);
    assert_non_null(strstr(store_obj_json(st, store_get(st, "a"), NULL), "1970-01-01T00:20:34Z"));
    assert_int_equal(store_touch(st, "nope", 1), D8_ENOENT);
    store_free(st);
}

static void test_many_objects_and_removal(void **state)
{
    (void)state;
    store_t *st = store_new(4);
    char id[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof(id), "e%05d", i);
        put_ok(st, id, i % 2 ? "odd" : "even", 4, PUT_CREATED);
    }
    assert_int_equal(store_count(st), 5000);
    for (int i = 0; i < 5000; i += 3) {
        snprintf(id, sizeof(id), "e%05d", i);
        assert_int_equal(store_remove(st, id), D8_OK);
    }
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof(id), "e%05d", i);
        if (i % 3 == 0)
            assert_null(store_get(st, id));
        else
            assert_non_null(store_get(st, id));
    }
    store_free(st);
}

typedef struct collect {
    char ids[16][SPEC_ID_MAX + 1];
    size_t n;
} collect_t;

static void collect_fn(void *ud, const env_obj_t *o)
{
    collect_t *c = ud;
    snprintf(c->ids[c->n++], SPEC_ID_MAX + 1, "%s", o->id);
}

static void test_list_order_filters_and_paging(void **state)
{
    (void)state;
    store_t *st = store_new(16);
    put_ok(st, "c", "u1", 4, PUT_CREATED);
    put_ok(st, "a", "u2", 4, PUT_CREATED);
    put_ok(st, "b", "u1", 4, PUT_CREATED);
    store_delete(st, "d");
    collect_t c = {0};
    int more = store_list(st, NULL, NULL, 2, collect_fn, &c);
    assert_int_equal(more, 1);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.ids[0], "a");
    assert_string_equal(c.ids[1], "b");
    memset(&c, 0, sizeof(c));
    more = store_list(st, "b", NULL, 2, collect_fn, &c);
    assert_int_equal(more, 0);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.ids[0], "c");
    assert_string_equal(c.ids[1], "d");
    memset(&c, 0, sizeof(c));
    store_list(st, NULL, &(store_filter_t){"u1", NULL, -1}, 10, collect_fn, &c);
    assert_int_equal(c.n, 2);
    memset(&c, 0, sizeof(c));
    store_list(st, NULL, &(store_filter_t){NULL, NULL, PHASE_DELETING}, 10, collect_fn, &c);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.ids[0], "d");
    store_free(st);
}

static void test_full_sync_counts(void **state)
{
    (void)state;
    store_t *st = store_new(64);
    put_ok(st, "keep", "u", 4, PUT_CREATED);
    put_ok(st, "change", "u", 4, PUT_CREATED);
    put_ok(st, "gone", "u", 4, PUT_CREATED);
    put_ok(st, "dying", "u", 4, PUT_CREATED);
    store_delete(st, "dying");
    assert_false(store_synced(st));
    store_sync_item_t items[4];
    memset(items, 0, sizeof(items));
    snprintf(items[0].id, sizeof(items[0].id), "keep");
    items[0].spec = mkspec("u", 4);
    snprintf(items[1].id, sizeof(items[1].id), "change");
    items[1].spec = mkspec("u", 8);
    snprintf(items[2].id, sizeof(items[2].id), "new");
    items[2].spec = mkspec("u", 4);
    snprintf(items[3].id, sizeof(items[3].id), "dying");
    items[3].spec = mkspec("u", 4);
    store_sync_counts_t n;
    int bulk[2] = {0, 0}; /* events of the sync: [0] single, [1] bulk */
    store_watcher_t *w = store_watch(st, count_bulk, bulk);
    store_sync(st, items, 4, &n);
    store_unwatch(st, w);
    /* Every event of a full sync is bulk work (the reconciler serves one
     * user's PUT before it). */
    assert_int_equal(bulk[0], 0);
    assert_true(bulk[1] >= 3);
    w = store_watch(st, count_bulk, bulk);
    put_ok(st, "single", "u", 4, PUT_CREATED);
    store_unwatch(st, w);
    assert_int_equal(bulk[0], 1);
    assert_int_equal(n.created, 1);
    assert_int_equal(n.updated, 1);
    assert_int_equal(n.unchanged, 2);
    assert_int_equal(n.removed, 1);
    assert_true(store_synced(st));
    /* Left out: a visible deletion the reaper finishes, not gone at once. */
    const env_obj_t *gone = store_get(st, "gone");
    assert_non_null(gone);
    assert_true(gone->removed);
    assert_int_equal(gone->status.phase, PHASE_DELETING);
    assert_string_equal(gone->status.ready.reason, "RemovedFromDesiredSet");
    assert_false(store_get(st, "dying")->removed);
    assert_int_equal(store_get(st, "dying")->status.phase, PHASE_DELETING);
    assert_int_equal(store_get(st, "change")->generation, 2);
    for (int i = 0; i < 4; i++)
        spec_release(&items[i].spec);
    /* The same sync again removes only what was PUT since ("single"). */
    store_sync_item_t again[3];
    memset(again, 0, sizeof(again));
    const char *keep[] = {"keep", "change", "new"};
    for (int i = 0; i < 3; i++) {
        snprintf(again[i].id, sizeof(again[i].id), "%s", keep[i]);
        again[i].spec = mkspec("u", i == 1 ? 8 : 4);
    }
    store_sync(st, again, 3, &n);
    assert_int_equal(n.removed, 1);
    assert_int_equal(n.unchanged, 3);
    for (int i = 0; i < 3; i++)
        spec_release(&again[i].spec);
    /* A PUT brings a removed object back, same generation for the same spec. */
    int64_t gen = gone->generation;
    put_ok(st, "gone", "u", 4, PUT_UNCHANGED);
    gone = store_get(st, "gone");
    assert_false(gone->removed);
    assert_int_equal(gone->status.phase, PHASE_CREATING);
    assert_int_equal(gone->generation, gen);
    /* An explicit DELETE of a removed object is a deletion now. */
    store_sync(st, again, 0, &n);
    assert_true(store_get(st, "gone")->removed);
    store_delete(st, "gone");
    assert_false(store_get(st, "gone")->removed);
    assert_int_equal(store_get(st, "gone")->status.phase, PHASE_DELETING);
    env_spec_t s = mkspec("u", 4);
    store_put_result_t pr;
    assert_int_equal(store_put(st, "gone", &s, -1, 0, &pr, NULL), D8_EGONE);
    spec_release(&s);
    store_free(st);
}

typedef struct evlog {
    uint64_t rv[32];
    store_event_type_t type[32];
    char id[32][SPEC_ID_MAX + 1];
    size_t n;
    store_t *st;
    store_watcher_t *self;
} evlog_t;

static void ev_fn(void *ud, const store_event_t *ev)
{
    evlog_t *l = ud;
    l->rv[l->n] = ev->rv;
    l->type[l->n] = ev->type;
    snprintf(l->id[l->n], SPEC_ID_MAX + 1, "%s", ev->id);
    assert_non_null(strstr(ev->json, ev->id));
    l->n++;
}

static void ev_unwatch_self(void *ud, const store_event_t *ev)
{
    evlog_t *l = ud;
    ev_fn(ud, ev);
    store_unwatch(l->st, l->self);
}

static void test_watch_and_replay(void **state)
{
    (void)state;
    store_t *st = store_new(3);
    evlog_t live = {0};
    store_watcher_t *w = store_watch(st, ev_fn, &live);
    evlog_t once = {0};
    once.st = st;
    once.self = store_watch(st, ev_unwatch_self, &once);
    put_ok(st, "a", "u", 4, PUT_CREATED);
    put_ok(st, "a", "u", 6, PUT_UPDATED);
    store_delete(st, "a");
    store_remove(st, "a");
    assert_int_equal(once.n, 1);
    assert_int_equal(live.n, 4);
    assert_int_equal(live.type[0], EV_ADDED);
    assert_int_equal(live.type[1], EV_MODIFIED);
    assert_int_equal(live.type[2], EV_MODIFIED);
    assert_int_equal(live.type[3], EV_DELETED);
    assert_int_equal(live.rv[3], 4);
    /* Ring of 3 holds rv 2..4: resuming from 1 works, from 0 is gone. */
    evlog_t rep = {0};
    assert_int_equal(store_replay(st, 1, ev_fn, &rep), D8_OK);
    assert_int_equal(rep.n, 3);
    assert_int_equal(rep.rv[0], 2);
    assert_int_equal(store_replay(st, 0, ev_fn, &rep), D8_EGONE);
    assert_int_equal(store_replay(st, 0, NULL, NULL), D8_EGONE);
    memset(&rep, 0, sizeof(rep));
    assert_int_equal(store_replay(st, 4, ev_fn, &rep), D8_OK);
    assert_int_equal(rep.n, 0);
    store_unwatch(st, w);
    store_free(st);
}

static void set_running(void *ud, const env_obj_t *obj, env_status_t *s)
{
    (void)obj;
    int *calls = ud;
    (*calls)++;
    s->phase = PHASE_RUNNING;
    store_set_condition(&s->ready, COND_TRUE, "Available", "up", 1000);
}

static void no_change(void *ud, const env_obj_t *obj, env_status_t *s)
{
    (void)ud;
    (void)obj;
    (void)s;
}

static void last_status_only(void *ud, const store_event_t *ev)
{
    *(int *)ud = ev->status_only;
}

static void test_status_update_emits_only_on_change(void **state)
{
    (void)state;
    store_t *st = store_new(8);
    int status_only = -1;
    store_watcher_t *w = store_watch(st, last_status_only, &status_only);
    put_ok(st, "a", "u", 4, PUT_CREATED);
    assert_int_equal(status_only, 0);
    int calls = 0;
    uint64_t rv = store_rv(st);
    assert_int_equal(store_update_status(st, "a", set_running, &calls), D8_OK);
    assert_int_equal(store_rv(st), rv + 1);
    /* The reconciler tells its own status writes from desired changes. */
    assert_int_equal(status_only, 1);
    store_unwatch(st, w);
    assert_int_equal(store_update_status(st, "a", no_change, NULL), D8_OK);
    assert_int_equal(store_rv(st), rv + 1);
    assert_int_equal(store_update_status(st, "zz", no_change, NULL), D8_ENOENT);
    const char *json = store_obj_json(st, store_get(st, "a"), NULL);
    assert_non_null(strstr(json, "\"phase\":\"RUNNING\""));
    assert_non_null(strstr(json, "\"reason\":\"Available\""));
    store_free(st);
}

static void test_secret_values_never_in_json(void **state)
{
    (void)state;
    store_t *st = store_new(8);
    env_spec_t s = mkspec("u", 4);
    s.secret_env = d8_xcalloc(1, sizeof(spec_kv_t));
    s.secret_env[0].name = d8_xstrdup("GITHUB_TOKEN");
    s.secret_env[0].value = d8_xstrdup("ghp_supersecretvalue");
    s.nsecret = 1;
    store_put_result_t r;
    assert_int_equal(store_put(st, "a", &s, -1, 0, &r, NULL), D8_OK);
    const char *json = store_obj_json(st, store_get(st, "a"), NULL);
    assert_null(strstr(json, "ghp_supersecretvalue"));
    assert_non_null(strstr(json, "GITHUB_TOKEN"));
    assert_non_null(strstr(json, SPEC_REDACTED));
    store_free(st);
}

static spec_kv_t *one_secret(const char *name, const char *value)
{
    spec_kv_t *kv = d8_xcalloc(1, sizeof(*kv));
    kv->name = d8_xstrdup(name);
    kv->value = value ? d8_xstrdup(value) : NULL;
    return kv;
}

/* A restore item for id with one secret whose saved digest is that of `value`. */
static store_restore_item_t restore_item(const char *id, int64_t gen, const char *value,
                                         const unsigned char *key, size_t keylen)
{
    store_restore_item_t it;
    memset(&it, 0, sizeof(it));
    snprintf(it.id, sizeof(it.id), "%s", id);
    it.generation = gen;
    it.has_spec = 1;
    it.spec = mkspec("u", 4);
    /* Whatever the item holds as a value is dropped: use a decoy. */
    it.spec.secret_env = one_secret("TOKEN", "<redacted>");
    it.spec.nsecret = 1;
    it.secret_digests = d8_xcalloc(1, sizeof(*it.secret_digests));
    spec_secret_digest(key, keylen, value, it.secret_digests[0]);
    it.created_ms = 1000;
    it.updated_ms = 2000;
    return it;
}

static void put_secret(store_t *st, const char *id, int cpu, const char *value, int rc_want,
                       store_put_result_t want)
{
    env_spec_t s = mkspec("u", cpu);
    s.secret_env = one_secret("TOKEN", value);
    s.nsecret = 1;
    store_put_result_t r;
    assert_int_equal(store_put(st, id, &s, -1, 0, &r, NULL), rc_want);
    if (rc_want == D8_OK)
        assert_int_equal(r, want);
    spec_release(&s);
}

/* Omitted powerState and secretEnv keep what is stored (Next.js rows have
 * no powerState column and keep tokens elsewhere); {} clears secrets; a
 * new environment defaults to Running without secrets. */
static void test_sticky_power_and_secrets(void **state)
{
    (void)state;
    store_t *st = store_new(16);
    env_spec_t s = mkspec("u", 4);
    s.power = SPEC_POWER_STOPPED;
    s.secret_env = one_secret("TOKEN", "ghp_1");
    s.nsecret = 1;
    store_put_result_t r;
    assert_int_equal(store_put(st, "e", &s, -1, 0, &r, NULL), D8_OK);
    spec_release(&s);
    /* A sync-style spec naming neither: nothing changes. */
    s = mkspec("u", 4);
    s.power_set = s.secret_env_set = 0;
    assert_int_equal(store_put(st, "e", &s, -1, 0, &r, NULL), D8_OK);
    assert_int_equal(r, PUT_UNCHANGED);
    spec_release(&s);
    const env_obj_t *o = store_get(st, "e");
    assert_int_equal(o->generation, 1);
    assert_int_equal(o->spec.power, SPEC_POWER_STOPPED);
    assert_int_equal(o->spec.nsecret, 1);
    assert_string_equal(o->spec.secret_env[0].value, "ghp_1");
    /* A real change keeps both too. */
    s = mkspec("u", 6);
    s.power_set = s.secret_env_set = 0;
    assert_int_equal(store_put(st, "e", &s, -1, 0, &r, NULL), D8_OK);
    assert_int_equal(r, PUT_UPDATED);
    spec_release(&s);
    o = store_get(st, "e");
    assert_int_equal(o->spec.power, SPEC_POWER_STOPPED);
    assert_string_equal(o->spec.secret_env[0].value, "ghp_1");
    /* A name moved to env leaves the inherited secrets. */
    s = mkspec("u", 6);
    s.power_set = s.secret_env_set = 0;
    s.env = one_secret("TOKEN", "plain");
    s.nenv = 1;
    assert_int_equal(store_put(st, "e", &s, -1, 0, &r, NULL), D8_OK);
    spec_release(&s);
    o = store_get(st, "e");
    assert_int_equal(o->spec.nsecret, 0);
    /* {} clears; an explicit powerState applies. */
    s = mkspec("u", 6);
    s.power = SPEC_POWER_RUNNING;
    s.secret_env_set = 1;
    assert_int_equal(store_put(st, "e", &s, -1, 0, &r, NULL), D8_OK);
    spec_release(&s);
    o = store_get(st, "e");
    assert_int_equal(o->spec.power, SPEC_POWER_RUNNING);
    assert_int_equal(o->spec.nsecret, 0);
    /* New: Running, no secrets. */
    s = mkspec("u", 4);
    s.power_set = s.secret_env_set = 0;
    assert_int_equal(store_put(st, "f", &s, -1, 0, &r, NULL), D8_OK);
    spec_release(&s);
    assert_int_equal(store_get(st, "f")->spec.power, SPEC_POWER_RUNNING);
    store_free(st);
}

/* A restored object whose secrets a request leaves out keeps them unknown:
 * it stays restored (never created without its values) even when other
 * fields change, and a later request with the values is adopted. */
static void test_restored_secrets_stay_unknown_when_omitted(void **state)
{
    (void)state;
    static const unsigned char key[] = "k3y";
    store_t *st = store_new(16);
    store_set_digest_key(st, key, sizeof(key) - 1);
    store_restore_item_t a = restore_item("a", 5, "s3cret", key, sizeof(key) - 1);
    assert_int_equal(store_restore(st, &a), D8_OK);
    store_restore_finish(st, 1, 1);
    env_spec_t s = mkspec("u", 4);
    s.secret_env_set = 0;
    store_put_result_t r;
    assert_int_equal(store_put(st, "a", &s, -1, 0, &r, NULL), D8_OK);
    spec_release(&s);
    assert_int_equal(r, PUT_UNCHANGED);
    assert_true(store_get(st, "a")->restored);
    s = mkspec("u", 6);
    s.secret_env_set = 0;
    assert_int_equal(store_put(st, "a", &s, -1, 0, &r, NULL), D8_OK);
    spec_release(&s);
    assert_int_equal(r, PUT_UPDATED);
    const env_obj_t *o = store_get(st, "a");
    assert_true(o->restored);
    assert_int_equal(o->spec.nsecret, 1);
    assert_null(o->spec.secret_env[0].value);
    /* The values arrive with the same spec: adopted (a new generation,
     * since cpu changed before). */
    put_secret(st, "a", 6, "s3cret", D8_OK, PUT_UNCHANGED);
    o = store_get(st, "a");
    assert_false(o->restored);
    assert_string_equal(o->spec.secret_env[0].value, "s3cret");
    store_free(st);
}

static void count_fn(void *ud)
{
    (*(int *)ud)++;
}

static void test_restore_and_adopt_secrets(void **state)
{
    (void)state;
    static const unsigned char key[] = "k3y";
    store_t *st = store_new(16);
    store_set_digest_key(st, key, sizeof(key) - 1);
    evlog_t log = {0};
    store_watcher_t *w = store_watch(st, ev_fn, &log);

    store_restore_item_t a = restore_item("a", 5, "s3cret", key, sizeof(key) - 1);
    store_restore_item_t b = restore_item("b", 3, "s3cret", key, sizeof(key) - 1);
    store_restore_item_t c = restore_item("c", 7, "s3cret", key, sizeof(key) - 1);
    assert_int_equal(store_restore(st, &a), D8_OK);
    assert_int_equal(store_restore(st, &b), D8_OK);
    assert_int_equal(store_restore(st, &c), D8_OK);
    assert_null(a.spec.user_id); /* moved in */
    assert_null(a.secret_digests);
    /* A restore emits nothing and does not move the resourceVersion. */
    assert_int_equal(log.n, 0);
    assert_int_equal(store_rv(st), 0);
    assert_false(store_synced(st));
    store_restore_finish(st, 41, 1);
    assert_int_equal(store_rv(st), 42);
    assert_true(store_synced(st));
    /* Events of the previous run are gone. */
    assert_int_equal(store_replay(st, 41, NULL, NULL), D8_EGONE);

    const env_obj_t *o = store_get(st, "a");
    assert_int_equal(o->generation, 5);
    assert_int_equal(o->restored, 1);
    assert_int_equal(o->created_ms, 1000);
    assert_int_equal(o->updated_ms, 2000);
    assert_null(o->spec.secret_env[0].value);
    assert_non_null(o->secret_digests);
    assert_int_equal(o->status.phase, PHASE_CREATING);
    const char *json = store_obj_json(st, o, NULL);
    assert_non_null(strstr(json, SPEC_REDACTED));

    /* Same spec, same secret: values adopted, generation kept. */
    put_secret(st, "a", 4, "s3cret", D8_OK, PUT_UNCHANGED);
    o = store_get(st, "a");
    assert_int_equal(o->generation, 5);
    assert_int_equal(o->restored, 0);
    assert_null(o->secret_digests);
    assert_string_equal(o->spec.secret_env[0].value, "s3cret");
    /* The reconciler learns that the object became actionable. */
    assert_int_equal(log.n, 1);
    assert_int_equal(log.type[0], EV_MODIFIED);
    /* From now on an ordinary object. */
    put_secret(st, "a", 4, "s3cret", D8_OK, PUT_UNCHANGED);
    assert_int_equal(log.n, 1);

    /* Another secret value: an update. */
    put_secret(st, "b", 4, "other", D8_OK, PUT_UPDATED);
    o = store_get(st, "b");
    assert_int_equal(o->generation, 4);
    assert_int_equal(o->restored, 0);
    assert_string_equal(o->spec.secret_env[0].value, "other");

    /* Same secret, another field: an update too. */
    put_secret(st, "c", 6, "s3cret", D8_OK, PUT_UPDATED);
    assert_int_equal(store_get(st, "c")->generation, 8);
    assert_int_equal(store_get(st, "c")->restored, 0);

    /* The id exists: refused, the item stays with the caller. */
    store_restore_item_t dup = restore_item("a", 1, "x", key, sizeof(key) - 1);
    assert_int_equal(store_restore(st, &dup), D8_EEXIST);
    assert_non_null(dup.spec.user_id);
    spec_release(&dup.spec);
    free(dup.secret_digests);

    store_unwatch(st, w);
    store_free(st);
}

static void test_restore_sync_tombstone_and_errors(void **state)
{
    (void)state;
    store_t *st = store_new(16);
    /* No key set: digests use the empty key. */
    store_restore_item_t a = restore_item("a", 2, "v", NULL, 0);
    assert_int_equal(store_restore(st, &a), D8_OK);

    store_restore_item_t t;
    memset(&t, 0, sizeof(t));
    snprintf(t.id, sizeof(t.id), "ghost");
    t.deleting = 1;
    assert_int_equal(store_restore(st, &t), D8_OK);
    const env_obj_t *o = store_get(st, "ghost");
    assert_int_equal(o->has_spec, 0);
    assert_int_equal(o->status.phase, PHASE_DELETING);

    store_restore_item_t d = restore_item("d", 1, "v", NULL, 0);
    d.deleting = 1;
    assert_int_equal(store_restore(st, &d), D8_OK);
    assert_int_equal(store_get(st, "d")->status.phase, PHASE_DELETING);

    /* Inconsistent items. */
    store_restore_item_t bad;
    memset(&bad, 0, sizeof(bad));
    snprintf(bad.id, sizeof(bad.id), "x");
    assert_int_equal(store_restore(st, &bad), D8_EINVAL); /* tombstone not deleting */
    bad = restore_item("x", 0, "v", NULL, 0);
    assert_int_equal(store_restore(st, &bad), D8_EINVAL); /* generation 0 with a spec */
    bad.generation = 1;
    free(bad.secret_digests);
    bad.secret_digests = NULL;
    assert_int_equal(store_restore(st, &bad), D8_EINVAL); /* secrets without digests */
    snprintf(bad.id, sizeof(bad.id), "Bad--id");
    assert_int_equal(store_restore(st, &bad), D8_EINVAL);
    spec_release(&bad.spec);

    /* A full sync adopts secret values just like a PUT. */
    store_sync_item_t items[1];
    memset(items, 0, sizeof(items));
    snprintf(items[0].id, sizeof(items[0].id), "a");
    items[0].spec = mkspec("u", 4);
    items[0].spec.secret_env = one_secret("TOKEN", "v");
    items[0].spec.nsecret = 1;
    store_sync_counts_t n;
    store_sync(st, items, 1, &n);
    assert_int_equal(n.unchanged, 1);
    assert_int_equal(n.updated, 0);
    assert_int_equal(n.removed, 0); /* ghost and d are being deleted: kept */
    assert_int_equal(store_get(st, "a")->generation, 2);
    assert_int_equal(store_get(st, "a")->restored, 0);
    spec_release(&items[0].spec);
    store_free(st);
}

static void set_error(void *ud, const env_obj_t *obj, env_status_t *s)
{
    (void)ud;
    (void)obj;
    s->phase = PHASE_ERROR;
}

static void test_desired_change_listener(void **state)
{
    (void)state;
    store_t *st = store_new(16);
    int calls = 0;
    store_on_desired_change(st, count_fn, &calls);
    put_ok(st, "a", "u", 4, PUT_CREATED);
    assert_int_equal(calls, 1);
    put_ok(st, "a", "u", 4, PUT_UNCHANGED);
    assert_int_equal(calls, 1);
    put_ok(st, "a", "u", 6, PUT_UPDATED);
    assert_int_equal(calls, 2);
    /* Status and activity are not part of the desired set. */
    store_update_status(st, "a", set_error, NULL);
    store_touch(st, "a", 5);
    assert_int_equal(calls, 2);
    store_set_power(st, "a", SPEC_POWER_STOPPED, NULL);
    assert_int_equal(calls, 3);
    store_set_power(st, "a", SPEC_POWER_STOPPED, NULL);
    assert_int_equal(calls, 3);
    store_delete(st, "a");
    assert_int_equal(calls, 4);
    store_delete(st, "a");
    assert_int_equal(calls, 4);
    store_remove(st, "a");
    assert_int_equal(calls, 5);
    /* A full sync that changes nothing still flips synced once. */
    store_sync_counts_t n;
    store_sync(st, NULL, 0, &n);
    assert_int_equal(calls, 6);
    store_sync(st, NULL, 0, &n);
    assert_int_equal(calls, 6);
    store_on_desired_change(st, NULL, NULL);
    put_ok(st, "b", "u", 4, PUT_CREATED);
    assert_int_equal(calls, 6);
    store_free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generation_bumps_only_on_change),
        cmocka_unit_test(test_if_match_and_create_only),
        cmocka_unit_test(test_delete_and_tombstone),
        cmocka_unit_test(test_power_and_touch),
        cmocka_unit_test(test_many_objects_and_removal),
        cmocka_unit_test(test_list_order_filters_and_paging),
        cmocka_unit_test(test_full_sync_counts),
        cmocka_unit_test(test_full_sync_in_steps),
        cmocka_unit_test(test_watch_and_replay),
        cmocka_unit_test(test_status_update_emits_only_on_change),
        cmocka_unit_test(test_secret_values_never_in_json),
        cmocka_unit_test(test_restore_and_adopt_secrets),
        cmocka_unit_test(test_sticky_power_and_secrets),
        cmocka_unit_test(test_restored_secrets_stay_unknown_when_omitted),
        cmocka_unit_test(test_restore_sync_tombstone_and_errors),
        cmocka_unit_test(test_desired_change_listener),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
