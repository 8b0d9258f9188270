#include "ownership.h"

#include "base/base.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

void own_name(const char *id, char out[OWN_NAME_MAX])
{
    snprintf(out, OWN_NAME_MAX, "dev8-%s", id);
}

const char *own_id_of_name(const char *name)
{
    if (!name || strncmp(name, "dev8-", 5) != 0 || !spec_id_valid(name + 5))
        return NULL;
    return name + 5;
}

void own_dns_label(const char *controller, const char *id, char out[OWN_DNS_LABEL_MAX])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    char in[160];
    char hex[7];
    int n = snprintf(in, sizeof(in), "%s/%s", controller, id);
    if (n < 0 || (size_t)n >= sizeof(in))
        n = (int)sizeof(in) - 1;
    SHA256((const unsigned char *)in, (size_t)n, md);
    d8_hex(md, 3, hex);
    snprintf(out, OWN_DNS_LABEL_MAX, "dev8-%.48s-%s", id, hex);
}

static int equals(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

/* The one "is it ours" rule, over either set of keys. */
static void parse(const azure_map_t *m, const char *k_managed_by, const char *managed_by,
                  const char *k_controller, const char *k_env_id, const char *k_user_id,
                  const char *k_keep, const char *id, const char *controller, own_info_t *out)
{
    out->ours = equals(azure_map_get(m, k_managed_by), managed_by) &&
                equals(azure_map_get(m, k_controller), controller) &&
                equals(azure_map_get(m, k_env_id), id);
    out->keep = equals(azure_map_get(m, k_keep), "true");
    out->user_id = azure_map_get(m, k_user_id);
    out->spec_hash = NULL;
    out->keep_until_ms = 0;
}

void own_parse_group(const azure_map_t *tags, const char *id, const char *controller,
                     own_info_t *out)
{
    parse(tags, OWN_TAG_MANAGED_BY, OWN_MANAGED_BY, OWN_TAG_CONTROLLER, OWN_TAG_ENV_ID,
          OWN_TAG_USER_ID, OWN_TAG_KEEP, id, controller, out);
    out->spec_hash = azure_map_get(tags, OWN_TAG_SPEC_HASH);
}

void own_parse_share(const azure_map_t *metadata, const char *id, const char *controller,
                     own_info_t *out)
{
    parse(metadata, OWN_MD_MANAGED_BY, OWN_MD_MANAGED_BY_VALUE, OWN_MD_CONTROLLER, OWN_MD_ENV_ID,
          OWN_MD_USER_ID, OWN_MD_KEEP, id, controller, out);
    out->keep_until_ms = own_parse_time(azure_map_get(metadata, OWN_MD_KEEP_UNTIL));
}

size_t own_group_tags(azure_kv_t out[OWN_KV_MAX], const char *controller, const char *id,
                      const char *user_id, const char *spec_hash)
{
    out[0] = (azure_kv_t){OWN_TAG_MANAGED_BY, OWN_MANAGED_BY};
    out[1] = (azure_kv_t){OWN_TAG_CONTROLLER, controller};
    out[2] = (azure_kv_t){OWN_TAG_ENV_ID, id};
    out[3] = (azure_kv_t){OWN_TAG_USER_ID, user_id};
    out[4] = (azure_kv_t){OWN_TAG_SPEC_HASH, spec_hash};
    return 5;
}

void own_meta_encode(const char *in, char out[OWN_META_VALUE_MAX])
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)(in ? in : ""); *p; p++) {
        int plain = *p >= 0x20 && *p < 0x7f && *p != '%';
        if (n + (plain ? 1 : 3) >= OWN_META_VALUE_MAX)
            break;
        if (plain) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    out[n] = '\0';
}

size_t own_share_metadata(azure_kv_t out[OWN_KV_MAX], char user_buf[OWN_META_VALUE_MAX],
                          const char *controller, const char *id, const char *user_id, int keep)
{
    own_meta_encode(user_id, user_buf);
    out[0] = (azure_kv_t){OWN_MD_MANAGED_BY, OWN_MD_MANAGED_BY_VALUE};
    out[1] = (azure_kv_t){OWN_MD_CONTROLLER, controller};
    out[2] = (azure_kv_t){OWN_MD_ENV_ID, id};
    out[3] = (azure_kv_t){OWN_MD_USER_ID, user_buf};
    if (!keep)
        return 4;
    out[4] = (azure_kv_t){OWN_MD_KEEP, "true"};
    return 5;
}
