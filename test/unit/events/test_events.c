/*
 * pkg/events: a bounded ring per environment, oldest first, repeats of the
 * newest counted, the listener told of each event.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "events/events.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

static int heard;
static char heard_id[64];

static void listener(void *ud, const char *id, const env_event_t *e)
{
    (void)ud;
    (void)e;
    heard++;
    snprintf(heard_id, sizeof heard_id, "%s", id);
}

static cJSON *json_of(events_t *ev, const char *id)
{
    d8_buf_t b;
    d8_buf_init(&b);
    events_json(ev, id, &b);
    cJSON *j = cJSON_ParseWithLength(b.data, b.len);
    d8_buf_release(&b);
    assert_non_null(j);
    return j;
}

static void test_ring(void **state)
{
    (void)state;
    events_t *ev = events_new();
    events_on_add(ev, listener, NULL);
    cJSON *j = json_of(ev, "a");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "items")), 0);
    cJSON_Delete(j);
    char msg[64];
    for (int i = 0; i < 100; i++) {
        snprintf(msg, sizeof msg, "event %d", i);
        events_add(ev, "a", "Normal", "PhaseChanged", "agent", 1000 + i, 1, msg);
    }
    assert_int_equal(heard, 100);
    assert_string_equal(heard_id, "a");
    events_add(ev, "b", "Warning", "ArmFailed", "agent", 5000, 1, "x");
    events_add(ev, "b", "Warning", "ArmFailed", "agent", 6000, 1, "x");     /* a repeat */
    events_add(ev, "b", "Normal", "BackOff", "azure", 7000, 4, "back-off"); /* Azure's count */
    events_add(ev, "b", "Normal", "BackOff", "azure", 8000, 9, "back-off");
    assert_int_equal(events_count(ev), EVENTS_PER_ENV + 2);
    j = json_of(ev, "a");
    const cJSON *items = cJSON_GetObjectItem(j, "items");
    assert_int_equal(cJSON_GetArraySize(items), EVENTS_PER_ENV);
    /* The oldest went: the first kept is event 36, the last event 99. */
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(items, 0), "message")->valuestring,
                        "event 36");
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(items, EVENTS_PER_ENV - 1), "message")->valuestring,
        "event 99");
    cJSON_Delete(j);
    j = json_of(ev, "b");
    items = cJSON_GetObjectItem(j, "items");
    assert_int_equal(cJSON_GetArraySize(items), 2);
    const cJSON *first = cJSON_GetArrayItem(items, 0), *second = cJSON_GetArrayItem(items, 1);
    assert_int_equal(cJSON_GetObjectItem(first, "count")->valueint, 2);
    assert_string_equal(cJSON_GetObjectItem(first, "type")->valuestring, "Warning");
    assert_string_equal(cJSON_GetObjectItem(first, "time")->valuestring, "1970-01-01T00:00:06Z");
    assert_int_equal(cJSON_GetObjectItem(second, "count")->valueint, 9);
    assert_string_equal(cJSON_GetObjectItem(second, "source")->valuestring, "azure");
    cJSON_Delete(j);
    /* A long message is cut, never overflows. */
    char big[2000];
    memset(big, 'm', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    events_add(ev, "c", "Normal", "ArmRequest", "agent", 1, 1, big);
    j = json_of(ev, "c");
    items = cJSON_GetObjectItem(j, "items");
    assert_int_equal(
        strlen(cJSON_GetObjectItem(cJSON_GetArrayItem(items, 0), "message")->valuestring),
        EVENTS_MESSAGE_MAX);
    cJSON_Delete(j);
    events_forget(ev, "a");
    events_forget(ev, "nobody");
    assert_int_equal(events_count(ev), 3);
    events_on_add(ev, NULL, NULL);
    events_add(ev, "a", "Normal", "PhaseChanged", "agent", 0, 1, "again");
    assert_int_equal(heard, 104 + 1);
    events_free(ev);
    events_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_ring)};
    return cmocka_run_group_tests_name("events", tests, NULL, NULL);
}
