/*
 * pkg/azsim: file shares under storageAccounts/{account}/fileServices/
 * default/shares, and storage account listKeys.
 *
 * A deleted share is soft-deleted for share_recreate_ms: GET answers 404,
 * a PUT of the same name 409 ShareBeingDeleted (as Azure Files does while
 * it removes a share), a list with $expand=deleted shows it, and
 * FileShares_Restore brings it back.
 */
#include "azsim_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARE_TYPE "Microsoft.Storage/storageAccounts/fileServices/shares"
#define DEFAULT_QUOTA 5120
#define MAX_QUOTA 102400

void azsim__share_free(azsim__share_t *s)
{
    if (!s)
        return;
    free(s->id);
    free(s->name);
    free(s->account);
    cJSON_Delete(s->metadata);
    free(s->access_tier);
    free(s->protocols);
    free(s->marker);
    free(s);
}

static void share_id(d8_buf_t *b, const char *sub, const char *rg, const char *account,
                     const char *name)
{
    d8_buf_printf(b,
                  "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Storage/"
                  "storageAccounts/%s/fileServices/default/shares/%s",
                  sub, rg, account, name);
}

azsim__share_t *azsim__find_share(azsim_t *sim, const char *sub, const char *rg,
                                  const char *account, const char *name)
{
    d8_buf_t key;
    d8_buf_init(&key);
    share_id(&key, sub, rg, account, name);
    azsim__share_t *s = (azsim__share_t *)azsim__table_get(&sim->shares, azsim__lower(key.data));
    d8_buf_release(&key);
    if (s && !s->deleted)
        return s;
    /* Storage account names are global: look in other resource groups. */
    for (azsim__ent_t *e = azsim__table_first(&sim->shares); e;
         e = azsim__table_next(&sim->shares, e)) {
        s = (azsim__share_t *)e;
        if (!s->deleted && azsim__ieq(s->account, account) && azsim__ieq(s->name, name))
            return s;
    }
    return NULL;
}

cJSON *azsim__share_json(const azsim__share_t *s, int mode)
{
    cJSON *o = cJSON_CreateObject();
    char etag[40], ts[32];
    if (mode == 'd') {
        d8_buf_t id;
        d8_buf_init(&id);
        d8_buf_printf(&id, "%s_%s", s->id, s->version);
        cJSON_AddStringToObject(o, "id", id.data);
        d8_buf_release(&id);
    } else {
        cJSON_AddStringToObject(o, "id", s->id);
    }
    cJSON_AddStringToObject(o, "name", s->name);
    cJSON_AddStringToObject(o, "type", SHARE_TYPE);
    snprintf(etag, sizeof(etag), "\"0x8D%013llX\"", (unsigned long long)s->etag_n);
    cJSON_AddStringToObject(o, "etag", etag);
    cJSON *p = cJSON_AddObjectToObject(o, "properties");
    d8_rfc3339(s->modified_wall, ts);
    cJSON_AddStringToObject(p, "lastModifiedTime", ts);
    cJSON_AddNumberToObject(p, "shareQuota", s->quota);
    if (mode == 'g' || mode == 'm')
        cJSON_AddItemToObject(p, "metadata",
                              s->metadata ? cJSON_Duplicate(s->metadata, 1) : cJSON_CreateObject());
    cJSON_AddStringToObject(p, "accessTier", s->access_tier);
    d8_rfc3339(s->created_wall, ts);
    cJSON_AddStringToObject(p, "accessTierChangeTime", ts);
    cJSON_AddStringToObject(p, "enabledProtocols", s->protocols);
    if (mode == 'd') {
        cJSON_AddStringToObject(p, "version", s->version);
        cJSON_AddBoolToObject(p, "deleted", 1);
        d8_rfc3339(s->deleted_wall, ts);
        cJSON_AddStringToObject(p, "deletedTime", ts);
        cJSON_AddNumberToObject(p, "remainingRetentionDays", 0);
    } else {
        cJSON_AddStringToObject(p, "leaseStatus", "Unlocked");
        cJSON_AddStringToObject(p, "leaseState", "Available");
    }
    return o;
}

/* ---- validation --------------------------------------------------------- */

typedef struct share_in {
    int has_quota;
    int quota;
    const cJSON *metadata; /* borrowed from the body */
    const char *access_tier;
    const char *protocols;
} share_in_t;

static const char *const tiers[] = {"TransactionOptimized", "Hot", "Cool", "Premium", NULL};

static int one_of(const char *v, const char *const *set)
{
    for (; *set; set++)
        if (azsim__ieq(v, *set))
            return 1;
    return 0;
}

/* Whether s is all ASCII. */
static int ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return 0;
    return 1;
}

/*
 * Checks metadata (borrowed) as Azure Files does: names are C#
 * identifiers, unique in any case (Learn, naming and referencing shares);
 * values are strings of ASCII characters (storage.asciiMetadata; observed
 * 400 InvalidMetadata with the message below). Answers 400 and returns 0
 * on error.
 */
static int check_metadata(azsim__rq_t *q, const cJSON *md)
{
    if (!cJSON_IsObject(md)) {
        azsim__arm_error(q->resp, 400, "InvalidMetadata",
                         "The metadata must be an object of string values.");
        return 0;
    }
    for (const cJSON *it = md->child; it; it = it->next) {
        if (!azsim__valid_c_identifier(it->string)) {
            azsim__arm_error(q->resp, 400, "InvalidMetadata",
                             "The metadata name '%s' is invalid: metadata names must be valid "
                             "C# identifiers (letters, digits and '_', not starting with a "
                             "digit).",
                             it->string);
            return 0;
        }
        for (const cJSON *o = md->child; o != it; o = o->next) {
            if (azsim__ieq(o->string, it->string)) {
                azsim__arm_error(q->resp, 400, "InvalidMetadata",
                                 "The metadata name '%s' is given twice (names are "
                                 "case-insensitive).",
                                 it->string);
                return 0;
            }
        }
        if (!cJSON_IsString(it)) {
            azsim__arm_error(q->resp, 400, "InvalidMetadata",
                             "The value of metadata '%s' must be a string.", it->string);
            return 0;
        }
        if (q->sim->storage.ascii_metadata && !ascii(it->valuestring)) {
            azsim__arm_error(q->resp, 400, "InvalidMetadata",
                             "The metadata specified is invalid. It has characters that are not "
                             "permitted.");
            return 0;
        }
    }
    return 1;
}

/* Parses and checks a FileShare body; answers 400 and returns 0 on error. */
static int share_body(azsim__rq_t *q, cJSON *body, share_in_t *in)
{
    memset(in, 0, sizeof(*in));
    if (!cJSON_IsObject(body)) {
        azsim__arm_error(q->resp, 400, "InvalidRequestContent",
                         "The request content was invalid and could not be deserialized: the "
                         "body must be a JSON object.");
        return 0;
    }
    const cJSON *p = cJSON_GetObjectItem(body, "properties");
    if (!p || cJSON_IsNull(p))
        return 1;
    if (!cJSON_IsObject(p)) {
        azsim__arm_error(q->resp, 400, "InvalidRequestContent",
                         "The request content was invalid: 'properties' must be an object.");
        return 0;
    }
    const cJSON *quota = cJSON_GetObjectItem(p, "shareQuota");
    if (quota && !cJSON_IsNull(quota)) {
        double v = quota->valuedouble;
        if (!cJSON_IsNumber(quota) || v != (double)(int)v || v < 1 || v > MAX_QUOTA) {
            azsim__arm_error(q->resp, 400, "OutOfRangeInput",
                             "The shareQuota must be an integer from 1 to %d GiB.", MAX_QUOTA);
            return 0;
        }
        in->has_quota = 1;
        in->quota = (int)v;
    }
    const cJSON *md = cJSON_GetObjectItem(p, "metadata");
    if (md && !cJSON_IsNull(md)) {
        if (!check_metadata(q, md))
            return 0;
        in->metadata = md;
    }
    const cJSON *tier = cJSON_GetObjectItem(p, "accessTier");
    if (tier && !cJSON_IsNull(tier)) {
        if (!cJSON_IsString(tier) || !one_of(tier->valuestring, tiers)) {
            azsim__arm_error(q->resp, 400, "InvalidRequestContent",
                             "The accessTier must be one of TransactionOptimized, Hot, Cool, "
                             "Premium.");
            return 0;
        }
        in->access_tier = tier->valuestring;
    }
    const cJSON *proto = cJSON_GetObjectItem(p, "enabledProtocols");
    if (proto && !cJSON_IsNull(proto)) {
        static const char *const protos[] = {"SMB", "NFS", NULL};
        if (!cJSON_IsString(proto) || !one_of(proto->valuestring, protos)) {
            azsim__arm_error(q->resp, 400, "InvalidRequestContent",
                             "The enabledProtocols must be SMB or NFS.");
            return 0;
        }
        in->protocols = proto->valuestring;
    }
    return 1;
}

static void apply(azsim__rq_t *q, azsim__share_t *s, const share_in_t *in, int replace_md)
{
    if (in->has_quota)
        s->quota = in->quota;
    if (in->metadata) {
        cJSON_Delete(s->metadata);
        s->metadata = cJSON_Duplicate(in->metadata, 1);
    } else if (replace_md) {
        cJSON_Delete(s->metadata);
        s->metadata = NULL;
    }
    if (in->access_tier) {
        free(s->access_tier);
        s->access_tier = d8_xstrdup(in->access_tier);
    }
    s->modified_wall = q->wall;
    s->etag_n = 0x5A0000000000ull + ++q->sim->etag_counter;
}

/* ---- handlers ----------------------------------------------------------- */

static azsim__share_t *lookup(azsim__rq_t *q)
{
    d8_buf_t key;
    d8_buf_init(&key);
    share_id(&key, q->seg[1], q->seg[3], q->seg[7], q->seg[11]);
    azsim__share_t *s = (azsim__share_t *)azsim__table_get(&q->sim->shares, azsim__lower(key.data));
    d8_buf_release(&key);
    return s;
}

static void share_not_found(azsim__rq_t *q)
{
    azsim__arm_error(q->resp, 404, "ShareNotFound", "The specified share does not exist.");
}

static void render(azsim__rq_t *q, int status, const azsim__share_t *s, int mode)
{
    cJSON *j = azsim__share_json(s, mode);
    azsim__json_body(q->resp, status, j);
    cJSON_Delete(j);
}

/* A new share of the request's name in the model, with the defaults. */
static azsim__share_t *new_share(azsim__rq_t *q, const char *protocols)
{
    azsim__share_t *s = d8_xcalloc(1, sizeof(*s));
    d8_buf_t id;
    d8_buf_init(&id);
    share_id(&id, q->seg[1], q->seg[3], q->seg[7], q->seg[11]);
    s->id = d8_buf_detach(&id, NULL);
    s->name = d8_xstrdup(q->seg[11]);
    s->account = d8_xstrdup(q->seg[7]);
    s->quota = DEFAULT_QUOTA;
    s->access_tier = d8_xstrdup("TransactionOptimized");
    s->protocols = d8_xstrdup(protocols ? protocols : "SMB");
    s->created_wall = q->wall;
    azsim__table_put(&q->sim->shares, &s->e, s->id);
    return s;
}

/*
 * FileShares_Create: 201 for a new share, 200 when it exists (metadata
 * replaced); 409 while the name is soft-deleted. The share's size must
 * suit the account (azsim__quota_fits); a ReadOnly lock forbids it.
 */
static void share_put(azsim__rq_t *q)
{
    if (!azsim__check_account(q))
        return;
    if (!azsim__valid_share_name(q->seg[11])) {
        azsim__arm_error(q->resp, 400, "InvalidResourceName",
                         "The share name '%s' is invalid. File share names must be 3 to 63 "
                         "characters of lower case letters, digits and '-'; every '-' must be "
                         "preceded and followed by a letter or digit.",
                         q->seg[11]);
        return;
    }
    azsim__share_t *s = lookup(q);
    if (azsim__locked(q, s && !s->deleted ? s : NULL, 'w'))
        return;
    cJSON *body = q->req->body_len ? cJSON_ParseWithLength(q->req->body, q->req->body_len)
                                   : cJSON_CreateObject();
    share_in_t in;
    if (!share_body(q, body, &in) || (in.has_quota && !azsim__quota_fits(q, in.quota))) {
        cJSON_Delete(body);
        return;
    }
    if (s && s->deleted) {
        azsim__arm_error(q->resp, 409, "ShareBeingDeleted",
                         "The specified share is being deleted. Try operation later.");
        cJSON_Delete(body);
        return;
    }
    int status = 200;
    if (!s) {
        s = new_share(q, in.protocols);
        status = 201;
    } else if (in.protocols && !azsim__ieq(in.protocols, s->protocols)) {
        azsim__arm_error(q->resp, 400, "InvalidRequestContent",
                         "The enabledProtocols of a share can only be set when it is created.");
        cJSON_Delete(body);
        return;
    }
    /* PUT replaces the metadata; PATCH only when it names some. */
    apply(q, s, &in, 1);
    cJSON_Delete(body);
    render(q, status, s, 'g');
}

static void share_get(azsim__rq_t *q)
{
    azsim__share_t *s = lookup(q);
    if (!s || s->deleted) {
        share_not_found(q);
        return;
    }
    render(q, 200, s, 'g');
}

/* FileShares_Update: changes the fields the body names (the size as
 * FileShares_Create checks it); the protocols of a share are fixed at
 * creation. */
static void share_patch(azsim__rq_t *q)
{
    azsim__share_t *s = lookup(q);
    if (azsim__locked(q, s && !s->deleted ? s : NULL, 'w'))
        return;
    cJSON *body = cJSON_ParseWithLength(q->req->body, q->req->body_len);
    share_in_t in;
    if (!share_body(q, body, &in) || (in.has_quota && !azsim__quota_fits(q, in.quota))) {
        cJSON_Delete(body);
        return;
    }
    if (!s || s->deleted) {
        cJSON_Delete(body);
        share_not_found(q);
        return;
    }
    if (in.protocols && !azsim__ieq(in.protocols, s->protocols)) {
        azsim__arm_error(q->resp, 400, "InvalidRequestContent",
                         "The enabledProtocols of a share can only be set when it is created.");
        cJSON_Delete(body);
        return;
    }
    apply(q, s, &in, 0);
    cJSON_Delete(body);
    render(q, 200, s, 'g');
}

/*
 * Whether FileShares_Delete may delete s (NULL: none) by its $include
 * (spec: "snapshots" by default, which fails on leased snapshots;
 * "leased-snapshots"; "none", which fails on any snapshot). Answers 400
 * or 409 (research notes item 8: the documented codes and messages) and
 * returns 0 when not.
 */
static int delete_allowed(azsim__rq_t *q, const azsim__share_t *s)
{
    char inc[32];
    int n = azsim__param(q->req->query, "$include", inc, sizeof(inc));
    int mode = n == -1                                        ? 's'
               : n > 0 && azsim__ieq(inc, "snapshots")        ? 's'
               : n > 0 && azsim__ieq(inc, "leased-snapshots") ? 'l'
               : n > 0 && azsim__ieq(inc, "none")             ? 'n'
                                                              : 0;
    if (!mode) {
        azsim__arm_error(q->resp, 400, "InvalidQueryParameterValue",
                         "An invalid value was specified for one of the query parameters in the "
                         "request URI.");
        return 0;
    }
    if (s && mode == 'n' && s->snapshots + s->leased_snapshots > 0) {
        azsim__arm_error(q->resp, 409, "ShareHasSnapshots",
                         "The share has snapshots and the operation requires no snapshots.");
        return 0;
    }
    if (s && mode == 's' && s->leased_snapshots > 0) {
        azsim__arm_error(q->resp, 409, "DeleteShareWhenSnapshotLeased",
                         "Unable to delete share because one or more share snapshots have active "
                         "leases.");
        return 0;
    }
    return 1;
}

/* FileShares_Delete: 200, the share soft-deleted with its snapshots; 204
 * when there is none; refused by a lock or by $include. */
static void share_delete(azsim__rq_t *q)
{
    azsim_t *sim = q->sim;
    azsim__share_t *s = lookup(q);
    if (s && s->deleted)
        s = NULL;
    if (azsim__locked(q, s, 'd') || !delete_allowed(q, s))
        return;
    if (!s) {
        q->resp->status = 204;
        return;
    }
    s->deleted = 1;
    s->deleted_wall = q->wall;
    s->epoch++;
    snprintf(s->version, sizeof(s->version), "%lld", (long long)q->wall);
    azsim__record_deleted(sim, 's', s->id, q->wall);
    azsim__heap_push(&sim->events, q->now + sim->o.share_recreate_ms, AZSIM__EV_SHARE_PURGE,
                     s->epoch, s->e.key);
    q->resp->status = 200;
}

/*
 * FileShares_Restore: brings a soft-deleted share back under its name,
 * given the version a list with $expand=deleted showed. Possible only
 * while the share is soft-deleted (share_recreate_ms here).
 */
static void share_restore(azsim__rq_t *q)
{
    if (azsim__locked(q, NULL, 'w'))
        return;
    cJSON *body = cJSON_ParseWithLength(q->req->body, q->req->body_len);
    const cJSON *name = cJSON_GetObjectItem(body, "deletedShareName");
    const cJSON *version = cJSON_GetObjectItem(body, "deletedShareVersion");
    if (!cJSON_IsString(name) || !cJSON_IsString(version)) {
        azsim__arm_error(q->resp, 400, "InvalidRequestContent",
                         "The request content was invalid: deletedShareName and "
                         "deletedShareVersion are required strings.");
        cJSON_Delete(body);
        return;
    }
    if (!azsim__ieq(name->valuestring, q->seg[11])) {
        azsim__arm_error(q->resp, 400, "InvalidRequestContent",
                         "A deleted share can only be restored under its own name.");
        cJSON_Delete(body);
        return;
    }
    azsim__share_t *s = lookup(q);
    if (s && !s->deleted) {
        azsim__arm_error(q->resp, 409, "ShareAlreadyExists", "The specified share already exists.");
    } else if (!s || strcmp(s->version, version->valuestring) != 0) {
        azsim__arm_error(q->resp, 404, "DeletedShareNotFound",
                         "The specified deleted share does not exist.");
    } else {
        s->deleted = 0;
        s->epoch++; /* the pending purge no longer applies */
        s->version[0] = '\0';
        s->modified_wall = q->wall;
        q->resp->status = 200;
    }
    cJSON_Delete(body);
}

/* Whether the comma-separated $expand list names `what`. */
static int expands(const char *expand, const char *what)
{
    size_t n = strlen(what);
    for (const char *p = expand; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t len = strcspn(p, ",");
        size_t t = len;
        while (t > 0 && p[t - 1] == ' ')
            t--;
        if (t == n && strncasecmp(p, what, n) == 0)
            return 1;
        p += len;
    }
    return 0;
}

/* The query parameters of a share list. */
typedef struct list_params {
    char expand[128]; /* $expand as given; "" when absent */
    char maxps[32];   /* $maxpagesize as given, when nmaxps > 0 */
    int nmaxps;       /* azsim__param's answer for $maxpagesize */
    azsim__page_t pg; /* the page asked for */
} list_params_t;

/* Reads $expand, $maxpagesize and $skipToken into lp. Returns 1, or
 * answers 400 and returns 0. */
static int read_list_params(azsim__rq_t *q, list_params_t *lp)
{
    lp->expand[0] = lp->maxps[0] = '\0';
    int ne = azsim__param(q->req->query, "$expand", lp->expand, sizeof(lp->expand));
    if (ne == -2) {
        azsim__arm_error(q->resp, 400, "InvalidQueryParameterValue",
                         "The value of $expand is not valid.");
        return 0;
    }
    if (ne < 0)
        lp->expand[0] = '\0';
    if (!azsim__page_start(q, &lp->pg))
        return 0;
    int nm = azsim__param(q->req->query, "$maxpagesize", lp->maxps, sizeof(lp->maxps));
    lp->nmaxps = nm;
    long v = nm > 0 ? strtol(lp->maxps, NULL, 10) : 0;
    if (nm == -2 || (nm >= 0 && (nm == 0 || strspn(lp->maxps, "0123456789") != (size_t)nm ||
                                 v < 1 || v > 5000))) {
        azsim__arm_error(q->resp, 400, "OutOfRangeInput",
                         "The $maxpagesize must be an integer from 1 to 5000.");
        return 0;
    }
    if (nm > 0)
        lp->pg.size = (size_t)v;
    return 1;
}

/* Appends to b the nextLink of a page that ended at sequence number last:
 * this URL with the same $maxpagesize and $expand and a new $skipToken. */
static void append_next_link(azsim__rq_t *q, d8_buf_t *b, const list_params_t *lp, uint64_t last)
{
    d8_buf_t extra;
    d8_buf_init(&extra);
    if (lp->nmaxps > 0)
        d8_buf_printf(&extra, "&$maxpagesize=%s", lp->maxps);
    if (lp->expand[0]) {
        d8_buf_puts(&extra, "&$expand=");
        for (const char *p = lp->expand; *p; p++) {
            if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))
                d8_buf_putc(&extra, *p);
            else
                d8_buf_printf(&extra, "%%%02X", (unsigned char)*p);
        }
    }
    azsim__page_next_link(q, b, extra.data, last);
    d8_buf_release(&extra);
}

/*
 * FileShares_List: one page of the account's shares in insertion order;
 * $expand=metadata adds their metadata, $expand=deleted the soft-deleted.
 * With paging.emptyPages the first page is empty, with a nextLink.
 */
static void share_list(azsim__rq_t *q)
{
    azsim_t *sim = q->sim;
    if (!azsim__check_account(q))
        return;
    list_params_t lp;
    if (!read_list_params(q, &lp))
        return;
    int with_md = expands(lp.expand, "metadata");
    int with_deleted = expands(lp.expand, "deleted");
    d8_buf_t prefix;
    d8_buf_init(&prefix);
    share_id(&prefix, q->seg[1], q->seg[3], q->seg[7], "");
    azsim__lower(prefix.data);
    d8_buf_t *b = &q->resp->body;
    d8_buf_reset(b);
    d8_buf_puts(b, "{\"value\":[");
    size_t count = 0;
    uint64_t last = lp.pg.after;
    int more = lp.pg.empty_now;
    for (azsim__ent_t *e = azsim__table_first(&sim->shares); e && !lp.pg.empty_now;
         e = azsim__table_next(&sim->shares, e)) {
        const azsim__share_t *s = (const azsim__share_t *)e;
        if (e->seq <= lp.pg.after || (s->deleted && !with_deleted) ||
            strncmp(e->key, prefix.data, prefix.len) != 0)
            continue;
        if (count == lp.pg.size) {
            more = 1;
            break;
        }
        cJSON *j = azsim__share_json(s, s->deleted ? 'd' : with_md ? 'm' : 'l');
        char *t = cJSON_PrintUnformatted(j);
        d8_buf_printf(b, "%s%s", count ? "," : "", t);
        free(t);
        cJSON_Delete(j);
        count++;
        last = e->seq;
    }
    d8_buf_putc(b, ']');
    if (more)
        append_next_link(q, b, &lp, last);
    d8_buf_putc(b, '}');
    d8_buf_release(&prefix);
    q->resp->status = 200;
    q->resp->content_type = "application/json; charset=utf-8";
}

void azsim__files_route(azsim__rq_t *q)
{
    if (!azsim__provider_registered(q, "Microsoft.Storage"))
        return;
    switch (q->op) {
    case AZSIM__OP_FS_CREATE:
        share_put(q);
        break;
    case AZSIM__OP_FS_GET:
        share_get(q);
        break;
    case AZSIM__OP_FS_UPDATE:
        share_patch(q);
        break;
    case AZSIM__OP_FS_DELETE:
        share_delete(q);
        break;
    case AZSIM__OP_FS_LIST:
        share_list(q);
        break;
    case AZSIM__OP_FS_RESTORE:
        share_restore(q);
        break;
    case AZSIM__OP_SA_LISTKEYS:
    case AZSIM__OP_SA_GET:
        azsim__account_route(q);
        break;
    default:
        azsim__arm_error(q->resp, 404, "InvalidResourceType", "Unknown operation.");
    }
}

void azsim__files_apply_event(azsim_t *sim, const azsim__event_t *ev)
{
    azsim__share_t *s = (azsim__share_t *)azsim__table_get(&sim->shares, ev->key);
    if (!s || !s->deleted || s->epoch != ev->epoch)
        return;
    azsim__table_del(&sim->shares, &s->e);
    azsim__share_free(s);
}
