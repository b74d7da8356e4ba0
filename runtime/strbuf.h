/* strbuf.h — a growing NUL-terminated string for prompt building (runtime/vlm.c, vlm_video.c). Out of
 * memory is sticky: later appends are ignored and oom stays set; check it once at the end. */
#ifndef MP_STRBUF_H
#define MP_STRBUF_H

#include <stddef.h>

typedef struct mp_strbuf {
    char *p; /* malloc'd, NUL-terminated once anything was appended (NULL before) */
    size_t n, cap;
    int oom;
} mp_strbuf;

void mp_strbuf_put(mp_strbuf *s, const char *t, size_t n);
void mp_strbuf_puts(mp_strbuf *s, const char *t);

#endif
