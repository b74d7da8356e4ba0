/* hub.c — Hugging Face hub client over libcurl, cache layout compatible with huggingface_hub.
 * See hub.h for the layout and the environment variables. */
#include "models/hub.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_ENDPOINT "https://huggingface.co"
#define MAX_TRIES 4

/* ---------------------------------------------------------------- options, paths */

void mp_hub_default_opts(mp_hub_opts *o) {
    memset(o, 0, sizeof *o);
    o->progress = -1;
}

static const char *env_nonempty(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static int env_true(const char *name) {
    const char *v = env_nonempty(name);
    return v && (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"));
}

static void hf_home(char *out, size_t cap) {
    const char *h = env_nonempty("HF_HOME");
    if (h) {
        snprintf(out, cap, "%s", h);
        return;
    }
    const char *xdg = env_nonempty("XDG_CACHE_HOME");
    if (xdg) {
        snprintf(out, cap, "%s/huggingface", xdg);
        return;
    }
    const char *home = env_nonempty("HOME");
    snprintf(out, cap, "%s/.cache/huggingface", home ? home : ".");
}

static void cache_root(const mp_hub_opts *o, char *out, size_t cap) {
    if (o && o->cache_dir) {
        snprintf(out, cap, "%s", o->cache_dir);
        return;
    }
    const char *c = env_nonempty("HF_HUB_CACHE");
    if (!c) c = env_nonempty("HUGGINGFACE_HUB_CACHE");
    if (c) {
        snprintf(out, cap, "%s", c);
        return;
    }
    char home[PATH_MAX - 16];
    hf_home(home, sizeof home);
    snprintf(out, cap, "%s/hub", home);
}

static const char *endpoint(const mp_hub_opts *o) {
    if (o && o->endpoint) return o->endpoint;
    const char *e = env_nonempty("HF_ENDPOINT");
    return e ? e : DEFAULT_ENDPOINT;
}

static int is_offline(const mp_hub_opts *o) { return (o && o->offline) || env_true("HF_HUB_OFFLINE"); }

static const char *revision(const mp_hub_opts *o) { return o && o->revision ? o->revision : "main"; }

/* Token: option, $HF_TOKEN, $HF_HOME/token. Returned in buf (may be empty). */
static const char *token(const mp_hub_opts *o, char *buf, size_t cap) {
    buf[0] = 0;
    if (o && o->token) {
        snprintf(buf, cap, "%s", o->token);
    } else if (env_nonempty("HF_TOKEN")) {
        snprintf(buf, cap, "%s", getenv("HF_TOKEN"));
    } else {
        char home[PATH_MAX], path[PATH_MAX + 8];
        hf_home(home, sizeof home);
        snprintf(path, sizeof path, "%s/token", home);
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(buf, (int)cap, f)) buf[0] = 0;
            fclose(f);
        }
    }
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) buf[--n] = 0;
    return buf;
}

static int valid_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.';
}

/* "ORG/NAME": both parts non-empty, [A-Za-z0-9._-], no "..", at most 96 chars each. */
static int valid_repo(const char *repo, size_t len) {
    const char *slash = memchr(repo, '/', len);
    if (!slash) return 0;
    size_t a = (size_t)(slash - repo), b = len - a - 1;
    if (a == 0 || b == 0 || a > 96 || b > 96) return 0;
    for (size_t i = 0; i < len; i++)
        if (i != a && !valid_name_char(repo[i])) return 0;
    if (repo[0] == '.' || slash[1] == '.') return 0;
    if (memmem(repo, len, "..", 2)) return 0;
    return 1;
}

/* A file path inside a repo: relative, no "..", no empty components, no control chars. */
static int valid_repo_path(const char *p) {
    if (!*p || *p == '/' || strlen(p) > 1024) return 0;
    const char *s = p;
    while (*s) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) return 0;
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)s[i] < 0x20 || s[i] == '\\') return 0;
        s += n;
        if (*s == '/') s++;
    }
    return 1;
}

/* An etag or commit id as it may appear in a file name: hex/alnum, 1..128 chars. */
static int valid_id(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 128) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              s[i] == '-' || s[i] == '_'))
            return 0;
    return 1;
}

static int is_hex(const char *s, size_t n) {
    if (strlen(s) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

int mp_hub_is_repo_id(const char *spec) {
    struct stat st;
    if (!spec || stat(spec, &st) == 0) return 0;
    const char *colon = strchr(spec, ':');
    size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    if (!valid_repo(spec, len)) return 0;
    return !colon || valid_repo_path(colon + 1);
}

int mp_hub_repo_dir(const mp_hub_opts *o, const char *repo, char *out, size_t cap, mp_error *err) {
    if (!valid_repo(repo, strlen(repo))) return mp_errf(err, "'%s' is not a hub repo id (expected ORG/NAME)", repo);
    char root[PATH_MAX];
    cache_root(o, root, sizeof root);
    const char *slash = strchr(repo, '/');
    int n = snprintf(out, cap, "%s/models--%.*s--%s", root, (int)(slash - repo), repo, slash + 1);
    if (n < 0 || (size_t)n >= cap) return mp_errf(err, "%s: cache path too long", repo);
    return 0;
}

static int mkdirs(const char *path, mp_error *err) {
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return mp_errf(err, "cannot create %s: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return mp_errf(err, "cannot create %s: %s", tmp, strerror(errno));
    return 0;
}

static int mkdirs_for_file(const char *file, mp_error *err) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", file);
    char *s = strrchr(dir, '/');
    if (!s) return 0;
    *s = 0;
    return mkdirs(dir, err);
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int dir_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int read_ref(const char *repo_dir, const char *rev, char *commit, size_t cap) {
    char path[PATH_MAX + 300];
    snprintf(path, sizeof path, "%s/refs/%s", repo_dir, rev);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int ok = fgets(commit, (int)cap, f) != NULL;
    fclose(f);
    if (!ok) return -1;
    commit[strcspn(commit, "\r\n ")] = 0;
    return valid_id(commit) ? 0 : -1;
}

static int write_ref(const char *repo_dir, const char *rev, const char *commit, mp_error *err) {
    if (!strcmp(rev, commit)) return 0;
    if (!valid_repo_path(rev)) return 0; /* odd revision names: do not write refs for them */
    char path[PATH_MAX + 300], tmp[PATH_MAX + 320];
    snprintf(path, sizeof path, "%s/refs/%s", repo_dir, rev);
    if (mkdirs_for_file(path, err)) return -1;
    snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return mp_errf(err, "cannot write %s: %s", path, strerror(errno));
    fputs(commit, f);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return mp_errf(err, "cannot write %s: %s", path, strerror(errno));
    }
    return 0;
}

/* The commit a revision names in the cache: itself if it is a commit hash with a snapshot. */
static int cached_commit(const char *repo_dir, const char *rev, char *commit, size_t cap) {
    if (read_ref(repo_dir, rev, commit, cap) == 0) return 0;
    if (is_hex(rev, 40)) {
        char snap[PATH_MAX + 100];
        snprintf(snap, sizeof snap, "%s/snapshots/%s", repo_dir, rev);
        if (dir_exists(snap)) {
            snprintf(commit, cap, "%s", rev);
            return 0;
        }
    }
    return -1;
}

/* ---------------------------------------------------------------- hashing */

/* sha256 (kind 0) or git blob sha1 (kind 1: sha1("blob <size>\0" + content)) of a file, as hex. */
static int hash_file(const char *path, int kind, char *hex, mp_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return mp_errf(err, "cannot open %s: %s", path, strerror(errno));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, kind == 0 ? EVP_sha256() : EVP_sha1(), NULL);
    if (kind == 1) {
        struct stat st;
        fstat(fileno(f), &st);
        char hdr[64];
        int n = snprintf(hdr, sizeof hdr, "blob %lld", (long long)st.st_size);
        EVP_DigestUpdate(ctx, hdr, (size_t)n + 1); /* includes the NUL */
    }
    static unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) EVP_DigestUpdate(ctx, buf, n);
    int rerr = ferror(f);
    fclose(f);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    if (rerr) return mp_errf(err, "read error on %s", path);
    for (unsigned i = 0; i < mdlen; i++) sprintf(hex + 2 * i, "%02x", md[i]);
    hex[2 * mdlen] = 0;
    return 0;
}

/* ---------------------------------------------------------------- HTTP */

typedef struct {
    long status;
    char commit[129], etag[129], linked_etag[129], location[2048], error_code[128], error_msg[256];
    long long linked_size, content_length;
} head_info;

static void header_value(const char *line, size_t n, const char *name, char *dst, size_t cap) {
    size_t ln = strlen(name);
    if (n <= ln + 1 || strncasecmp(line, name, ln) != 0 || line[ln] != ':') return;
    const char *v = line + ln + 1;
    size_t vn = n - ln - 1;
    while (vn && (*v == ' ' || *v == '\t')) v++, vn--;
    while (vn && (v[vn - 1] == '\r' || v[vn - 1] == '\n' || v[vn - 1] == ' ')) vn--;
    if (vn >= cap) vn = cap - 1;
    memcpy(dst, v, vn);
    dst[vn] = 0;
}

static size_t head_header_cb(char *buf, size_t size, size_t nitems, void *ud) {
    head_info *h = ud;
    size_t n = size * nitems;
    char tmp[64];
    if (n > 5 && !strncmp(buf, "HTTP/", 5)) { /* a new response (after a redirect): reset */
        memset(h, 0, sizeof *h);
        h->linked_size = h->content_length = -1;
        return n;
    }
    header_value(buf, n, "X-Repo-Commit", h->commit, sizeof h->commit);
    header_value(buf, n, "ETag", h->etag, sizeof h->etag);
    header_value(buf, n, "X-Linked-Etag", h->linked_etag, sizeof h->linked_etag);
    header_value(buf, n, "Location", h->location, sizeof h->location);
    header_value(buf, n, "X-Error-Code", h->error_code, sizeof h->error_code);
    header_value(buf, n, "X-Error-Message", h->error_msg, sizeof h->error_msg);
    tmp[0] = 0;
    header_value(buf, n, "X-Linked-Size", tmp, sizeof tmp);
    if (tmp[0]) h->linked_size = strtoll(tmp, NULL, 10);
    tmp[0] = 0;
    header_value(buf, n, "Content-Length", tmp, sizeof tmp);
    if (tmp[0]) h->content_length = strtoll(tmp, NULL, 10);
    return n;
}

static size_t discard_cb(char *p, size_t s, size_t n, void *u) {
    (void)p;
    (void)u;
    return s * n;
}

static struct curl_slist *auth_headers(const mp_hub_opts *o) {
    char tok[1024];
    struct curl_slist *hl = curl_slist_append(NULL, "User-Agent: mmpipe/" MMPIPE_VERSION "; hf_hub-compatible");
    hl = curl_slist_append(hl, "Accept-Encoding: identity");
    if (token(o, tok, sizeof tok)[0]) {
        char line[1100];
        snprintf(line, sizeof line, "Authorization: Bearer %s", tok);
        hl = curl_slist_append(hl, line);
    }
    return hl;
}

static void curl_common(CURL *c, struct curl_slist *hl) {
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
}

static void init_curl_once(void) {
    static int done = 0;
    if (!done) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        done = 1;
    }
}

/* An HTTP status turned into one clear line. */
static int http_error(mp_error *err, const char *repo, const char *what, long status, const char *code,
                     const char *msg) {
    if (status == 401 || status == 403)
        return mp_errf(err,
                       "%s: %s: access denied (HTTP %ld%s%s): the repo is gated or private; accept its terms on "
                       "the hub and set HF_TOKEN",
                       repo, what, status, code && *code ? ", " : "", code ? code : "");
    if (status == 404) {
        if (code && !strcmp(code, "RepoNotFound"))
            return mp_errf(err, "%s: repository not found on the hub (HTTP 404)", repo);
        if (code && !strcmp(code, "RevisionNotFound"))
            return mp_errf(err, "%s: revision not found on the hub (HTTP 404)", repo);
        return mp_errf(err, "%s: %s not found on the hub (HTTP 404%s%s)", repo, what, code && *code ? ", " : "",
                       code ? code : "");
    }
    return mp_errf(err, "%s: %s: HTTP %ld%s%s", repo, what, status, msg && *msg ? ": " : "", msg ? msg : "");
}

/* HEAD the resolve URL, following only relative (same-host) redirects, as huggingface_hub does: the
 * LFS redirect to a CDN keeps the metadata of the first response. */
static int http_head(const mp_hub_opts *o, const char *url_in, head_info *h, char *dl_url, size_t dl_cap,
                     CURLcode *net, mp_error *err) {
    char url[4096];
    snprintf(url, sizeof url, "%s", url_in);
    *net = CURLE_OK;
    for (int hop = 0; hop < 5; hop++) {
        CURL *c = curl_easy_init();
        if (!c) return mp_errf(err, "curl init failed");
        struct curl_slist *hl = auth_headers(o);
        curl_common(c, hl);
        memset(h, 0, sizeof *h);
        h->linked_size = h->content_length = -1;
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, head_header_cb);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, h);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_cb);
        CURLcode rc = curl_easy_perform(c);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &h->status);
        curl_slist_free_all(hl);
        curl_easy_cleanup(c);
        if (rc != CURLE_OK) {
            *net = rc;
            return mp_errf(err, "cannot reach %s: %s", url, curl_easy_strerror(rc));
        }
        if (h->status >= 300 && h->status < 400 && h->location[0]) {
            if (h->location[0] == '/') { /* relative: same host, follow (renamed repo) */
                /* scheme://host of the current url, then the new path */
                const char *p = strstr(url, "://");
                p = p ? strchr(p + 3, '/') : NULL;
                size_t host_len = p ? (size_t)(p - url) : strlen(url);
                char next[4096];
                int k = snprintf(next, sizeof next, "%.*s%s", (int)host_len, url, h->location);
                if (k < 0 || (size_t)k >= sizeof next) return mp_errf(err, "%s: redirect URL too long", url_in);
                memcpy(url, next, (size_t)k + 1);
                continue;
            }
            snprintf(dl_url, dl_cap, "%s", h->location); /* absolute: the CDN */
            return 0;
        }
        snprintf(dl_url, dl_cap, "%s", url);
        return 0;
    }
    return mp_errf(err, "%s: too many redirects", url_in);
}

typedef struct {
    FILE *f;
    CURL *c;
    long long offset;  /* bytes already in the file when this request started */
    long long written; /* bytes written by this request */
    int checked;
    int write_error;
    long status;
    const char *label;
    int progress;
    long long total;
    double t0, last;
} dl_state;

static double now_s(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec + tv.tv_usec * 1e-6;
}

static size_t dl_write_cb(char *p, size_t s, size_t n, void *ud) {
    dl_state *d = ud;
    size_t bytes = s * n;
    if (!d->checked) {
        d->checked = 1;
        curl_easy_getinfo(d->c, CURLINFO_RESPONSE_CODE, &d->status);
        if (d->status >= 400) return 0; /* error body: do not write it into the blob */
        if (d->offset > 0 && d->status == 200) { /* server ignored Range: start over */
            if (fflush(d->f) != 0 || ftruncate(fileno(d->f), 0) != 0 || fseek(d->f, 0, SEEK_SET) != 0) {
                d->write_error = errno ? errno : EIO;
                return 0;
            }
            d->offset = 0;
        }
    }
    if (fwrite(p, 1, bytes, d->f) != bytes) {
        d->write_error = errno ? errno : EIO;
        return 0;
    }
    d->written += (long long)bytes;
    return bytes;
}

static int dl_progress_cb(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ut, curl_off_t un) {
    (void)ut;
    (void)un;
    dl_state *d = ud;
    if (!d->progress) return 0;
    double t = now_s();
    if (t - d->last < 0.1 && dlnow != dltotal) return 0;
    d->last = t;
    long long done = d->offset + (long long)dlnow;
    long long total = d->total > 0 ? d->total : (dltotal > 0 ? d->offset + (long long)dltotal : -1);
    double rate = (double)dlnow / (t - d->t0 + 1e-9);
    if (total > 0)
        fprintf(stderr, "\r%-40.40s %3d%% %8.1f/%.1f MB %7.1f MB/s", d->label, (int)(100.0 * done / total), done / 1e6,
                total / 1e6, rate / 1e6);
    else
        fprintf(stderr, "\r%-40.40s %8.1f MB %7.1f MB/s", d->label, done / 1e6, rate / 1e6);
    return 0;
}

/* GET url into path, appending from the current size of path (Range). */
static int http_download(const mp_hub_opts *o, const char *url, const char *path, const char *label,
                         long long expected, CURLcode *net, long *status, mp_error *err) {
    FILE *f = fopen(path, "ab");
    if (!f) return mp_errf(err, "cannot write %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long long have = ftell(f);
    if (expected >= 0 && have > expected) { /* junk beyond the expected size: restart */
        if (ftruncate(fileno(f), 0) != 0) {
            fclose(f);
            return mp_errf(err, "cannot truncate %s: %s", path, strerror(errno));
        }
        fseek(f, 0, SEEK_SET);
        have = 0;
    }
    *net = CURLE_OK;
    *status = 0;
    if (expected >= 0 && have == expected) {
        fclose(f);
        return 0;
    }
    CURL *c = curl_easy_init();
    struct curl_slist *hl = auth_headers(o);
    curl_common(c, hl);
    dl_state d = {.f = f, .c = c, .offset = have, .label = label, .total = expected, .t0 = now_s()};
    d.progress = o->progress < 0 ? isatty(2) : o->progress;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, dl_write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &d);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, dl_progress_cb);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &d);
    if (have > 0) {
        char range[64];
        snprintf(range, sizeof range, "%lld-", have);
        curl_easy_setopt(c, CURLOPT_RANGE, range);
    }
    CURLcode rc = curl_easy_perform(c);
    if (!d.checked) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &d.status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    int ferr = fflush(f) != 0 || fsync(fileno(f)) != 0;
    int ferrno = errno;
    fclose(f);
    if (d.progress) fputc('\n', stderr);
    *status = d.status;
    if (d.write_error || ferr) {
        int e = d.write_error ? d.write_error : ferrno;
        if (e == ENOSPC) return mp_errf(err, "disk full while writing %s", path);
        return mp_errf(err, "cannot write %s: %s", path, strerror(e));
    }
    if (d.status >= 400) return mp_errf(err, "HTTP %ld", d.status);
    if (rc != CURLE_OK) {
        *net = rc;
        return mp_errf(err, "download of %s interrupted: %s", label, curl_easy_strerror(rc));
    }
    return 0;
}

typedef struct {
    char *buf;
    size_t n, cap;
} membuf;

static size_t mem_write_cb(char *p, size_t s, size_t n, void *ud) {
    membuf *m = ud;
    size_t b = s * n;
    if (m->n + b + 1 > (size_t)64 << 20) return 0; /* 64 MiB is far beyond any repo listing */
    if (m->n + b + 1 > m->cap) {
        size_t nc = (m->n + b + 1) * 2;
        char *nb = realloc(m->buf, nc);
        if (!nb) return 0;
        m->buf = nb;
        m->cap = nc;
    }
    memcpy(m->buf + m->n, p, b);
    m->n += b;
    m->buf[m->n] = 0;
    return b;
}

static int http_get_json(const mp_hub_opts *o, const char *url, cJSON **out, long *status, CURLcode *net,
                         head_info *h, mp_error *err) {
    CURL *c = curl_easy_init();
    struct curl_slist *hl = auth_headers(o);
    curl_common(c, hl);
    membuf m = {0};
    memset(h, 0, sizeof *h);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, mem_write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &m);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, head_header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, h);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    *net = rc;
    *out = NULL;
    if (rc != CURLE_OK) {
        free(m.buf);
        return mp_errf(err, "cannot reach %s: %s", url, curl_easy_strerror(rc));
    }
    if (*status >= 400) {
        free(m.buf);
        return -1;
    }
    *out = m.buf ? cJSON_Parse(m.buf) : NULL;
    free(m.buf);
    if (!*out) return mp_errf(err, "%s: the hub's answer is not valid JSON", url);
    return 0;
}

/* ---------------------------------------------------------------- cache entries */

static int snapshot_path(const char *repo_dir, const char *commit, const char *file, char *out, size_t cap) {
    int n = snprintf(out, cap, "%s/snapshots/%s/%s", repo_dir, commit, file);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* snapshots/<commit>/<file> -> ../../blobs/<etag> (one more ../ per subfolder of file). */
static int link_snapshot(const char *repo_dir, const char *commit, const char *file, const char *etag,
                         const char *blob, mp_error *err) {
    char snap[PATH_MAX];
    if (snapshot_path(repo_dir, commit, file, snap, sizeof snap)) return mp_errf(err, "%s: path too long", file);
    if (mkdirs_for_file(snap, err)) return -1;
    char rel[PATH_MAX] = "";
    size_t len = 0;
    for (const char *p = file; *p; p++)
        if (*p == '/') len += (size_t)snprintf(rel + len, sizeof rel - len, "../");
    snprintf(rel + len, sizeof rel - len, "../../blobs/%s", etag);
    unlink(snap);
    if (symlink(rel, snap) == 0) return 0;
    /* filesystems without symlinks: a hard link, else a copy */
    if (link(blob, snap) == 0) return 0;
    FILE *in = fopen(blob, "rb"), *outf = in ? fopen(snap, "wb") : NULL;
    if (!in || !outf) {
        if (in) fclose(in);
        return mp_errf(err, "cannot create %s: %s", snap, strerror(errno));
    }
    static char buf[1 << 16];
    size_t n;
    int bad = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, outf) != n) bad = 1;
    fclose(in);
    if (fclose(outf) != 0) bad = 1;
    if (bad) return mp_errf(err, "cannot write %s: %s", snap, errno == ENOSPC ? "disk full" : strerror(errno));
    return 0;
}

static void strip_etag(const char *in, char *out, size_t cap) {
    if (!strncmp(in, "W/", 2)) in += 2;
    size_t n = strlen(in);
    if (n >= 2 && in[0] == '"' && in[n - 1] == '"') {
        in++;
        n -= 2;
    }
    if (n >= cap) n = cap - 1;
    memcpy(out, in, n);
    out[n] = 0;
}

/* Verify a finished download against the metadata: size, then sha256 (64-hex etag, LFS) or git blob sha1
 * (40-hex etag). */
static int verify_blob(const char *path, const char *etag, long long expected, const char *label, mp_error *err) {
    struct stat st;
    if (stat(path, &st) != 0) return mp_errf(err, "%s: downloaded file vanished", label);
    if (expected >= 0 && (long long)st.st_size != expected)
        return mp_errf(err, "%s: size mismatch: expected %lld bytes, got %lld", label, expected, (long long)st.st_size);
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    if (is_hex(etag, 64)) {
        if (hash_file(path, 0, hex, err)) return -1;
        if (strcmp(hex, etag)) return mp_errf(err, "%s: checksum mismatch: expected sha256 %s, got %s", label, etag, hex);
    } else if (is_hex(etag, 40)) {
        if (hash_file(path, 1, hex, err)) return -1;
        if (strcmp(hex, etag)) return mp_errf(err, "%s: checksum mismatch: expected git sha1 %s, got %s", label, etag, hex);
    }
    return 0;
}

static int find_cached(const mp_hub_opts *o, const char *repo_dir, const char *repo, const char *filename, char *out,
                       size_t cap, const char *why, mp_error *err) {
    char commit[130];
    if (cached_commit(repo_dir, revision(o), commit, sizeof commit) == 0 &&
        snapshot_path(repo_dir, commit, filename, out, cap) == 0 && file_exists(out))
        return 0;
    return mp_errf(err, "%s: %s is not in the cache (%s) and %s", repo, filename, repo_dir, why);
}

static int fetch_file(const mp_hub_opts *o, const char *repo, const char *filename, const char *rev, char *out,
                      size_t cap, mp_error *err) {
    char repo_dir[PATH_MAX];
    if (mp_hub_repo_dir(o, repo, repo_dir, sizeof repo_dir, err)) return -1;
    if (!valid_repo_path(filename)) return mp_errf(err, "%s: '%s' is not a valid file name in a repo", repo, filename);
    if (is_offline(o)) return find_cached(o, repo_dir, repo, filename, out, cap, "HF_HUB_OFFLINE is set", err);

    init_curl_once();
    char url[4096], dl_url[4096];
    char *efile = curl_easy_escape(NULL, filename, 0), *erev = curl_easy_escape(NULL, rev, 0);
    /* keep '/' in the path unescaped */
    char fpath[3072] = "";
    for (const char *s = efile; *s;) {
        if (!strncmp(s, "%2F", 3)) {
            strncat(fpath, "/", sizeof fpath - strlen(fpath) - 1);
            s += 3;
        } else {
            strncat(fpath, s, 1);
            s++;
        }
    }
    snprintf(url, sizeof url, "%s/%s/resolve/%s/%s", endpoint(o), repo, erev, fpath);
    curl_free(efile);
    curl_free(erev);

    head_info h;
    CURLcode net;
    mp_error herr;
    if (http_head(o, url, &h, dl_url, sizeof dl_url, &net, &herr) != 0) {
        if (net != CURLE_OK) { /* offline: fall back to the cache, as huggingface_hub does */
            mp_error cerr;
            if (find_cached(o, repo_dir, repo, filename, out, cap, "the hub cannot be reached", &cerr) == 0) return 0;
            return mp_errf(err, "%s (%s)", cerr.msg, herr.msg);
        }
        return mp_errf(err, "%s", herr.msg);
    }
    if (h.status >= 400) return http_error(err, repo, filename, h.status, h.error_code, h.error_msg);
    char etag[129];
    strip_etag(h.linked_etag[0] ? h.linked_etag : h.etag, etag, sizeof etag);
    const char *commit = h.commit;
    if (!commit[0] || !valid_id(commit)) return mp_errf(err, "%s: %s: the server sent no valid X-Repo-Commit", repo, filename);
    if (!etag[0] || !valid_id(etag)) return mp_errf(err, "%s: %s: the server sent no valid ETag", repo, filename);
    long long expected = h.linked_size >= 0 ? h.linked_size : h.content_length;

    if (write_ref(repo_dir, rev, commit, err)) return -1;
    char blob[PATH_MAX + 200], part[PATH_MAX + 220], lockp[PATH_MAX + 300];
    snprintf(blob, sizeof blob, "%s/blobs/%s", repo_dir, etag);
    snprintf(part, sizeof part, "%s.incomplete", blob);
    if (snapshot_path(repo_dir, commit, filename, out, cap)) return mp_errf(err, "%s: path too long", filename);
    if (file_exists(out) && file_exists(blob)) return 0;

    /* lock: .locks/models--ORG--NAME/<etag>.lock */
    char root[PATH_MAX];
    cache_root(o, root, sizeof root);
    const char *base = strrchr(repo_dir, '/');
    snprintf(lockp, sizeof lockp, "%s/.locks%s/%s.lock", root, base, etag);
    if (mkdirs_for_file(lockp, err) || mkdirs_for_file(blob, err)) return -1;
    int lfd = open(lockp, O_CREAT | O_RDWR, 0644);
    if (lfd < 0) return mp_errf(err, "cannot create lock %s: %s", lockp, strerror(errno));
    flock(lfd, LOCK_EX);
    int rc = 0;
    if (!file_exists(blob)) {
        int quiet = o->quiet;
        if (!quiet) fprintf(stderr, "mmpipe: downloading %s/%s (%.1f MB)\n", repo, filename, expected >= 0 ? expected / 1e6 : 0.0);
        rc = -1;
        for (int attempt = 0; attempt < MAX_TRIES; attempt++) {
            long status = 0;
            mp_error derr;
            if (http_download(o, dl_url, part, filename, expected, &net, &status, &derr) == 0) {
                rc = 0;
                break;
            }
            if (status >= 400) {
                http_error(err, repo, filename, status, NULL, NULL);
                break;
            }
            if (net == CURLE_OK || attempt == MAX_TRIES - 1) { /* not a transient network problem */
                mp_errf(err, "%s/%s: %s", repo, filename, derr.msg);
                break;
            }
            if (!quiet) fprintf(stderr, "mmpipe: %s; resuming (attempt %d of %d)\n", derr.msg, attempt + 2, MAX_TRIES);
            usleep(200000u << attempt);
        }
        if (rc == 0) {
            char label[1200];
            snprintf(label, sizeof label, "%s/%s", repo, filename);
            if (verify_blob(part, etag, expected, label, err) != 0) {
                unlink(part); /* a corrupt download must not be resumed */
                rc = -1;
            } else if (rename(part, blob) != 0) {
                rc = mp_errf(err, "cannot rename %s to %s: %s", part, blob, strerror(errno));
            }
        }
    }
    if (rc == 0) rc = link_snapshot(repo_dir, commit, filename, etag, blob, err);
    flock(lfd, LOCK_UN);
    close(lfd);
    return rc;
}

int mp_hub_file(const mp_hub_opts *o, const char *repo, const char *filename, char *out, size_t cap, mp_error *err) {
    mp_hub_opts def;
    if (!o) {
        mp_hub_default_opts(&def);
        o = &def;
    }
    return fetch_file(o, repo, filename, revision(o), out, cap, err);
}

static int matches(const char *name, const char *const *patterns, int n) {
    if (n == 0) return 1;
    for (int i = 0; i < n; i++)
        if (fnmatch(patterns[i], name, 0) == 0) return 1;
    return 0;
}

/* The repo's file list at a revision, from the hub API (JSON: {"sha": ..., "siblings": [{"rfilename"}]}). */
static int list_repo(const mp_hub_opts *o, const char *repo, char *commit, size_t ccap, char ***names, int *count,
                     CURLcode *net, mp_error *err) {
    init_curl_once();
    char url[4096];
    char *erev = curl_easy_escape(NULL, revision(o), 0);
    snprintf(url, sizeof url, "%s/api/models/%s/revision/%s", endpoint(o), repo, erev);
    curl_free(erev);
    cJSON *j = NULL;
    long status = 0;
    head_info h;
    if (http_get_json(o, url, &j, &status, net, &h, err) != 0) {
        if (*net == CURLE_OK && status >= 400) return http_error(err, repo, "file list", status, h.error_code, h.error_msg);
        return -1;
    }
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(j, "sha");
    const cJSON *sib = cJSON_GetObjectItemCaseSensitive(j, "siblings");
    if (!cJSON_IsString(sha) || !valid_id(sha->valuestring) || !cJSON_IsArray(sib)) {
        cJSON_Delete(j);
        return mp_errf(err, "%s: the hub's file list has no sha/siblings", repo);
    }
    snprintf(commit, ccap, "%s", sha->valuestring);
    int n = cJSON_GetArraySize(sib), k = 0;
    char **v = calloc((size_t)n + 1, sizeof *v);
    const cJSON *it;
    cJSON_ArrayForEach(it, sib) {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(it, "rfilename");
        if (cJSON_IsString(fn) && valid_repo_path(fn->valuestring)) v[k++] = strdup(fn->valuestring);
    }
    cJSON_Delete(j);
    *names = v;
    *count = k;
    return 0;
}

static void free_names(char **v, int n) {
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

int mp_hub_snapshot(const mp_hub_opts *o, const char *repo, const char *const *patterns, int n_patterns, char *out,
                    size_t cap, mp_error *err) {
    mp_hub_opts def;
    if (!o) {
        mp_hub_default_opts(&def);
        o = &def;
    }
    char repo_dir[PATH_MAX], commit[130];
    if (mp_hub_repo_dir(o, repo, repo_dir, sizeof repo_dir, err)) return -1;
    CURLcode net = CURLE_OK;
    char **names = NULL;
    int n = 0;
    mp_error lerr;
    if (is_offline(o) || list_repo(o, repo, commit, sizeof commit, &names, &n, &net, &lerr) != 0) {
        if (!is_offline(o) && net == CURLE_OK) return mp_errf(err, "%s", lerr.msg);
        if (cached_commit(repo_dir, revision(o), commit, sizeof commit) == 0) {
            int k = snprintf(out, cap, "%s/snapshots/%s", repo_dir, commit);
            if (k > 0 && (size_t)k < cap && dir_exists(out)) return 0;
        }
        return mp_errf(err, "%s: not in the cache (%s) and %s", repo, repo_dir,
                       is_offline(o) ? "HF_HUB_OFFLINE is set" : lerr.msg);
    }
    int rc = 0, got = 0;
    char path[PATH_MAX];
    for (int i = 0; i < n && rc == 0; i++) {
        if (!matches(names[i], patterns, n_patterns)) continue;
        rc = fetch_file(o, repo, names[i], commit, path, sizeof path, err);
        got++;
    }
    free_names(names, n);
    if (rc) return -1;
    if (got == 0) return mp_errf(err, "%s: no file of the repo matches the requested patterns", repo);
    if (write_ref(repo_dir, revision(o), commit, err)) return -1;
    int k = snprintf(out, cap, "%s/snapshots/%s", repo_dir, commit);
    if (k < 0 || (size_t)k >= cap) return mp_errf(err, "%s: path too long", repo);
    return 0;
}

int mp_model_resolve(const char *spec, const mp_hub_opts *o, char *out, size_t cap, mp_error *err) {
    struct stat st;
    if (stat(spec, &st) == 0) {
        int n = snprintf(out, cap, "%s", spec);
        return n < 0 || (size_t)n >= cap ? mp_errf(err, "%s: path too long", spec) : 0;
    }
    if (!mp_hub_is_repo_id(spec)) return mp_errf(err, "%s: no such file or folder (and not a hub id ORG/NAME[:FILE])", spec);
    char repo[200];
    const char *colon = strchr(spec, ':');
    size_t rl = colon ? (size_t)(colon - spec) : strlen(spec);
    snprintf(repo, sizeof repo, "%.*s", (int)rl, spec);
    if (colon) return mp_hub_file(o, repo, colon + 1, out, cap, err);

    /* A whole model: configs, tokenizer, templates and safetensors weights. */
    static const char *const pats[] = {"*.json", "*.safetensors", "*.txt", "*.jinja", "tokenizer.model"};
    mp_hub_opts def;
    if (!o) {
        mp_hub_default_opts(&def);
        o = &def;
    }
    if (!is_offline(o)) {
        char commit[130], **names = NULL;
        int n = 0;
        CURLcode net;
        mp_error lerr;
        if (list_repo(o, repo, commit, sizeof commit, &names, &n, &net, &lerr) == 0) {
            int st_files = 0, gguf = 0;
            char list[1024] = "";
            for (int i = 0; i < n; i++) {
                size_t L = strlen(names[i]);
                if (L > 12 && !strcmp(names[i] + L - 12, ".safetensors")) st_files++;
                if (L > 5 && !strcmp(names[i] + L - 5, ".gguf")) {
                    if (gguf++ < 6) {
                        strncat(list, gguf > 1 ? ", " : "", sizeof list - strlen(list) - 1);
                        strncat(list, names[i], sizeof list - strlen(list) - 1);
                    }
                }
            }
            free_names(names, n);
            if (!st_files && gguf)
                return mp_errf(err, "%s has %d GGUF file%s and no safetensors; pick one with %s:FILE (%s%s)", repo, gguf,
                               gguf > 1 ? "s" : "", repo, list, gguf > 6 ? ", ..." : "");
        } else if (net == CURLE_OK) {
            return mp_errf(err, "%s", lerr.msg);
        }
    }
    return mp_hub_snapshot(o, repo, pats, (int)(sizeof pats / sizeof pats[0]), out, cap, err);
}
