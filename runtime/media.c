/* media.c — path / file:// / data: URI references (see media.h). Base64 goes through libavutil. */
#include "runtime/media.h"

#include <libavutil/base64.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void mp_media_ref_free(mp_media_ref *m) {
    free(m->path);
    free(m->bytes);
    memset(m, 0, sizeof *m);
}

/* %XX escapes of a file:// URL */
static int unescape(const char *s, char *out, size_t cap) {
    size_t w = 0;
    for (; *s; s++) {
        int c = (unsigned char)*s;
        if (c == '%' && s[1] && s[2]) {
            char hex[3] = {s[1], s[2], 0};
            char *end;
            long v = strtol(hex, &end, 16);
            if (*end || v <= 0) return -1;
            c = (int)v;
            s += 2;
        }
        if (w + 1 >= cap) return -1;
        out[w++] = (char)c;
    }
    out[w] = 0;
    return 0;
}

int mp_media_resolve(const char *url, const char *base_dir, mp_media_ref *out, mp_error *err) {
    memset(out, 0, sizeof *out);
    if (!url || !*url) return mp_errf(err, "empty media reference");
    if (!strncasecmp(url, "data:", 5)) {
        const char *comma = strchr(url, ',');
        if (!comma) return mp_errf(err, "data: URI without ','");
        size_t hl = (size_t)(comma - url);
        int b64 = hl >= 7 && !strncasecmp(comma - 7, ";base64", 7);
        snprintf(out->name, sizeof out->name, "%.*s", (int)(hl > 64 ? 64 : hl), url);
        const char *d = comma + 1;
        size_t dl = strlen(d);
        if (!b64) { /* plain (percent-encoded) data */
            out->bytes = malloc(dl + 1);
            if (!out->bytes) return mp_errf(err, "%s: out of memory", out->name);
            if (unescape(d, (char *)out->bytes, dl + 1) < 0) {
                mp_media_ref_free(out);
                return mp_errf(err, "data: URI: bad %%-escape");
            }
            out->size = strlen((char *)out->bytes);
            return 0;
        }
        if (dl > ((size_t)1 << 31)) return mp_errf(err, "%s: data: URI too large", out->name);
        size_t cap = AV_BASE64_DECODE_SIZE(dl) + 1;
        out->bytes = malloc(cap);
        if (!out->bytes) return mp_errf(err, "%s: out of memory", out->name);
        int n = av_base64_decode(out->bytes, d, (int)cap);
        if (n < 0 || (n == 0 && dl > 0)) {
            mp_media_ref_free(out);
            return mp_errf(err, "data: URI: invalid base64");
        }
        out->size = (size_t)n;
        return 0;
    }
    if (!strncasecmp(url, "http://", 7) || !strncasecmp(url, "https://", 8))
        return mp_errf(err, "%.200s: http(s) media URLs are not fetched in batch mode (download the file and give its path)", url);
    char path[4096];
    if (!strncasecmp(url, "file://", 7)) {
        const char *p = url + 7;
        if (!strncasecmp(p, "localhost/", 10)) p += 9;
        if (*p != '/') return mp_errf(err, "%.200s: file:// URL must be absolute", url);
        if (unescape(p, path, sizeof path) < 0) return mp_errf(err, "%.200s: bad file:// URL", url);
    } else if (strstr(url, "://")) {
        return mp_errf(err, "%.200s: unsupported URL scheme (use a path, file:// or data:)", url);
    } else if (url[0] != '/' && base_dir && *base_dir) {
        if ((size_t)snprintf(path, sizeof path, "%s/%s", base_dir, url) >= sizeof path)
            return mp_errf(err, "%.200s: path too long", url);
    } else {
        if (strlen(url) >= sizeof path) return mp_errf(err, "%.200s: path too long", url);
        strcpy(path, url);
    }
    out->path = strdup(path);
    if (!out->path) return mp_errf(err, "out of memory");
    snprintf(out->name, sizeof out->name, "%s", path);
    return 0;
}
