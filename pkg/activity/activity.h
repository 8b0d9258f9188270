/*
 * pkg/activity: activity reported from inside a workspace. Every container
 * group gets DEV8_ACTIVITY_URL (its environment's activity route under
 * activity.url) and, as a secure environment variable, DEV8_ACTIVITY_TOKEN:
 * hex HMAC-SHA256 under the key in $activity.keyEnv of a message naming
 * that one route ("dev8-activity/v1 POST /api/v1/environments/<id>/activity"),
 * so a token opens that environment's activity route and nothing else. The
 * key never leaves this module; tokens are never logged.
 */
#ifndef D8_ACTIVITY_H
#define D8_ACTIVITY_H

#include <stddef.h>

#define ACTIVITY_TOKEN_LEN 64 /* hex characters */

typedef struct activity activity_t;

/*
 * The activity settings from the base URL (no trailing '/') and the key
 * (copied; keylen > 0). NULL when url is empty (the feature is off).
 */
activity_t *activity_new(const char *url, const unsigned char *key, size_t keylen);
/* Wipes the key and frees. NULL is ignored. */
void activity_free(activity_t *a);
/* The token of environment id: ACTIVITY_TOKEN_LEN hex characters and a NUL. */
void activity_token(const activity_t *a, const char *id, char out[ACTIVITY_TOKEN_LEN + 1]);
/* 1 when token (tlen bytes) is id's token; constant time in the token. */
int activity_token_ok(const activity_t *a, const char *id, const char *token, size_t tlen);
/* DEV8_ACTIVITY_URL of id into out (outlen bytes); 0, or -1 when it does not fit. */
int activity_url(const activity_t *a, const char *id, char *out, size_t outlen);

#endif
