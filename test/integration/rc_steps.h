/*
 * Steps shared by the end-to-end reconcile tests (test_reconcile*.c,
 * test_azure_*.c): they assert with cmocka, so they live here rather than
 * in agent_fixture.c, which has no cmocka dependency. Include after
 * <cmocka.h> and "agent_fixture.h". static inline: a file uses what it
 * needs without unused-function warnings.
 */
#ifndef D8_RC_STEPS_H
#define D8_RC_STEPS_H

/* The ta_rc_t of a test set up with ta_rc_setup*. */
static inline ta_rc_t *ctx(void **state)
{
    return *state;
}

/* Both processes exit 0 on SIGTERM (a sanitized build: and without leaks). */
static inline void both_exit_cleanly(void **state)
{
    assert_int_equal(ta_rc_stop(ctx(state)), 0);
}

/* The environment once it reaches `phase` (owned); fails the test at the timeout. */
static inline cJSON *wait_phase(ta_rc_t *c, const char *id, const char *phase, int timeout_ms)
{
    cJSON *o = ta_env_wait(&c->agent, id, ta_is_phase, phase, timeout_ms);
    if (!o)
        fail_msg("%s did not reach %s within %d ms", id, phase, timeout_ms);
    return o;
}

/* GET of an azsim control path (owned); fails the test without an answer. */
static inline cJSON *sim_get(ta_rc_t *c, const char *path)
{
    cJSON *j = ta_sim_get(&c->sim, path);
    assert_non_null(j);
    return j;
}

/* How many requests of `op` azsim answered with `status` (NULL: any). */
static inline long stat_of(ta_rc_t *c, const char *op, const char *status)
{
    cJSON *st = sim_get(c, "/_azsim/stats");
    long n = ta_sim_stat(st, op, status);
    cJSON_Delete(st);
    return n;
}

/* A field of the condition `type` (borrowed), or NULL. */
static inline const char *cond_field(const cJSON *obj, const char *type, const char *field)
{
    const cJSON *cond = ta_condition(obj, type);
    return cond ? ta_str(cond, field) : NULL;
}

/* POST /_azsim/aci with json; azsim must accept it (200). */
static inline void sim_aci(ta_rc_t *c, const char *json)
{
    th_resp_t r;
    long st = ta_sim_ctl(&c->sim, "POST", "/_azsim/aci", json, &r);
    if (st != 200)
        print_message("POST /_azsim/aci %s answered %ld: %s\n", json, st, r.body);
    th_resp_free(&r);
    assert_int_equal(st, 200);
}

#endif
