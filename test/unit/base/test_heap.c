/* Unit tests of pkg/base's d8_heap: value and pointer items, the index
 * callback through moves, removal and re-keying from the middle, and
 * random operation sequences checked against a sorted array. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/base.h"
#include "base/heap.h"

#include <stdlib.h>
#include <string.h>

/* ---- value items ---------------------------------------------------------- */

typedef struct ev {
    uint64_t due;
    uint64_t order; /* ties keep push order */
} ev_t;

static int ev_less(const void *x, const void *y)
{
    const ev_t *a = x, *b = y;
    return a->due != b->due ? a->due < b->due : a->order < b->order;
}

static void test_values_come_out_sorted_with_stable_ties(void **state)
{
    (void)state;
    d8_heap_t h;
    d8_heap_init(&h, sizeof(ev_t), ev_less, NULL);
    assert_null(d8_heap_top(&h));
    ev_t out = {0, 0};
    assert_int_equal(d8_heap_pop(&h, &out), 0);

    static const uint64_t dues[] = {50, 10, 30, 10, 70, 30, 10, 0, 90, 50};
    enum { N = sizeof(dues) / sizeof(dues[0]) };
    for (uint64_t i = 0; i < N; i++) {
        ev_t e = {dues[i], i};
        d8_heap_push(&h, &e);
    }
    assert_int_equal(h.count, N);
    assert_int_equal(((ev_t *)d8_heap_top(&h))->due, 0);
    ev_t prev = {0, 0};
    for (int i = 0; i < N; i++) {
        assert_int_equal(d8_heap_pop(&h, &out), 1);
        if (i > 0)
            assert_true(ev_less(&prev, &out));
        prev = out;
    }
    assert_int_equal(h.count, 0);
    assert_int_equal(d8_heap_pop(&h, NULL), 0);
    d8_heap_release(&h);
    d8_heap_release(&h); /* twice is fine */

    /* A zeroed heap is empty and safe to release. */
    d8_heap_t z;
    memset(&z, 0, sizeof(z));
    assert_null(d8_heap_top(&z));
    d8_heap_release(&z);
}

/* Value items under a total order come out exactly as a sorted array. */
static void test_values_random_against_sorted_array(void **state)
{
    (void)state;
    enum { STEPS = 20000 };
    ev_t *model = d8_xcalloc(STEPS, sizeof(*model));
    size_t nmodel = 0;
    d8_heap_t h;
    d8_heap_init(&h, sizeof(ev_t), ev_less, NULL);
    uint64_t x = 88172645463325252ull, order = 0;
    for (int step = 0; step < STEPS; step++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (x % 3 != 0 || nmodel == 0) {
            ev_t e = {(x >> 16) % 100, order++};
            d8_heap_push(&h, &e);
            /* Sorted insertion keeps the model a sorted array. */
            size_t k = nmodel++;
            while (k > 0 && ev_less(&e, &model[k - 1])) {
                model[k] = model[k - 1];
                k--;
            }
            model[k] = e;
        } else {
            ev_t out;
            assert_int_equal(d8_heap_pop(&h, &out), 1);
            assert_memory_equal(&out, &model[0], sizeof(out));
            memmove(&model[0], &model[1], (nmodel - 1) * sizeof(*model));
            nmodel--;
        }
        assert_int_equal(h.count, nmodel);
    }
    for (size_t k = 0; k < nmodel; k++) {
        ev_t out;
        assert_int_equal(d8_heap_pop(&h, &out), 1);
        assert_memory_equal(&out, &model[k], sizeof(out));
    }
    d8_heap_release(&h);
    free(model);
}

/* ---- pointer items with the index callback ------------------------------- */

typedef struct job {
    int key;
    size_t idx;
    int id;
} job_t;

static int job_less(const void *a, const void *b)
{
    return (*(job_t *const *)a)->key < (*(job_t *const *)b)->key;
}

static void job_moved(void *item, size_t idx)
{
    (*(job_t **)item)->idx = idx;
}

/* Every item in the heap knows its index, and no child beats its parent. */
static void check_heap(const d8_heap_t *h)
{
    for (size_t i = 0; i < h->count; i++) {
        const job_t *j = *(job_t **)d8_heap_at(h, i);
        assert_int_equal(j->idx, i);
        if (i > 0) {
            const job_t *p = *(job_t **)d8_heap_at(h, (i - 1) / 2);
            assert_true(p->key <= j->key);
        }
    }
    assert_null(d8_heap_at(h, h->count));
}

static void test_pointers_remove_and_fix(void **state)
{
    (void)state;
    enum { N = 64 };
    job_t jobs[N];
    d8_heap_t h;
    d8_heap_init(&h, sizeof(job_t *), job_less, job_moved);
    for (int i = 0; i < N; i++) {
        jobs[i] = (job_t){.key = (i * 37) % N, .idx = D8_HEAP_NONE, .id = i};
        job_t *p = &jobs[i];
        d8_heap_push(&h, &p);
        check_heap(&h);
    }
    /* Remove from the middle: the removed item is told it left. */
    job_t *out = NULL;
    size_t at = jobs[5].idx;
    d8_heap_remove(&h, at, &out);
    assert_ptr_equal(out, &jobs[5]);
    assert_int_equal(jobs[5].idx, D8_HEAP_NONE);
    check_heap(&h);
    d8_heap_remove(&h, jobs[9].idx, NULL);
    assert_int_equal(jobs[9].idx, D8_HEAP_NONE);
    check_heap(&h);
    /* The last slot itself. */
    job_t *last = *(job_t **)d8_heap_at(&h, h.count - 1);
    d8_heap_remove(&h, h.count - 1, NULL);
    assert_int_equal(last->idx, D8_HEAP_NONE);
    check_heap(&h);
    /* Out of range: nothing happens. */
    d8_heap_remove(&h, h.count, NULL);
    assert_int_equal(h.count, N - 3);

    /* Re-key down (to the front) and up (to the back). */
    jobs[40].key = -1;
    d8_heap_fix(&h, jobs[40].idx);
    check_heap(&h);
    assert_ptr_equal(*(job_t **)d8_heap_top(&h), &jobs[40]);
    jobs[40].key = 1000;
    d8_heap_fix(&h, jobs[40].idx);
    check_heap(&h);
    assert_ptr_not_equal(*(job_t **)d8_heap_top(&h), &jobs[40]);

    int prev = -1000, n = 0;
    while (d8_heap_pop(&h, &out)) {
        assert_true(out->key >= prev);
        assert_int_equal(out->idx, D8_HEAP_NONE);
        prev = out->key;
        n++;
        check_heap(&h);
    }
    assert_int_equal(n, N - 3);
    assert_int_equal(prev, 1000);
    d8_heap_release(&h);
}

/* ---- random operations against a sorted array ---------------------------- */

static uint64_t rng_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static int cmp_job_ptr(const void *a, const void *b)
{
    int ka = (*(job_t *const *)a)->key, kb = (*(job_t *const *)b)->key;
    return (ka > kb) - (ka < kb);
}

/*
 * Pushes, pops, removals and re-keys at random (keys from a small range,
 * so ties are common); after each step the heap's items, sorted, must equal
 * the model (a plain array kept sorted), and the top must be its first key.
 */
static void test_random_against_sorted_array(void **state)
{
    (void)state;
    enum { POOL = 300, STEPS = 20000 };
    job_t *pool = d8_xcalloc(POOL, sizeof(*pool));
    job_t **model = d8_xcalloc(POOL, sizeof(*model));
    job_t **seen = d8_xcalloc(POOL, sizeof(*seen));
    size_t nmodel = 0;
    for (int i = 0; i < POOL; i++)
        pool[i] = (job_t){.key = 0, .idx = D8_HEAP_NONE, .id = i};
    d8_heap_t h;
    d8_heap_init(&h, sizeof(job_t *), job_less, job_moved);
    uint64_t x = 0x2545f4914f6cdd1dull;
    int pops = 0, removes = 0, fixes = 0;
    for (int step = 0; step < STEPS; step++) {
        uint64_t r = rng_next(&x);
        job_t *j = &pool[r % POOL];
        int op = (int)((r >> 20) % 4);
        if (j->idx == D8_HEAP_NONE) {
            j->key = (int)((r >> 32) % 50);
            d8_heap_push(&h, &j);
            model[nmodel++] = j;
        } else if (op == 0 && h.count) {
            job_t *out = NULL;
            assert_int_equal(d8_heap_pop(&h, &out), 1);
            /* The least key; among equal keys any may come first. */
            assert_int_equal(out->key, model[0]->key);
            size_t k = 0;
            while (model[k] != out)
                k++;
            memmove(&model[k], &model[k + 1], (nmodel - k - 1) * sizeof(*model));
            nmodel--;
            pops++;
        } else if (op == 1) {
            d8_heap_remove(&h, j->idx, NULL);
            assert_int_equal(j->idx, D8_HEAP_NONE);
            size_t k = 0;
            while (model[k] != j)
                k++;
            memmove(&model[k], &model[k + 1], (nmodel - k - 1) * sizeof(*model));
            nmodel--;
            removes++;
        } else {
            j->key = (int)((r >> 32) % 50);
            d8_heap_fix(&h, j->idx);
            fixes++;
        }
        qsort(model, nmodel, sizeof(*model), cmp_job_ptr);
        assert_int_equal(h.count, nmodel);
        if (nmodel)
            assert_int_equal((*(job_t **)d8_heap_top(&h))->key, model[0]->key);
        if (step % 50 == 0) {
            check_heap(&h);
            for (size_t k = 0; k < h.count; k++)
                seen[k] = *(job_t **)d8_heap_at(&h, k);
            qsort(seen, h.count, sizeof(*seen), cmp_job_ptr);
            for (size_t k = 0; k < h.count; k++)
                assert_int_equal(seen[k]->key, model[k]->key);
        }
    }
    assert_true(pops > 100 && removes > 100 && fixes > 100);
    /* Drain: keys come out in the model's order. */
    for (size_t k = 0; k < nmodel; k++) {
        job_t *out = NULL;
        assert_int_equal(d8_heap_pop(&h, &out), 1);
        assert_int_equal(out->key, model[k]->key);
    }
    assert_int_equal(h.count, 0);
    d8_heap_release(&h);
    free(seen);
    free(model);
    free(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_come_out_sorted_with_stable_ties),
        cmocka_unit_test(test_values_random_against_sorted_array),
        cmocka_unit_test(test_pointers_remove_and_fix),
        cmocka_unit_test(test_random_against_sorted_array),
    };
    return cmocka_run_group_tests_name("heap", tests, NULL, NULL);
}
