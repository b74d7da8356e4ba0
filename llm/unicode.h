/* unicode.h — Unicode character data for the tokenizers: general categories (for the pre-tokenizer
 * regexes' \p{..}), White_Space, simple case mappings, canonical NFD/NFC.
 * Tables are generated from Python's unicodedata by tests/tokenizer/gen_unicode.py. */
#ifndef MP_UNICODE_H
#define MP_UNICODE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* General categories; UC_Cn (0) is also returned for values outside 0..0x10FFFF. */
enum {
    UC_Cn = 0, UC_Lu, UC_Ll, UC_Lt, UC_Lm, UC_Lo, UC_Mn, UC_Mc, UC_Me, UC_Nd, UC_Nl, UC_No,
    UC_Pc, UC_Pd, UC_Ps, UC_Pe, UC_Pi, UC_Pf, UC_Po, UC_Sm, UC_Sc, UC_Sk, UC_So,
    UC_Zs, UC_Zl, UC_Zp, UC_Cc, UC_Cf, UC_Cs, UC_Co,
    UC_COUNT
};
#define UC_MASK(c) (1u << (c))
#define UC_L (UC_MASK(UC_Lu) | UC_MASK(UC_Ll) | UC_MASK(UC_Lt) | UC_MASK(UC_Lm) | UC_MASK(UC_Lo))
#define UC_M (UC_MASK(UC_Mn) | UC_MASK(UC_Mc) | UC_MASK(UC_Me))
#define UC_N (UC_MASK(UC_Nd) | UC_MASK(UC_Nl) | UC_MASK(UC_No))
#define UC_P (UC_MASK(UC_Pc) | UC_MASK(UC_Pd) | UC_MASK(UC_Ps) | UC_MASK(UC_Pe) | UC_MASK(UC_Pi) | UC_MASK(UC_Pf) | UC_MASK(UC_Po))
#define UC_S (UC_MASK(UC_Sm) | UC_MASK(UC_Sc) | UC_MASK(UC_Sk) | UC_MASK(UC_So))
#define UC_Z (UC_MASK(UC_Zs) | UC_MASK(UC_Zl) | UC_MASK(UC_Zp))
#define UC_C (UC_MASK(UC_Cn) | UC_MASK(UC_Cc) | UC_MASK(UC_Cf) | UC_MASK(UC_Cs) | UC_MASK(UC_Co))

int mp_unicode_category(int32_t cp);
/* Name ("Lu", ..., or a one-letter group "L") -> category mask; 0 if unknown. */
uint32_t mp_unicode_category_mask(const char *name, int len);
/* White_Space: U+0009..000D, U+0085 and the Z categories (what \s matches in Oniguruma). */
int mp_unicode_is_space(int32_t cp);
int32_t mp_unicode_tolower(int32_t cp); /* simple (one to one) mappings */
int32_t mp_unicode_toupper(int32_t cp);
int mp_unicode_ccc(int32_t cp); /* canonical combining class */
/* Canonical normalization of n code points: form 'D' (NFD) or 'C' (NFC). Returns a malloc'd array
 * and its length in *n_out, or NULL when out of memory. */
int32_t *mp_unicode_normalize(const int32_t *cps, int n, int form, int *n_out);
const char *mp_unicode_data_version(void);

#ifdef __cplusplus
}
#endif
#endif
