/*
 * pkg/ownership: the vocabulary by which dev8-agent recognises what it owns
 * in Azure (DESIGN.md section 4), written once.
 *
 * An environment `id` owns one container group and one file share, both
 * named dev8-{id}. The group carries tags, the share metadata (Azure
 * metadata names must be C identifiers, hence the hyphen-free keys). A
 * resource is ours only when all three marks agree: managed-by dev8-agent,
 * our controller name, and the env id its name encodes. Everything that
 * creates, reads, lists or deletes resources asks this module, so the
 * reconciler and the reaper can never disagree on "is it ours".
 */
#ifndef D8_OWNERSHIP_H
#define D8_OWNERSHIP_H

#include "azure/azure.h"
#include "spec/spec.h"

#include <stddef.h>
#include <stdint.h>

/* Room for "dev8-" + an environment id + NUL. */
#define OWN_NAME_MAX (SPEC_ID_MAX + 8)
/* A DNS label: 63 characters + NUL. */
#define OWN_DNS_LABEL_MAX 64
/* Hex characters of the spec hash kept in the dev8-spec-hash tag, + NUL. */
#define OWN_HASH_MAX 17
/* Most tags / metadata entries a builder writes. */
#define OWN_KV_MAX 6
/* Room for a percent-encoded userId (128 code points of up to 4 bytes,
 * 3 characters a byte) + NUL. */
#define OWN_META_VALUE_MAX (128 * 4 * 3 + 1)

/* Container group tags. */
#define OWN_TAG_MANAGED_BY "dev8-managed-by"
#define OWN_TAG_CONTROLLER "dev8-controller"
#define OWN_TAG_ENV_ID "dev8-env-id"
#define OWN_TAG_USER_ID "dev8-user-id"
#define OWN_TAG_SPEC_HASH "dev8-spec-hash"
#define OWN_TAG_KEEP "dev8-keep"
#define OWN_MANAGED_BY "dev8-agent"

/* File share metadata. */
#define OWN_MD_MANAGED_BY "dev8managedby"
#define OWN_MD_CONTROLLER "dev8controller"
#define OWN_MD_ENV_ID "dev8envid"
#define OWN_MD_USER_ID "dev8userid"
#define OWN_MD_KEEP "dev8keep"
/* RFC 3339 UTC time after which a retained share may be reaped. */
#define OWN_MD_KEEP_UNTIL "dev8keepuntil"
#define OWN_MD_MANAGED_BY_VALUE "dev8agent"

/* What the marks on one resource say; strings borrowed from the map. */
typedef struct own_info {
    int ours;              /* managed-by, controller and env id all agree */
    int keep;              /* the keep mark is "true" */
    const char *user_id;   /* NULL when absent */
    const char *spec_hash; /* groups only; NULL when absent */
    int64_t keep_until_ms; /* shares: dev8keepuntil as wall ms; 0 when absent or unreadable */
} own_info_t;

/* Writes "dev8-{id}", the name of both resources of env `id`. */
void own_name(const char *id, char out[OWN_NAME_MAX]);

/* The env id a resource name encodes (borrowed from `name`), or NULL when
 * the name is not dev8-{valid id}. */
const char *own_id_of_name(const char *name);

/*
 * The group's DNS name label: dev8-{id (at most 48)}-{6 hex of
 * SHA-256(controller/id)}, 60 characters at most. The hash keeps labels of
 * two controllers (and of long ids cut at 48) apart.
 */
void own_dns_label(const char *controller, const char *id, char out[OWN_DNS_LABEL_MAX]);

/* Reads a container group's tags as belonging to env `id` of `controller`. */
void own_parse_group(const azure_map_t *tags, const char *id, const char *controller,
                     own_info_t *out);

/* Reads a file share's metadata as belonging to env `id` of `controller`. */
void own_parse_share(const azure_map_t *metadata, const char *id, const char *controller,
                     own_info_t *out);

/* Fills `out` with the tags of env `id`'s group (all strings borrowed from
 * the arguments, which must outlive `out`); returns the count. */
size_t own_group_tags(azure_kv_t out[OWN_KV_MAX], const char *controller, const char *id,
                      const char *user_id, const char *spec_hash);

/*
 * Fills `out` with the metadata of env `id`'s share, with dev8keep=true
 * when `keep` (strings borrowed as above; the user id is written into
 * `user_buf`, which must outlive `out` too); returns the count. Storage
 * accepts only ASCII metadata values, so the user id is percent-encoded
 * (own_meta_encode).
 */
size_t own_share_metadata(azure_kv_t out[OWN_KV_MAX], char user_buf[OWN_META_VALUE_MAX],
                          const char *controller, const char *id, const char *user_id, int keep);

/* Percent-encodes every byte of `in` outside printable ASCII, and '%'
 * itself, into `out` (cut at OWN_META_VALUE_MAX - 1 on a whole escape):
 * any UTF-8 userId becomes a valid metadata value, and an ASCII one stays
 * as it is. */
void own_meta_encode(const char *in, char out[OWN_META_VALUE_MAX]);

/*
 * The metadata of a share retained after its environment was deleted
 * (storagePolicy Retain): own_share_metadata's with dev8keep=true and,
 * when keep_until_ms > 0, dev8keepuntil=<RFC 3339 UTC> (written into
 * until_buf, which must outlive `out`). Returns the count.
 */
size_t own_share_metadata_retained(azure_kv_t out[OWN_KV_MAX], char user_buf[OWN_META_VALUE_MAX],
                                   char until_buf[32], const char *controller, const char *id,
                                   const char *user_id, int64_t keep_until_ms);
/* Reads "YYYY-MM-DDTHH:MM:SS[.fff]Z" as wall ms; 0 when s is NULL or not
 * that form. */
int64_t own_parse_time(const char *s);
/* 1 when a share's marks say it is retained with a keep-until time that
 * has passed at now_ms (the reaper may then delete it). */
int own_keep_expired(const own_info_t *info, int64_t now_ms);
#endif
