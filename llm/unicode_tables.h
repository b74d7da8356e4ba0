/* unicode_tables.h — layout of the generated tables in unicode_data.c (see llm/unicode.h). */
#ifndef MP_UNICODE_TABLES_H
#define MP_UNICODE_TABLES_H

#include <stdint.h>

typedef struct mp_unicode_tables {
    const uint32_t *cat_start; /* runs: category cat_value[i] from cat_start[i] up to the next start */
    const uint8_t *cat_value;
    int n_cat;
    const uint32_t *lower; /* pairs (cp, lower) sorted by cp */
    int n_lower;
    const uint32_t *upper; /* pairs (cp, upper) */
    int n_upper;
    const uint32_t *ccc_start; /* runs of canonical combining class */
    const uint8_t *ccc_value;
    int n_ccc;
    const uint32_t *decomp; /* triples (cp, first, second or 0): one level of canonical decomposition */
    int n_decomp;
    const uint32_t *comp; /* triples (first, second, composite) sorted by (first, second) */
    int n_comp;
} mp_unicode_tables;

extern const mp_unicode_tables mp_unicode;
extern const char mp_unicode_version[];

#endif
