/* refcases.h — reads the case file the tests/ref scripts write: "MPREF1\0\0", u32 ncases, then per case
 * u32-length-prefixed name, u32 nparams x (name, f64), u32 narrays x (name, u64 n, f32[n]). */
#ifndef MP_REFCASES_H
#define MP_REFCASES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { char name[64]; double v; } refparam;
typedef struct { char name[64]; int64_t n; float *data; } refarray;
typedef struct {
    char name[128];
    int np, na;
    refparam *p;
    refarray *a;
} refcase;

static int rc_str(FILE *f, char *dst, size_t cap) {
    uint32_t len;
    if (fread(&len, 4, 1, f) != 1 || len >= cap) return -1;
    if (fread(dst, 1, len, f) != len) return -1;
    dst[len] = 0;
    return 0;
}

static void refcases_free(refcase *cs, int n) {
    for (int i = 0; i < n; i++) {
        for (int j = 0; cs[i].a && j <= cs[i].na; j++) free(cs[i].a[j].data); /* a has na + 1 zeroed slots */
        free(cs[i].a);
        free(cs[i].p);
    }
    free(cs);
}

/* returns the number of cases (or -1) and the array in *out */
static int refcases_load(const char *path, refcase **out) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char magic[8];
    uint32_t n;
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, "MPREF1", 6) != 0 || fread(&n, 4, 1, f) != 1 || n > 100000) {
        fclose(f);
        return -1;
    }
    refcase *cs = calloc(n, sizeof *cs);
    for (uint32_t i = 0; i < n; i++) {
        refcase *c = &cs[i];
        uint32_t np, na;
        if (rc_str(f, c->name, sizeof c->name) || fread(&np, 4, 1, f) != 1 || np > 1000) goto bad;
        c->p = calloc(np + 1, sizeof *c->p);
        for (c->np = 0; c->np < (int)np; c->np++)
            if (rc_str(f, c->p[c->np].name, 64) || fread(&c->p[c->np].v, 8, 1, f) != 1) goto bad;
        if (fread(&na, 4, 1, f) != 1 || na > 1000) goto bad;
        c->a = calloc(na + 1, sizeof *c->a);
        for (c->na = 0; c->na < (int)na; c->na++) {
            refarray *a = &c->a[c->na];
            uint64_t cnt;
            if (rc_str(f, a->name, 64) || fread(&cnt, 8, 1, f) != 1 || cnt > (1u << 28)) goto bad;
            a->n = (int64_t)cnt;
            a->data = malloc((size_t)(cnt ? cnt : 1) * 4);
            if (fread(a->data, 4, cnt, f) != cnt) goto bad;
        }
    }
    fclose(f);
    *out = cs;
    return (int)n;
bad:
    fclose(f);
    refcases_free(cs, (int)n);
    return -1;
}

static double rc_param(const refcase *c, const char *name, double dflt) {
    for (int i = 0; i < c->np; i++)
        if (strcmp(c->p[i].name, name) == 0) return c->p[i].v;
    return dflt;
}

static const refarray *rc_array(const refcase *c, const char *name) {
    for (int i = 0; i < c->na; i++)
        if (strcmp(c->a[i].name, name) == 0) return &c->a[i];
    return NULL;
}

#endif
