/* strbuf.c — see strbuf.h */
#include "runtime/strbuf.h"

#include <stdlib.h>
#include <string.h>

void mp_strbuf_put(mp_strbuf *s, const char *t, size_t n) {
    if (s->oom) return;
    if (s->n + n + 1 > s->cap) {
        size_t c = s->cap ? s->cap : 256;
        while (c < s->n + n + 1) c *= 2;
        char *q = realloc(s->p, c);
        if (!q) {
            s->oom = 1;
            return;
        }
        s->p = q, s->cap = c;
    }
    memcpy(s->p + s->n, t, n);
    s->n += n;
    s->p[s->n] = 0;
}

void mp_strbuf_puts(mp_strbuf *s, const char *t) { mp_strbuf_put(s, t, strlen(t)); }
