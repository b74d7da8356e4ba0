/* media.h — where a request's media comes from. Batch requests name images, audio and video the way
 * OpenAI/vLLM requests do: a local path, a file:// URL, or a data: URI with base64 content
 * ("data:image/png;base64,iVBOR..."). This resolves one such reference to either a path to open or the
 * decoded bytes; the decoders (preprocess/image.h, audio.h, video.h) take it from there.
 * http(s) URLs are refused with a clear error: batch runs do not reach the network for media. */
#ifndef MP_MEDIA_H
#define MP_MEDIA_H

#include "kernels/mp.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mp_media_ref {
    char *path;        /* a local file (malloc'd), or NULL when the content is in bytes */
    uint8_t *bytes;    /* decoded data: URI content (malloc'd), or NULL */
    size_t size;
    char name[256];    /* for error messages: the path, or "data:<mime>" */
} mp_media_ref;

/* url: path, file://path, or data:[<mime>][;base64],<data>. Relative paths are taken relative to
 * base_dir when it is not NULL (the directory of the requests file). */
int mp_media_resolve(const char *url, const char *base_dir, mp_media_ref *out, mp_error *err);
void mp_media_ref_free(mp_media_ref *m);

#ifdef __cplusplus
}
#endif
#endif
