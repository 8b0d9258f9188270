/*
 * pkg/store internals shared by store.c and store_sync.c (the full sync,
 * applied in steps). Not part of the public contract.
 */
#ifndef D8_STORE_INT_H
#define D8_STORE_INT_H

#include "store.h"

/* Marks the events that follow as part of a full sync (bulk) or not. */
void store__set_bulk(store_t *st, int on);
/* Marks object id removed from the desired set (see env_obj_t.removed)
 * unless it is unknown or already being deleted; returns 1 when marked. */
int store__remove_from_set(store_t *st, const char *id);
/* Marks the desired set authoritative (a full sync was received). */
void store__mark_synced(store_t *st);

#endif
